"""Normalisation, the feature catalogue and hand-computed feature values."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from privacy_ray.errors import InputError
from privacy_ray.text import (
    FEATURE_CATALOGUE,
    _arrow,
    catalogue_records,
    compute_features,
    feature_names,
    normalize_text,
    normalize_texts,
    scan_texts,
)
from privacy_ray.text.features import FLESCH_MAX
from privacy_ray.text.lexicon import LEXICON, category_pattern, flat_category_pattern
from privacy_ray.text.redaction import load_pii_cases

CASES = load_pii_cases(Path(__file__).parent / "data" / "pii_cases.yaml")

VARIED = [
    "",
    " ",
    "!!!???",
    "Hi!!",
    "ok",
    "12345 67890",
    "Can you delete my data?",
    "I WANT MY DATA DELETED NOW!!! THIS IS ILLEGAL UNDER GDPR!!!",
    "Supercalifragilisticexpialidociousantidisestablishmentarianism" * 3,
    "\u00e9\u00e8\u00ea \U0001f600 \u4f60\u597d\u4e16\u754c",
    "e\u0301t\u00e9\n\tline two\r\nline three",
    "a" * 5000,
    "Why?" * 50,
    "This is wonderful, thank you so much for the excellent help!",
    "This is the worst, most terrible service I have ever seen.",
    "My lawyer will contact your data protection officer.",
    *(c.text for c in CASES),
]


def one(text: str) -> pd.Series:
    """Features of a single text, as a Series indexed by feature name."""
    return compute_features(pd.Series([text])).iloc[0]


# ------------------------------------------------------------------ normalisation


def test_normalize_nfc_controls_spaces_and_case() -> None:
    raw = pd.Series(
        [
            "  Cafe\u0301  Ole\u0301\u00a0\u00a0DATA  ",
            "a\x00b\x07c\u200bd\ufeffe",
            "line1\r\nline2\rline3\u2028line4",
            "tab\there\n\nkept",
            None,
        ],
        index=[5, 6, 7, 8, 9],
        name="text",
    )
    out = normalize_texts(raw)
    assert out.tolist() == [
        "Café Olé DATA",
        "abcde",
        "line1\nline2\nline3\nline4",
        "tab\there\n\nkept",
        "",
    ]
    assert list(out.index) == [5, 6, 7, 8, 9]
    assert out.name == "text"
    assert normalize_text("  x\u00a0 y ") == "x y"


def test_normalize_is_idempotent() -> None:
    once = normalize_texts(pd.Series(VARIED))
    assert normalize_texts(once).tolist() == once.tolist()


def test_normalize_rejects_non_series() -> None:
    with pytest.raises(InputError):
        normalize_texts("text")  # type: ignore[arg-type]


# ------------------------------------------------------------------ catalogue


def test_catalogue_covers_exactly_the_computed_columns() -> None:
    names = feature_names()
    assert len(names) >= 25
    assert len(set(names)) == len(names)
    assert all(n.startswith("f_") for n in names)
    frame = compute_features(pd.Series(["Hello there"]))
    assert list(frame.columns) == names
    for spec in FEATURE_CATALOGUE:
        assert str(frame[spec.name].dtype) == spec.dtype, spec.name
        assert spec.description
        assert spec.min is None or spec.max is None or spec.min <= spec.max


def test_catalogue_records_are_json_ready() -> None:
    records = catalogue_records()
    assert [r["name"] for r in records] == feature_names()
    assert set(records[0]) == {"name", "dtype", "min", "max", "description", "group"}
    json.dumps(records)


def test_all_values_finite_and_within_ranges_on_a_varied_sample() -> None:
    sample = pd.Series(VARIED + [None], index=range(1000, 1001 + len(VARIED)))
    frame = compute_features(normalize_texts(sample))
    assert list(frame.index) == list(sample.index)
    values = frame.to_numpy(dtype=np.float64)
    assert np.isfinite(values).all()
    for spec in FEATURE_CATALOGUE:
        col = frame[spec.name]
        if spec.min is not None:
            assert col.min() >= spec.min, spec.name
        if spec.max is not None:
            assert col.max() <= spec.max, spec.name
    # The sample is varied enough that no feature is constant over it.
    constant = [n for n in frame.columns if frame[n].nunique() == 1]
    assert constant == [], constant


def test_empty_and_missing_texts_give_zeros() -> None:
    frame = compute_features(pd.Series(["", None], dtype=object))
    assert (frame.to_numpy(dtype=np.float64) == 0).all()
    assert compute_features(pd.Series([], dtype=object)).shape == (0, len(feature_names()))


# ------------------------------------------------------------------ hand-computed values


def test_exclamations_tokens_and_characters() -> None:
    f = one("Hi!!")
    assert f["f_exclamation_count"] == 2
    assert f["f_token_count"] == 1
    assert f["f_char_count"] == 4
    assert f["f_sentence_count"] == 1
    assert f["f_punctuation_ratio"] == pytest.approx(0.5)
    assert f["f_uppercase_ratio"] == pytest.approx(0.5)
    assert f["f_politeness_count"] == 1  # "hi"


def test_question_and_request() -> None:
    f = one("Can you delete my data?")
    assert f["f_is_question"] == 1
    assert f["f_is_request"] == 1
    assert f["f_question_mark_count"] == 1
    assert f["f_token_count"] == 5
    assert f["f_kw_rights_verbs"] == 1
    assert f["f_kw_data_nouns"] == 1  # "my data" is one phrase
    assert f["f_modal_count"] == 1
    assert f["f_first_person_ratio"] == pytest.approx(1 / 5)
    # An interrogative opener without "?" is still a question; a statement is neither.
    assert one("how do you use my data")["f_is_question"] == 1
    assert one("Delete my account.")["f_is_request"] == 1
    statement = one("The weather was nice yesterday.")
    assert statement["f_is_question"] == 0
    assert statement["f_is_request"] == 0


def test_regulation_mentions() -> None:
    f = one("Under GDPR and the CCPA (Section 1798.105), and GDPR Article 17 as well")
    assert f["f_kw_regulation"] == 5
    assert f["f_allcaps_word_count"] == 3
    assert one("per Art. 15 GDPR and § 1798.100")["f_kw_regulation"] == 3
    assert one("article 99 of the rules")["f_kw_regulation"] == 0


def test_lexicon_categories() -> None:
    f = one("I withdraw my consent to cookies and tracking")
    assert f["f_kw_consent_tracking"] == 3
    assert f["f_kw_rights_verbs"] == 1
    assert one("Stop sending newsletters and targeted ads")["f_kw_marketing"] == 2
    f = one("You had a data breach and leaked my data without my consent")
    assert f["f_kw_complaint_breach"] == 3
    assert one("I want to opt-out, optout, opt out!")["f_kw_rights_verbs"] == 3
    assert one("Please erase and delete my personal data")["f_kw_data_nouns"] == 1


def test_linguistic_counts() -> None:
    assert one("I don't want this, not now, never")["f_negation_count"] == 3
    f = one("Please respond ASAP, this is urgent and must be done within 30 days")
    assert f["f_urgency_count"] == 3
    assert one("Please, thank you, kindly")["f_politeness_count"] == 3
    assert one("My lawyer will take legal action in court")["f_legal_count"] == 3
    assert one("I and my")["f_first_person_ratio"] == pytest.approx(2 / 3)
    assert one("Curly I\u2019m here and don\u2019t care")["f_negation_count"] == 1


def test_surface_ratios() -> None:
    assert one("abc123")["f_digit_ratio"] == pytest.approx(0.5)
    assert one("ABcd")["f_uppercase_ratio"] == pytest.approx(0.5)
    assert one("aa bbbb")["f_mean_word_length"] == pytest.approx(3.0)
    assert one("a,b.")["f_punctuation_ratio"] == pytest.approx(0.5)
    assert one("One. Two! Three?")["f_sentence_count"] == 3
    assert one("No punctuation here")["f_sentence_count"] == 1
    assert one("e.g. version 1.2 works. Fine")["f_sentence_count"] == 3


def test_pii_indicator_counts() -> None:
    f = one("mail a@b.com or c@d.org, call +44 20 7946 0958")
    assert f["f_pii_email"] == 2
    assert f["f_pii_phone"] == 1
    assert f["f_pii_total"] == 3
    assert one("Order #4111111111111112 arrived")["f_pii_total"] == 0


def test_precomputed_pii_counts_give_the_same_features() -> None:
    texts = pd.Series([c.text for c in CASES])
    counts = scan_texts(texts)[1]
    pd.testing.assert_frame_equal(compute_features(texts, pii=counts), compute_features(texts))
    with pytest.raises(InputError, match="scan_texts"):
        compute_features(texts, pii=counts.iloc[:3])


def test_sentiment_matches_textblob() -> None:
    from textblob import TextBlob

    texts = [VARIED[13], VARIED[14], "Can you delete my data?"]
    frame = compute_features(pd.Series(texts + texts))  # duplicates share one computation
    for i, text in enumerate(texts + texts):
        blob = TextBlob(text).sentiment
        assert frame["f_polarity"].iloc[i] == pytest.approx(blob.polarity)
        assert frame["f_subjectivity"].iloc[i] == pytest.approx(blob.subjectivity)
    assert frame["f_polarity"].iloc[0] > 0 > frame["f_polarity"].iloc[1]


def test_standalone_textblob_analyser_scores_like_textblob_en() -> None:
    """The analyser built without importing the textblob package gives textblob.en's scores,
    including the "-ly" adverbs textblob.en adds and negation."""
    from textblob.en import sentiment as textblob_en

    from privacy_ray.synth import generate_messages
    from privacy_ray.text.features import textblob_sentiment

    texts = [*VARIED, "terribly bad", "not good at all!!", "an awfully nice day", "", "Hmm."]
    texts += list(generate_messages(300, seed=11).text)
    analyse = textblob_sentiment()
    assert [tuple(analyse(t)) for t in texts] == [tuple(textblob_en(t)) for t in texts]
    assert analyse("terribly bad")[0] < 0 < analyse("an awfully nice day")[0]


def test_readability() -> None:
    f = one("The cat sat.")  # 3 words, 1 sentence, 3 syllables
    assert f["f_syllables_per_word"] == pytest.approx(1.0)
    assert f["f_flesch_reading_ease"] == pytest.approx(206.835 - 1.015 * 3 - 84.6)
    assert one("table make the")["f_syllables_per_word"] == pytest.approx(4 / 3)
    assert one("a")["f_flesch_reading_ease"] == pytest.approx(FLESCH_MAX)
    hard = one("Notwithstanding organisational considerations, interoperability necessitates.")
    assert hard["f_flesch_reading_ease"] < 0


# ------------------------------------------------------------------ lexicon


@pytest.mark.parametrize("category", sorted(LEXICON))
def test_trie_pattern_counts_like_the_flat_alternation(category: str) -> None:
    trie = re.compile(category_pattern(category))
    flat = re.compile(flat_category_pattern(category))
    texts = [t.lower() for t in VARIED] + [" ".join(LEXICON[category]).replace("*", "ing")]
    for text in texts:
        assert len(trie.findall(text)) == len(flat.findall(text)), text
    assert len(trie.findall(texts[-1])) > 0


@pytest.mark.parametrize("category", sorted(LEXICON))
def test_re2_counts_equal_python_re_on_ascii_text(category: str) -> None:
    """Features count with pyarrow's RE2; on ASCII text it must agree with Python's re."""
    texts = [t.lower() for t in VARIED if t.isascii()]
    texts.append(" ".join(LEXICON[category]).replace("*", "ed"))
    pattern = category_pattern(category)
    expected = [len(re.findall(pattern, t)) for t in texts]
    got = _arrow.count(_arrow.to_arrow(pd.Series(texts)), pattern)
    assert got.tolist() == expected
