"""Text normalisation that runs before PII redaction and features.

Messages arrive from chat widgets, mail clients and ticket exports with decomposed accents,
Windows line endings, zero-width characters and non-breaking spaces. Detectors and lexicon
counts must see one canonical form, otherwise "j\u200bane@example.com" slips past the email
pattern. Case is kept: the uppercase ratio and name detection need it.
"""

from __future__ import annotations

import pandas as pd

from privacy_ray.text._arrow import as_text

#: C0/C1 controls except tab and newline, plus invisible format characters (zero-width
#: space/joiners, word joiner, BOM, soft hyphen, bidi embeddings and isolates).
_INVISIBLE = (
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064"
    r"\u2066-\u206f\ufeff]"
)
#: Unicode space separators (no-break, en/em, thin, ideographic ...) that become one space.
_SPACES = r"[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]"


def normalize_texts(texts: pd.Series) -> pd.Series:
    """NFC, unified line endings, no control or invisible characters, single spaces, stripped.

    Missing values become empty strings (validation quarantines empty texts before this runs);
    tabs and newlines are kept, runs of spaces become one space. Same index and name as input.
    """
    out = as_text(texts)
    out = out.str.normalize("NFC")
    out = out.str.replace("\r\n", "\n", regex=False)
    out = out.str.replace(r"[\r\u2028\u2029\x85]", "\n", regex=True)
    out = out.str.replace(_INVISIBLE, "", regex=True)
    out = out.str.replace(_SPACES, " ", regex=True)
    out = out.str.replace(r" {2,}", " ", regex=True)
    out = out.str.strip()
    out.name = texts.name
    return out


def normalize_text(text: str) -> str:
    """:func:`normalize_texts` for one string (the serving path)."""
    return str(normalize_texts(pd.Series([text])).iloc[0])
