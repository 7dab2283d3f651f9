"""PII detection and redaction with typed placeholders (Presidio's entity names).

Raw emails, phone numbers, card numbers, IPs and the like must be gone before a message is
embedded, stored or logged, so every message goes through :func:`redact_texts`. The default engine
is a set of precompiled regular expressions with validators (Luhn for cards, ISO 13616 mod-97 for
IBANs, :mod:`ipaddress` for IPv6, structural rules for SSNs); one place defines each pattern, and
the feature stage counts PII with the same detectors (:func:`pii_counts`).

Decisions a reviewer should know:

* Cards: 13-19 digits, optionally grouped by one kind of separator, first digit 2-6 (the issuer
  ranges of Visa, Mastercard, Amex, Discover, JCB, UnionPay, Maestro) and Luhn-valid. A 16-digit
  order number that fails Luhn, or starts with 0/1/7/8/9, is not a card.
* Bank / account numbers (``US_BANK_NUMBER``, Presidio's name): only a run of 6-17 digits that
  directly follows "account number", "acct no.", "account #" or "bank account". A bare digit run is
  never one, so order, ticket and tracking numbers stay.
* SSNs: ``AAA-GG-SSSS`` with dashes anywhere; spaces, dots or no separator only right after
  "SSN" / "social security (number)". Areas 000, 666 and 9xx, group 00 and serial 0000 are invalid.
* IPv4 needs exactly four dotted octets: "1.2.3.4.5" (a version string) is not an IP, but a
  four-part version such as "1.2.3.4" is indistinguishable from one and is redacted.
* Phones: international numbers with a leading "+", North American numbers with separators
  ("(415) 555-0132", "415.555.0132", "1-800-555-0199"), European national numbers starting with 0
  and containing a space or dash ("020 7946 0958"); an unseparated 10-digit number only after a
  phone word ("call me at 4155550132"). Dates, times, prices and section numbers never match.
* ``LOCATION`` covers street addresses (number + capitalised name + street suffix, optionally
  unit, city, state, ZIP or UK postcode), "City, ST 94043" and German "...straße 5" forms.
* ``PERSON`` is conservative: a capitalised name after "my name is" / "name:", after a title
  (Mr, Mrs, Ms, Dr, ...), after "Dear", or alone on the line after a sign-off ("Regards,\\nJohn
  Smith"). Generic words ("Sir", "Team", "Support") are never names.

Where two detections overlap, the entity earlier in :data:`ENTITIES` wins, then the longer span.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd

from privacy_ray.errors import DependencyError, InputError
from privacy_ray.text import _arrow as A

#: Entity names, in priority order for overlap resolution (Presidio's names).
ENTITIES: tuple[str, ...] = (
    "EMAIL_ADDRESS",
    "IBAN_CODE",
    "CREDIT_CARD",
    "US_SSN",
    "IP_ADDRESS",
    "PHONE_NUMBER",
    "US_BANK_NUMBER",
    "LOCATION",
    "PERSON",
)

EngineName = Literal["regex", "presidio"]
PRESIDIO_PIP = "pip install 'presidio-analyzer>=2.2' 'spacy>=3.7'"


class PiiSpan(NamedTuple):
    """One detected PII occurrence: ``text[start:end]`` is of type ``entity``."""

    entity: str
    start: int
    end: int


def placeholder(entity: str) -> str:
    """The token that replaces a PII span, e.g. ``<EMAIL_ADDRESS>``."""
    return f"<{entity}>"


# --------------------------------------------------------------------------------------------
# Validators
# --------------------------------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    """Luhn (mod 10) checksum of a digit string, as printed on payment cards."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


#: IBAN length per country (ISO 13616 registry).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
    "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def iban_valid(iban: str) -> bool:
    """ISO 13616 check: known country, registered length, and mod-97 remainder 1."""
    iban = iban.replace(" ", "").replace("-", "").upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum() or not iban[2:4].isdigit():
        return False
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def _ssn_valid(digits: str) -> bool:
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return (
        len(digits) == 9
        and area not in ("000", "666")
        and area[0] != "9"
        and group != "00"
        and serial != "0000"
    )


# --------------------------------------------------------------------------------------------
# Patterns: one place for each regex
# --------------------------------------------------------------------------------------------

#: No digit run or separator-joined digit group continues before / after a match.
_NO_DIGITS_BEFORE = r"(?<![\w+-])(?<!\d[ .-])"
_NO_DIGITS_AFTER = r"(?![\w-]|[ .-]\d)"

