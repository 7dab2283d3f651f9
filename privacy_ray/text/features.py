"""Handcrafted, interpretable features of a message (38 numeric ``f_`` columns).

They complement the embeddings with signals a reviewer can read: which rights verbs and
statutes a message names, whether it asks or demands, how urgent and how polite it is, how much
PII it carries. They are computed on the normalised, *unredacted* text (placeholders would distort
counts and surface statistics); only the numbers leave this function, never the PII itself.

Everything but sentiment is a vectorised regex count in pyarrow's RE2 kernels; TextBlob's pattern
sentiment, the one per-row step, runs once per distinct text. :data:`FEATURE_CATALOGUE`
documents every column (dtype, range, meaning) and is written into run folders.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from privacy_ray.errors import InputError
from privacy_ray.text import _arrow as A
from privacy_ray.text.lexicon import KEYWORD_CATEGORIES, category_pattern
from privacy_ray.text.redaction import ENTITIES, scan_texts

#: Flesch reading ease is clipped to this range (its maximum for one-syllable words in
#: one-word sentences is 121.22; pathological tokens such as hashes go far below -100).
FLESCH_MIN = -100.0
FLESCH_MAX = 121.22


@dataclass(frozen=True)
class FeatureSpec:
    """One feature column: name, dtype, inclusive value range (None = unbounded), meaning."""

    name: str
    dtype: str
    min: float | None
    max: float | None
    description: str
    group: str


def _count(name: str, description: str, group: str) -> FeatureSpec:
    return FeatureSpec(name, "int64", 0, None, description, group)


def _ratio(name: str, description: str, group: str) -> FeatureSpec:
    return FeatureSpec(name, "float64", 0.0, 1.0, description, group)


def _flag(name: str, description: str, group: str) -> FeatureSpec:
    return FeatureSpec(name, "int64", 0, 1, description, group)


#: Short column suffix per PII entity.
PII_FEATURE_SUFFIX: dict[str, str] = {
    "EMAIL_ADDRESS": "email",
    "IBAN_CODE": "iban",
    "CREDIT_CARD": "credit_card",
    "US_SSN": "ssn",
    "IP_ADDRESS": "ip",
    "PHONE_NUMBER": "phone",
    "US_BANK_NUMBER": "bank_account",
    "LOCATION": "address",
    "PERSON": "person",
}

_KEYWORD_DESCRIPTIONS = {
    "rights_verbs": "rights verbs (delete, erase, access, copy, export, correct, opt out, ...)",
    "data_nouns": "data nouns (personal data, information, account, records, profile, ...)",
    "regulation": "regulation mentions (GDPR, CCPA, CPRA, Article 17, Section 1798.105, ...)",
    "consent_tracking": "consent, cookie and tracking terms",
    "marketing": "marketing terms (newsletter, ads, promotions, profiling, ...)",
    "complaint_breach": "complaint, breach and misuse terms",
}

FEATURE_CATALOGUE: tuple[FeatureSpec, ...] = (
    FeatureSpec("f_polarity", "float64", -1.0, 1.0,
                "TextBlob (pattern) sentiment polarity, negative to positive", "sentiment"),
    FeatureSpec("f_subjectivity", "float64", 0.0, 1.0,
                "TextBlob (pattern) subjectivity, objective to subjective", "sentiment"),
    *(
        _count(f"f_kw_{c}", f"Number of {_KEYWORD_DESCRIPTIONS[c]} (curated lexicon)", "lexicon")
        for c in KEYWORD_CATEGORIES
    ),
    _flag("f_is_question", "1 if the text has a '?' or opens with an interrogative word",
          "linguistic"),
    _flag("f_is_request", "1 if a sentence opens with an imperative verb or the text uses a "
          "request form ('please', 'I want', 'could you', ...)", "linguistic"),
    _ratio("f_first_person_ratio", "First-person pronouns (I, me, my, we, ...) per token",
           "linguistic"),
    _count("f_modal_count", "Modal verbs (can, could, would, should, must, ...)", "linguistic"),
    _count("f_negation_count", "Negations (not, no, never, n't, without, ...)", "linguistic"),
    _count("f_urgency_count", "Urgency cues (urgent, asap, immediately, within 30 days, ...)",
           "linguistic"),
    _count("f_legal_count", "Legal terms (lawyer, court, regulator, DPO, compliance, ...)",
           "linguistic"),
    _count("f_politeness_count", "Politeness markers (please, thank you, kindly, sorry, ...)",
           "linguistic"),
    _count("f_char_count", "Characters", "surface"),
    _count("f_token_count", "Word tokens (runs of letters/digits; apostrophes join)", "surface"),
    _count("f_sentence_count", "Sentences (terminal punctuation runs, plus a final fragment)",
           "surface"),
    FeatureSpec("f_mean_word_length", "float64", 0.0, None,
                "Mean token length in characters (0 without tokens)", "surface"),
    _ratio("f_uppercase_ratio", "Uppercase letters per letter", "surface"),
    _ratio("f_digit_ratio", "Digits 0-9 per character", "surface"),
    _ratio("f_punctuation_ratio", "Punctuation and symbols (not letter, digit or space) per "
           "character", "surface"),
    _count("f_exclamation_count", "Exclamation marks", "surface"),
    _count("f_question_mark_count", "Question marks", "surface"),
    _count("f_allcaps_word_count", "Words of three or more capital letters (shouting, acronyms)",
           "surface"),
    *(
        _count(f"f_pii_{PII_FEATURE_SUFFIX[e]}", f"{e} spans found by the PII detectors", "pii")
        for e in ENTITIES
    ),
    _count("f_pii_total", "All PII spans found by the PII detectors", "pii"),
    FeatureSpec("f_syllables_per_word", "float64", 0.0, None,
                "Mean syllables per token (vowel-group heuristic; 0 without tokens)",
                "readability"),
    FeatureSpec("f_flesch_reading_ease", "float64", FLESCH_MIN, FLESCH_MAX,
                "Flesch reading ease, clipped to [-100, 121.22]; higher is easier (0 without "
                "tokens)", "readability"),
)  # fmt: skip


def feature_names() -> list[str]:
    """Feature column names, in output order."""
    return [spec.name for spec in FEATURE_CATALOGUE]


def catalogue_records() -> list[dict[str, object]]:
    """The catalogue as JSON-ready dicts (written next to the features in a run folder)."""
    return [asdict(spec) for spec in FEATURE_CATALOGUE]


# --------------------------------------------------------------------------------------------
# Patterns (applied to the lowercased text with apostrophes folded to "'")
# --------------------------------------------------------------------------------------------

_QUESTION_OPENER = (
    r"^\W*(?:can|could|would|will|how|what|why|when|where|who|whom|whose|which|is|are|am|do|"
    r"does|did|may|should|shall|have|has|was|were)\b"
)
_IMPERATIVE_VERBS = (
    "delete|remove|erase|stop|send|give|provide|cancel|close|unsubscribe|correct|update|change|"
    "export|tell|let|show|forward|share|fix|confirm|opt|withdraw|transfer|restrict|disable|"
    "deactivate|email|call|contact|explain|inform|notify|refund|rectify|forget|purge|wipe|"
    "revoke|download|check|reply|respond|get|make|take|add|do|don't"
)
_REQUEST = (
    r"(?:^|[.!?\n])\W*(?:please\W+|kindly\W+)?(?:" + _IMPERATIVE_VERBS + r")\b"
    r"|\b(?:please|kindly|pls|plz)\b"
    r"|\b(?:delete|remove|erase|export|correct|update|send|stop|cancel|close)\W+"
    r"(?:my|all|me|our|it|this|everything)\b"
    r"|\bi\W+(?:want|would like|'d like|need|request|demand|ask|wish|expect|insist)\b"
    r"|\bi'm\W+(?:requesting|asking|writing to request)\b"
    r"|\b(?:can|could|would|will)\W+you\b"
)
_FIRST_PERSON = r"\b(?:i|me|my|mine|myself|we|us|our|ours|ourselves)\b"
_SENTENCE_END = r"[.!?]+(?:[ \t\n]|$)"


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros(len(num), dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


@functools.cache
def textblob_sentiment() -> Callable[[str], tuple[float, float]]:
    """TextBlob's English pattern analyser (``textblob.en.sentiment``), built without importing
    the ``textblob`` package.

    ``import textblob`` imports NLTK and SciPy (about 2 s and 100 MB per process), none of
    which the analyser uses: it lives in ``textblob/_text.py``, which needs only the standard
    library. Every Ray worker that runs the features stage would pay that import, so the
    module is loaded on its own and the analyser is configured exactly as ``textblob.en``
    configures it (same lexicon file, negations, modifiers, tokenizer and the "-ly" adverbs its
    ``Sentiment.load`` adds). A test checks the scores equal ``textblob.en.sentiment``'s.
    """
    import importlib.util
    import os

    package = importlib.util.find_spec("textblob")
    if package is None or not package.submodule_search_locations:
        raise ImportError("textblob is not installed; pip install textblob")
    root = package.submodule_search_locations[0]
    spec = importlib.util.spec_from_file_location("_privacy_ray_textblob_text",
                                                  os.path.join(root, "_text.py"))
    text = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(text)

    class EnglishSentiment(text.Sentiment):
        def load(self, path: str | None = None) -> None:  # textblob.en.Sentiment.load
            text.Sentiment.load(self, path)
            if not path:
                for word, pos in list(dict.items(self)):
                    if "JJ" in pos:
                        if word.endswith("y"):
                            word = word[:-1] + "i"
                        if word.endswith("le"):
                            word = word[:-2]
                        p, s, i = pos["JJ"]
                        self.annotate(word + "ly", "RB", p, s, i)

    parser = text.Parser(lexicon={}, default=("NN", "NNP", "CD"), language="en")
    return EnglishSentiment(
        path=os.path.join(root, "en", "en-sentiment.xml"),
        synset="wordnet_id",
        negations=("no", "not", "n't", "never"),
        modifiers=("RB",),
        modifier=lambda w: w.endswith("ly"),
        tokenizer=parser.find_tokens,
        language="en",
    )


def sentiment(texts: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """TextBlob polarity and subjectivity, computed once per distinct text.

    Calls TextBlob's pattern analyser directly (the same numbers as ``TextBlob(t).sentiment``,
    without building a blob per row).
    """
    pattern_sentiment = textblob_sentiment()
    codes, uniques = pd.factorize(texts)
    pairs = np.array([tuple(pattern_sentiment(t)) for t in uniques], dtype=np.float64)
    if len(pairs) == 0:
        pairs = np.zeros((0, 2))
    pol = np.clip(np.nan_to_num(pairs[:, 0]), -1.0, 1.0)[codes]
    subj = np.clip(np.nan_to_num(pairs[:, 1]), 0.0, 1.0)[codes]
    return pol, subj


def syllable_counts(words: pa.Array) -> np.ndarray:
    """Syllables per text with the vowel-group heuristic, on lowercase text without apostrophes.

    Vowel groups, minus a silent final "e" after a consonant (make), plus a consonant + "le"
    ending (table); a word without vowels (a number, "hmm") counts one.
    """
    vowel_groups = A.count(words, r"[aeiouy]+")
    silent_e = A.count(words, r"[aeiouy][^aeiouy\W]+e\b")
    consonant_le = A.count(words, r"[^aeiouy\W]le\b")
    no_vowel_words = A.count(words, r"\b[^aeiouy\W]+\b")
    return vowel_groups - silent_e + consonant_le + no_vowel_words


def compute_features(texts: pd.Series, pii: pd.DataFrame | None = None) -> pd.DataFrame:
    """All catalogue features for a batch of normalised, unredacted texts (same index).

    ``pii`` may carry counts already computed by :func:`privacy_ray.text.redaction.scan_texts`
    on the same texts, so a stage that redacts and featurises scans each message once.
    Every value is finite, also for empty or missing texts. Regex counts run in pyarrow's RE2
    (:mod:`privacy_ray.text._arrow`): word boundaries are ASCII, letter classes Unicode.
    """
    text = A.as_text(texts)
    arr = A.to_arrow(text)
    lower = A.lower(arr)
    words = pc.replace_substring(lower, "'", "")
    cols: dict[str, np.ndarray] = {}

    cols["f_polarity"], cols["f_subjectivity"] = sentiment(text)
    for category in KEYWORD_CATEGORIES:
        cols[f"f_kw_{category}"] = A.count(lower, category_pattern(category))

    tokens = A.count(words, r"[\pL\pN_]+")
    chars = A.length(arr)

    question = A.contains(arr, r"\?") | A.contains(lower, _QUESTION_OPENER)
    cols["f_is_question"] = question.astype(np.int64)
    cols["f_is_request"] = A.contains(lower, _REQUEST).astype(np.int64)
    cols["f_first_person_ratio"] = np.minimum(_safe_div(A.count(lower, _FIRST_PERSON), tokens), 1.0)
    for name in ("modal", "negation", "urgency", "legal", "politeness"):
        cols[f"f_{name}_count"] = A.count(lower, category_pattern(name))

    fragment = ~A.contains(arr, r"[.!?]\s*$")
    sentences = A.count(arr, _SENTENCE_END) + fragment.astype(np.int64)
    sentences = np.where(tokens > 0, np.maximum(sentences, 1), 0)

    cols["f_char_count"] = chars
    cols["f_token_count"] = tokens
    cols["f_sentence_count"] = sentences
    cols["f_mean_word_length"] = _safe_div(A.count_chars(words, r"[^\pL\pN_]"), tokens)
    cols["f_uppercase_ratio"] = np.minimum(
        _safe_div(A.count_chars(arr, r"[^\p{Lu}]"), A.count_chars(arr, r"[^\pL]")), 1.0
    )
    cols["f_digit_ratio"] = _safe_div(A.count_chars(arr, r"[^0-9]"), chars)
    cols["f_punctuation_ratio"] = _safe_div(A.count_chars(arr, r"[\pL\pN\s]"), chars)
    cols["f_exclamation_count"] = A.count_chars(arr, "[^!]")
    cols["f_question_mark_count"] = A.count_chars(arr, r"[^?]")
    cols["f_allcaps_word_count"] = A.count(arr, r"\b[A-Z]{3,}\b")

    if pii is None:
        pii = scan_texts(text)[1]
    elif len(pii) != len(text) or not set(ENTITIES) <= set(pii.columns):
        msg = (
            f"pii counts must have one row per text and the columns {list(ENTITIES)}; "
            "pass scan_texts(texts)[1] for the same texts, or None"
        )
        raise InputError(msg)
    total = np.zeros(len(text), dtype=np.int64)
    for entity in ENTITIES:
        values = pii[entity].to_numpy(dtype=np.int64)
        cols[f"f_pii_{PII_FEATURE_SUFFIX[entity]}"] = values
        total += values
    cols["f_pii_total"] = total

    syllables = np.maximum(syllable_counts(words), tokens)
    spw = _safe_div(syllables, tokens)
    words_per_sentence = _safe_div(tokens, np.clip(sentences, 1, None))
    flesch = 206.835 - 1.015 * words_per_sentence - 84.6 * spw
    cols["f_syllables_per_word"] = spw
    cols["f_flesch_reading_ease"] = np.where(
        tokens > 0, np.clip(flesch, FLESCH_MIN, FLESCH_MAX), 0.0
    )

    frame = pd.DataFrame(cols, index=text.index)
    return frame[feature_names()].astype({s.name: s.dtype for s in FEATURE_CATALOGUE})