EMAIL_RE = re.compile(
    r"(?<![\w.+%-])[\w+%-]+(?:\.[\w+%-]+)*@(?:[^\W_](?:[\w-]*[^\W_])?\.)+[A-Za-z]{2,24}(?![\w-])"
)
IBAN_START_RE = re.compile(r"(?<![\w])([A-Za-z]{2})(\d{2})(?=[ -]?[A-Za-z0-9])")
CARD_RE = re.compile(_NO_DIGITS_BEFORE + r"\d(?:[ -]?\d){12,18}(?![\w-])")
SSN_RE = re.compile(_NO_DIGITS_BEFORE + r"(\d{3})-(\d{2})-(\d{4})" + _NO_DIGITS_AFTER)
SSN_CONTEXT_RE = re.compile(
    r"(?i:\b(?:ssn|ss\#|social\s+security(?:\s+(?:number|no\.?|#))?))[^\d\n]{0,15}?"
    r"(?<![\w-])(\d{3})[ .-]?(\d{2})[ .-]?(\d{4})" + _NO_DIGITS_AFTER
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
IPV4_RE = re.compile(r"(?<![\w.])(?:" + _OCTET + r"\.){3}" + _OCTET + r"(?![\w]|\.\d)")
IPV6_RE = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?(?![\w:])"
)
PHONE_INTL_RE = re.compile(
    r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,5}){1,6}" + _NO_DIGITS_AFTER
)
PHONE_NANP_RE = re.compile(
    _NO_DIGITS_BEFORE
    + r"(?:1[ .-]?)?(?:\([2-9]\d{2}\)[ .-]?|[2-9]\d{2}[ .-])[2-9]\d{2}[ .-]\d{4}"
    + _NO_DIGITS_AFTER
)
PHONE_NATIONAL_RE = re.compile(
    _NO_DIGITS_BEFORE + r"0\d{2,4}[ -]\d{3,4}[ -]?\d{3,4}" + _NO_DIGITS_AFTER
)
PHONE_CONTEXT_RE = re.compile(
    r"(?i:\b(?:phone|tel|telephone|mobile|cell|cellphone|call|text|whatsapp|fax|reach)\b)"
    r"[^\d\n]{0,20}?(?<![\w+])((?:\+?1)?[2-9]\d{9})(?![\w-])"
)
BANK_RE = re.compile(
    r"(?i:\b(?:(?:bank|checking|savings)\s+)?(?:account|acct|a/c)\.?\s*"
    r"(?:number|num|no\.?|nr\.?|\#)?\s*(?:is\s*)?[:#]?\s*)"
    r"(?<![\w-])(\d(?:[ -]?\d){5,16})" + _NO_DIGITS_AFTER
)

_STREET_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Parkway|Pkwy|"
    r"Place|Pl|Way|Terrace|Ter|Circle|Cir|Highway|Hwy|Square|Sq|Loop|Crescent|Close|Row|Plaza|"
    r"Trail|Alley|Gardens|Mews|Hill|Walk|Grove)\b\.?"
)
_US_STATES = (
    "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|"
    "NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR"
)
_CITY = r"[A-Z][a-z]+(?:[ -][A-Z][a-z]+){0,2}"
_ZIP = r"\d{5}(?:-\d{4})?"
_UK_POSTCODE = r"[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}"
_ADDRESS_TAIL = (
    r"(?:,?\s(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl)\.?\s?\#?[A-Za-z0-9-]+)?"
    r"(?:,\s?" + _CITY + r"(?:,\s?(?:" + _US_STATES + r")\b(?:\s" + _ZIP + r")?"
    r"|,?\s" + _UK_POSTCODE + r"\b|(?=[.;!?\n)]|$)))?"
)
ADDRESS_RE = re.compile(
    r"(?<![\w.-])\d{1,5}[A-Za-z]?(?:-\d{1,5})?\s(?:(?:[A-Z][\w'’.-]*|\d{1,3}(?:st|nd|rd|th))\s){1,3}"
    + _STREET_SUFFIX
    + _ADDRESS_TAIL
)
CITY_STATE_ZIP_RE = re.compile(
    r"\b" + _CITY + r",\s?(?:" + _US_STATES + r")\s" + _ZIP + r"(?![\w-])"
)
DE_ADDRESS_RE = re.compile(
    r"\b[A-ZÄÖÜ][a-zäöüß]+(?:straße|strasse|str\.|weg|platz|allee|gasse|ring|damm)"
    r"\s\d{1,4}[a-z]?(?:,\s?\d{5}\s[A-ZÄÖÜ][a-zäöüß]+)?(?![\w])"
)

_UP = "[A-ZÀ-ÖØ-ÞĀĂĄĆČĎĐĒĘĚĞĪİŁŃŇŌŐŒŘŚŞŠŢŤŪŮŰŹŻŽ]"
_LOW = "[a-zß-öø-ÿāăąćčďđēęěğīıłńňōőœřśşšţťūůűźżž]"
#: One capitalised name word: John, María, McDonald, O'Brien, Jean-Luc, Łukasz.
_NAME_WORD = f"{_UP}(?:{_LOW}+(?:{_UP}{_LOW}+)?|['’]{_UP}{_LOW}+)(?:-{_UP}{_LOW}+)?"
_PARTICLE = r"(?:van|von|de|da|del|der|di|du|la|le|bin|al)"
_FULL_NAME = _NAME_WORD + r"(?:[ ](?:" + _PARTICLE + r"[ ]){0,2}" + _NAME_WORD + r"){0,2}"
NAME_INTRO_RE = re.compile(
    r"(?i:\bmy\s+(?:full\s+|legal\s+)?name\s+is|\bmy\s+name's|\bname\s*:)\s*(" + _FULL_NAME + r")"
)
NAME_TITLE_RE = re.compile(r"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\.?\s(" + _FULL_NAME + r")")
NAME_DEAR_RE = re.compile(r"\bDear\s(" + _FULL_NAME + r")")
_SIGN_OFF = (
    r"(?:(?:best|kind|warm|warmest|many)\s+(?:regards|wishes|thanks)|regards|sincerely|"
    r"yours\s+(?:sincerely|truly|faithfully)|thanks(?:\s+again|\s+a\s+lot|\s+so\s+much)?|"
    r"thank\s+you|cheers|best|respectfully|warmly)"
)
NAME_SIGNATURE_RE = re.compile(
    r"(?im:^[ \t]*" + _SIGN_OFF + r")[ \t]*[,.!-]*[ \t]*(?:\n[ \t]*|(?<=,)[ \t]*)"
    r"(" + _FULL_NAME + r")[ \t]*(?:$|\n)",
    re.MULTILINE,
)
#: Capitalised words that follow "Dear", a title or a sign-off but are not names.
NOT_NAMES: frozenset[str] = frozenset(
    {
        "sir", "sirs", "madam", "madame", "team", "support", "customer", "customers", "service",
        "services", "all", "everyone", "there", "privacy", "data", "valued", "colleagues",
        "friends", "the", "your", "our", "my", "hiring", "manager", "officer", "admin", "user",
        "client", "member", "members", "sender", "recipient", "whom", "to", "concerned", "a",
        "an", "legal", "department", "helpdesk", "help", "desk", "agent", "staff", "company",
        "thanks", "thank", "regards", "best", "please", "cheers", "again", "sincerely",
        "protection", "dpo", "gdpr", "ccpa", "hello", "hi", "mr", "mrs", "ms", "miss", "mx", "dr",
        "prof",
    }
)  # fmt: skip


# --------------------------------------------------------------------------------------------
# Finders: text -> (start, end) spans of one entity, validators applied
# --------------------------------------------------------------------------------------------

Finder = Callable[[str], Iterator[tuple[int, int]]]


def _digits(s: str) -> str:
    """The decimal digits of ``s`` as ASCII (``\\d`` also matches e.g. fullwidth digits)."""
    return "".join(str(unicodedata.decimal(ch)) for ch in s if ch.isdecimal())


def _find_emails(text: str) -> Iterator[tuple[int, int]]:
    for m in EMAIL_RE.finditer(text):
        yield m.span()


def _is_ascii_alnum(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def _find_ibans(text: str) -> Iterator[tuple[int, int]]:
    n = len(text)
    for m in IBAN_START_RE.finditer(text):
        length = IBAN_LENGTHS.get(m.group(1).upper())
        if length is None:
            continue
        chars: list[str] = []
        end = m.start()
        i = m.start()
        # Walk alphanumerics, allowing single spaces/dashes between groups, up to the length.
        while i < n and len(chars) < length:
            ch = text[i]
            if _is_ascii_alnum(ch):
                chars.append(ch)
                i += 1
                end = i
            elif ch in " -" and chars and i + 1 < n and _is_ascii_alnum(text[i + 1]):
                i += 1
            else:
                break
        if len(chars) != length or (end < n and text[end].isalnum()):
            continue
        if iban_valid("".join(chars)):
            yield m.start(), end


def _find_cards(text: str) -> Iterator[tuple[int, int]]:
    for m in CARD_RE.finditer(text):
        raw = m.group()
        seps = {ch for ch in raw if not ch.isdigit()}
        if len(seps) > 1:
            continue
        groups = raw.split(seps.pop()) if seps else [raw]
        # Longest prefix of whole groups (each of 3+ digits) that is a card: a number followed
        # by its expiry ("4111 1111 1111 1111 12/26") still counts.
        for k in range(len(groups), 0, -1):
            digits = _digits("".join(groups[:k]))
            if k > 1 and min(len(g) for g in groups[:k]) < 3:
                continue
            if 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_valid(digits):
                yield m.start(), m.start() + len(raw) - len("".join(" " + g for g in groups[k:]))
                break


def _find_ssns(text: str) -> Iterator[tuple[int, int]]:
    for m in SSN_RE.finditer(text):
        if _ssn_valid(_digits("".join(m.groups()))):
            yield m.span()
    for m in SSN_CONTEXT_RE.finditer(text):
        if _ssn_valid(_digits("".join(m.groups()))):
            yield m.start(1), m.end(3)


def _find_ips(text: str) -> Iterator[tuple[int, int]]:
    for m in IPV6_RE.finditer(text):
        cand = m.group()
        if sum(ch.isalnum() for ch in cand) < 2:
            continue
        try:
            ipaddress.IPv6Address(cand)
        except ValueError:
            continue
        yield m.span()
    for m in IPV4_RE.finditer(text):
        yield m.span()


def _find_phones(text: str) -> Iterator[tuple[int, int]]:
    for m in PHONE_INTL_RE.finditer(text):
        if 8 <= len(_digits(m.group())) <= 15:
            yield m.span()
    for m in PHONE_NANP_RE.finditer(text):
        yield m.span()
    for m in PHONE_NATIONAL_RE.finditer(text):
        if 10 <= len(_digits(m.group())) <= 11:
            yield m.span()
    for m in PHONE_CONTEXT_RE.finditer(text):
        yield m.span(1)


def _find_bank_numbers(text: str) -> Iterator[tuple[int, int]]:
    for m in BANK_RE.finditer(text):
        yield m.span(1)


def _find_locations(text: str) -> Iterator[tuple[int, int]]:
    for regex in (ADDRESS_RE, CITY_STATE_ZIP_RE, DE_ADDRESS_RE):
        for m in regex.finditer(text):
            start, end = m.span()
            while end > start and text[end - 1] in " ,":
                end -= 1
            yield start, end


def _is_name(candidate: str) -> bool:
    return candidate.split()[0].lower() not in NOT_NAMES


def _find_persons(text: str) -> Iterator[tuple[int, int]]:
    for regex in (NAME_INTRO_RE, NAME_TITLE_RE, NAME_DEAR_RE, NAME_SIGNATURE_RE):
        for m in regex.finditer(text):
            words = m.group(1).split()
            # Drop trailing generic words ("Dear Anna Team" keeps "Anna").
            while words and words[-1].lower() in NOT_NAMES:
                words.pop()
            if words and _is_name(words[0]):
                start = m.start(1)
                yield start, start + len(" ".join(words))


#: Finders per entity, in :data:`ENTITIES` order.
FINDERS: dict[str, Finder] = {
    "EMAIL_ADDRESS": _find_emails,
    "IBAN_CODE": _find_ibans,
    "CREDIT_CARD": _find_cards,
    "US_SSN": _find_ssns,
    "IP_ADDRESS": _find_ips,
    "PHONE_NUMBER": _find_phones,
    "US_BANK_NUMBER": _find_bank_numbers,
    "LOCATION": _find_locations,
    "PERSON": _find_persons,
}

#: Any whitespace Python's ``\\s`` knows, for RE2 (whose ``\\s`` is ASCII).
_SP = r"[\s\pZ\x{1c}-\x{1f}\x{85}]"
#: A superset of the four PERSON patterns: a capital after an intro, a title, "Dear" or the last
#: word of a sign-off.
_PERSON_GATE = (
    r"(?i:name|name's)" + _SP + r"*(?:is" + _SP + r"*|:" + _SP + r"*)?\p{Lu}"
    r"|(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\.?" + _SP + r"\p{Lu}"
    r"|Dear" + _SP + r"\p{Lu}"
    r"|(?i:regards|wishes|thanks|sincerely|truly|faithfully|again|lot|much|you|cheers|best|"
    r"respectfully|warmly)[ \t]*[,.!-]*" + _SP + r"*\p{Lu}"
)
#: Necessary conditions per entity, checked for a whole batch at once in pyarrow's RE2 kernels:
#: (minimum number of digits, RE2 pattern the text must contain or None). A row runs only the
#: finders whose gate it passes, and most rows pass none. Each gate must accept every text its
#: finder can match (tests compare batch and single-text results on the PII table).
GATES: dict[str, tuple[int, str | None]] = {
    "EMAIL_ADDRESS": (0, "@"),
    "IBAN_CODE": (2, r"[A-Za-z]{2}\p{Nd}{2}"),
    "CREDIT_CARD": (13, None),
    "US_SSN": (9, r"\p{Nd}{3}-\p{Nd}{2}-\p{Nd}{4}|(?i:ssn|ss#|social)"),
    "IP_ADDRESS": (0, r"\p{Nd}\.\p{Nd}|:[0-9A-Fa-f]*:"),
    "PHONE_NUMBER": (8, None),
    "US_BANK_NUMBER": (6, r"(?i)acc|a/c"),
    "LOCATION": (
        1,
        r"\p{Nd}[A-Za-z]?(?:-\p{Nd}+)?" + _SP + r"[A-Z\p{Nd}]|[A-Z]{2}" + _SP + r"\p{Nd}{5}|"
        r"(?:straße|strasse|str\.|weg|platz|allee|gasse|ring|damm)" + _SP + r"\p{Nd}",
    ),
    "PERSON": (0, _PERSON_GATE),
}


def gate_matrix(texts: pd.Series) -> np.ndarray:
    """Boolean (rows x entities) matrix: which finders can possibly match each text.

    Runs in pyarrow's RE2 kernels; digits are Unicode decimal digits, like Python's ``\\d`` in
    the finders, so a gate never rejects a text its finder would match.
    """
    arr = A.to_arrow(texts)
    digits = A.count_chars(arr, r"[^\p{Nd}]")
    gates = np.zeros((len(texts), len(ENTITIES)), dtype=bool)
    for j, entity in enumerate(ENTITIES):
        min_digits, pattern = GATES[entity]
        ok = digits >= min_digits
        if pattern is not None and ok.any():
            ok &= A.contains(arr, pattern)
        gates[:, j] = ok
    return gates


def resolve_overlaps(spans: Iterable[PiiSpan], rank: Callable[[PiiSpan], Any]) -> list[PiiSpan]:
    """Keep a set of non-overlapping spans, preferring spans that sort first by ``rank``."""
    kept: list[PiiSpan] = []
    for span in sorted(spans, key=rank):
        if span.end <= span.start:
            continue
        if all(span.end <= k.start or span.start >= k.end for k in kept):
            kept.append(span)
    kept.sort(key=lambda s: s.start)
    return kept


_PRIORITY = {entity: i for i, entity in enumerate(ENTITIES)}


def _regex_rank(span: PiiSpan) -> tuple[int, int, int]:
    return (_PRIORITY[span.entity], span.start - span.end, span.start)


def detect_pii(text: str, entities: Iterable[str] = ENTITIES) -> list[PiiSpan]:
    """PII spans in ``text``, non-overlapping and sorted by start (the regex engine).

    ``entities`` limits the search to some entity types (all by default).
    """
    if not text:
        return []
    found = [
        PiiSpan(entity, start, end) for entity in entities for start, end in FINDERS[entity](text)
    ]
    return resolve_overlaps(found, _regex_rank)


def apply_spans(text: str, spans: Sequence[PiiSpan]) -> str:
    """Replace each span by its placeholder; ``spans`` must be non-overlapping."""
    if not spans:
        return text
    parts: list[str] = []
    pos = 0
    for span in sorted(spans, key=lambda s: s.start):
        parts.append(text[pos : span.start])
        parts.append(placeholder(span.entity))
        pos = span.end
    parts.append(text[pos:])
    return "".join(parts)


def redact(text: str) -> str:
    """``text`` with every detected PII span replaced by ``<ENTITY>``."""
    return apply_spans(text, detect_pii(text))


def scan_texts(
    texts: pd.Series, detect: Callable[[str], list[PiiSpan]] | None = None
) -> tuple[pd.Series, pd.DataFrame]:
    """Redact a batch and count its PII per entity in one pass: ``(redacted, counts)``.

    With the regex engine (``detect=None``) a vectorised gate per entity (:data:`GATES`) picks the
    rows and finders worth running, so rows that cannot hold PII cost no Python call. Another
    engine's ``detect`` runs on every non-empty row.
    """
    text = A.as_text(texts)
    n = len(text)
    counts = np.zeros((n, len(ENTITIES)), dtype=np.int64)
    values = text.to_numpy(dtype=object)
    redacted = values.copy()
    if n:
        if detect is None:
            gates = gate_matrix(text)
            rows = gates.any(axis=1).nonzero()[0]
        else:
            rows = (A.length(A.to_arrow(text)) > 0).nonzero()[0]
        column = {e: j for j, e in enumerate(ENTITIES)}
        for i in rows:
            if detect is None:
                spans = detect_pii(values[i], [ENTITIES[j] for j in gates[i].nonzero()[0]])
            else:
                spans = detect(values[i])
            if spans:
                redacted[i] = apply_spans(values[i], spans)
                for span in spans:
                    counts[i, column[span.entity]] += 1
    frame = pd.DataFrame(counts, index=text.index, columns=list(ENTITIES))
    return pd.Series(redacted, index=text.index, name=texts.name, dtype=str), frame


def redact_texts(texts: pd.Series) -> pd.Series:
    """Redacted copy of a batch of texts (same index and name); missing texts become ""."""
    return scan_texts(texts)[0]


def pii_counts(texts: pd.Series) -> pd.DataFrame:
    """Number of PII spans per entity (one int column per :data:`ENTITIES` name) per text."""
    return scan_texts(texts)[1]


# --------------------------------------------------------------------------------------------
# Engines
# --------------------------------------------------------------------------------------------


class Redactor:
    """A named PII engine: ``detect`` is the only method an engine must provide."""

    name: str = "regex"

    def detect(self, text: str) -> list[PiiSpan]:
        return detect_pii(text)

    def redact(self, text: str) -> str:
        return apply_spans(text, self.detect(text))

    def scan_texts(self, texts: pd.Series) -> tuple[pd.Series, pd.DataFrame]:
        return scan_texts(texts)

    def redact_texts(self, texts: pd.Series) -> pd.Series:
        return self.scan_texts(texts)[0]

    def pii_counts(self, texts: pd.Series) -> pd.DataFrame:
        return self.scan_texts(texts)[1]


class PresidioRedactor(Redactor):
    """Presidio's analyzer with pattern recognizers only, on a blank spaCy pipeline.

    No NER model is loaded (none is installed offline), so ``PERSON`` and ``LOCATION`` are not
    found; the email recognizer uses tldextract's bundled public-suffix snapshot instead of
    downloading the list. Build it once per worker: construction takes about a second.
    """

    name = "presidio"

    def scan_texts(self, texts: pd.Series) -> tuple[pd.Series, pd.DataFrame]:
        return scan_texts(texts, self.detect)

    def __init__(self, score_threshold: float = 0.0) -> None:
        try:
            import spacy
            import tldextract
            from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
            from presidio_analyzer.nlp_engine import SpacyNlpEngine
            from presidio_analyzer.predefined_recognizers import (
                CreditCardRecognizer,
                EmailRecognizer,
                IbanRecognizer,
                IpRecognizer,
                PhoneRecognizer,
                UsBankRecognizer,
                UsSsnRecognizer,
            )
        except ImportError as e:
            msg = f"the presidio PII engine needs presidio-analyzer and spacy: {PRESIDIO_PIP}"
            raise DependencyError(msg) from e

        # Offline public-suffix list: no HTTP fetch, no cache directory.
        offline_extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

        class OfflineEmailRecognizer(EmailRecognizer):
            def validate_result(self, pattern_text: str) -> bool:
                return offline_extract(pattern_text).fqdn != ""

        nlp_engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": "blank:en"}])
        nlp_engine.nlp = {"en": spacy.blank("en")}
        recognizers = [
            CreditCardRecognizer(),
            OfflineEmailRecognizer(),
            IbanRecognizer(),
            IpRecognizer(),
            PhoneRecognizer(),
            UsBankRecognizer(),
            UsSsnRecognizer(),
        ]
        registry = RecognizerRegistry(recognizers=recognizers, supported_languages=["en"])
        self._engine = AnalyzerEngine(
            registry=registry, nlp_engine=nlp_engine, supported_languages=["en"]
        )
        self._entities = sorted({e for r in recognizers for e in r.supported_entities})
        self.score_threshold = score_threshold

    def detect(self, text: str) -> list[PiiSpan]:
        if not text:
            return []
        results = self._engine.analyze(
            text=text,
            language="en",
            entities=self._entities,
            score_threshold=self.score_threshold,
        )
        scores = {(r.entity_type, r.start, r.end): r.score for r in results}
        spans = [PiiSpan(r.entity_type, r.start, r.end) for r in results]
        return resolve_overlaps(spans, lambda s: (-scores[s], s.start - s.end, s.start))


def make_redactor(engine: EngineName = "regex") -> Redactor:
    """A PII engine by name: ``regex`` (default, no extra dependency) or ``presidio``."""
    if engine == "regex":
        return Redactor()
    if engine == "presidio":
        return PresidioRedactor()
    msg = f"unknown PII engine {engine!r}; use one of: regex, presidio"
    raise InputError(msg)


# --------------------------------------------------------------------------------------------
# Evaluation on a labelled table (tests and bench/bench_redaction.py)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PiiCase:
    """One labelled message: the PII values it holds (none for a near-miss)."""

    id: str
    text: str
    pii: tuple[tuple[str, str], ...] = ()  # (entity, value)
    note: str = ""

    @property
    def is_near_miss(self) -> bool:
        return not self.pii


@dataclass
class PiiEvaluation:
    """Recall over expected PII values and false alarms on near-misses, for one engine."""

    engine: str
    expected: int = 0
    found: int = 0
    found_by_entity: dict[str, list[int]] = field(default_factory=dict)  # entity -> [found, n]
    missed: list[str] = field(default_factory=list)
    near_misses: int = 0
    near_misses_flagged: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.found / self.expected if self.expected else 1.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "recall": round(self.recall, 4),
            "expected": self.expected,
            "found": self.found,
            "recall_by_entity": {
                e: round(f / n, 4) if n else None
                for e, (f, n) in sorted(self.found_by_entity.items())
            },
            "missed": self.missed,
            "near_misses": self.near_misses,
            "near_misses_flagged": self.near_misses_flagged,
        }


def load_pii_cases(path: str | Path) -> list[PiiCase]:
    """Read the PII table (YAML: ``cases: [{id, text, pii: [{entity, value}], note}]``)."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        msg = f"cannot read the PII table {path}: {e}; pass a readable YAML file"
        raise InputError(msg) from e
    cases = []
    for item in raw["cases"]:
        pii = tuple((p["entity"], p["value"]) for p in item.get("pii") or ())
        cases.append(PiiCase(str(item["id"]), item["text"], pii, item.get("note", "")))
    return cases


def value_span(case: PiiCase, value: str) -> tuple[int, int]:
    """Where a labelled value sits in its case's text (it must occur there)."""
    start = case.text.find(value)
    if start < 0:
        msg = f"PII case {case.id!r}: value {value!r} does not occur in its text; fix the table"
        raise InputError(msg)
    return start, start + len(value)


def evaluate(
    detect: Callable[[str], list[PiiSpan]], cases: Iterable[PiiCase], engine: str = "regex"
) -> PiiEvaluation:
    """Score a detector: a value counts as found when one span of its entity covers all of it."""
    ev = PiiEvaluation(engine=engine)
    for case in cases:
        spans = detect(case.text)
        if case.is_near_miss:
            ev.near_misses += 1
            if spans:
                ev.near_misses_flagged.append(case.id)
            continue
        for entity, value in case.pii:
            start, end = value_span(case, value)
            hit = any(s.entity == entity and s.start <= start and s.end >= end for s in spans)
            ev.expected += 1
            ev.found += hit
            tally = ev.found_by_entity.setdefault(entity, [0, 0])
            tally[0] += hit
            tally[1] += 1
            if not hit:
                ev.missed.append(f"{case.id}:{entity}")
    return ev
