"""PII redaction: the labelled table, the batch API, validators and the Presidio comparison."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pandas as pd
import pytest

from privacy_ray.errors import DependencyError, InputError
from privacy_ray.text.redaction import (
    ENTITIES,
    PiiSpan,
    detect_pii,
    evaluate,
    iban_valid,
    load_pii_cases,
    luhn_valid,
    make_redactor,
    pii_counts,
    placeholder,
    redact,
    redact_texts,
    resolve_overlaps,
    scan_texts,
    value_span,
)

CASES = load_pii_cases(Path(__file__).parent / "data" / "pii_cases.yaml")
POSITIVES = [c for c in CASES if not c.is_near_miss]
NEAR_MISSES = [c for c in CASES if c.is_near_miss]


def test_table_is_large_and_covers_every_entity() -> None:
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)
    assert len(NEAR_MISSES) >= 20
    per_entity = {e: 0 for e in ENTITIES}
    for case in POSITIVES:
        for entity, value in case.pii:
            per_entity[entity] += 1
            value_span(case, value)  # every value occurs verbatim in its text
    assert all(n >= 2 for n in per_entity.values()), per_entity


@pytest.mark.parametrize("case", POSITIVES, ids=lambda c: c.id)
def test_positive_is_redacted_with_its_placeholder(case) -> None:
    spans = detect_pii(case.text)
    out = redact(case.text)
    for entity, value in case.pii:
        start, end = value_span(case, value)
        assert any(s.entity == entity and s.start <= start and s.end >= end for s in spans), (
            entity,
            value,
            spans,
        )
        assert placeholder(entity) in out
        assert value not in out
    assert out.count("<") - case.text.count("<") == len(case.pii)


@pytest.mark.parametrize("case", NEAR_MISSES, ids=lambda c: c.id)
def test_near_miss_is_not_flagged(case) -> None:
    assert detect_pii(case.text) == []
    assert redact(case.text) == case.text


def test_regex_engine_has_full_recall_on_the_table() -> None:
    ev = evaluate(detect_pii, CASES)
    assert ev.missed == []
    assert ev.near_misses_flagged == []
    assert ev.recall == 1.0


def test_batch_redaction_matches_single_text_redaction() -> None:
    texts = [c.text for c in CASES] + ["", "plain text, nothing here", "Dear Ms. Novak"]
    # Not normalised: odd whitespace and Unicode digits must not slip past the batch gates.
    texts += [
        c.text.replace(" ", "\u00a0").replace("\n", "\u2028") for c in CASES if not c.is_near_miss
    ]
    texts += ["my name is\u00a0Łukasz Nowak", "call +1 \uff14\uff11\uff15 555 0132", "Ünited"]
    series = pd.Series(texts, index=range(100, 100 + len(texts)), name="text")
    out = redact_texts(series)
    assert list(out.index) == list(series.index)
    assert out.name == "text"
    assert out.tolist() == [redact(t) for t in texts]


def test_batch_handles_missing_values_and_object_dtype() -> None:
    series = pd.Series(["mail a@b.com", None, float("nan")], dtype=object)
    assert redact_texts(series).tolist() == ["mail <EMAIL_ADDRESS>", "", ""]
    assert redact_texts(pd.Series([], dtype=object)).tolist() == []
    assert list(pii_counts(pd.Series([], dtype=object)).columns) == list(ENTITIES)


def test_pii_counts_one_column_per_entity() -> None:
    series = pd.Series(
        [
            "a@b.com, c@d.org and +44 20 7946 0958",
            "card 4111 1111 1111 1111 from 10.0.0.12",
            "nothing",
        ],
        index=["x", "y", "z"],
    )
    counts = pii_counts(series)
    assert list(counts.columns) == list(ENTITIES)
    assert list(counts.index) == ["x", "y", "z"]
    assert counts.loc["x", "EMAIL_ADDRESS"] == 2
    assert counts.loc["x", "PHONE_NUMBER"] == 1
    assert counts.loc["y", "CREDIT_CARD"] == 1
    assert counts.loc["y", "IP_ADDRESS"] == 1
    assert counts.loc["z"].sum() == 0
    assert counts.sum(axis=1).tolist() == [3, 2, 0]


def test_scan_returns_redaction_and_counts_together() -> None:
    redacted, counts = scan_texts(pd.Series(["ssn 123-45-6789", "hi"]))
    assert redacted.tolist() == ["ssn <US_SSN>", "hi"]
    assert counts["US_SSN"].tolist() == [1, 0]


def test_original_pii_never_survives_in_a_long_message() -> None:
    values = [v for c in POSITIVES for _, v in c.pii]
    text = "\n".join(c.text for c in POSITIVES)
    out = redact(text)
    for value in values:
        assert value not in out, value


def test_luhn_and_iban_validators() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    assert luhn_valid("378282246310005")
    assert iban_valid("DE89 3704 0044 0532 0130 00")
    assert iban_valid("gb82west12345698765432")
    assert not iban_valid("DE89 3704 0044 0532 0130 01")
    assert not iban_valid("DE89 3704 0044 0532 0130")  # wrong length for DE
    assert not iban_valid("XX89 3704 0044 0532 0130 00")  # unknown country


def test_card_rules_prefix_separators_and_order_numbers() -> None:
    assert detect_pii("order 4111111111111112") == []  # Luhn fails
    assert detect_pii("order 1234567812345670") == []  # Luhn ok, no issuer starts with 1
    assert detect_pii("4111 1111-1111 1111") == []  # mixed separators
    spans = detect_pii("card 4111 1111 1111 1111 exp 12/27 cvv 123")
    assert [(s.entity, s.start, s.end) for s in spans] == [("CREDIT_CARD", 5, 24)]
    fullwidth = "card \uff14\uff11\uff11\uff11" * 1 + "\uff11" * 12
    assert redact(fullwidth) == "card <CREDIT_CARD>"


def test_overlaps_prefer_higher_priority_then_longer() -> None:
    spans = [
        PiiSpan("PHONE_NUMBER", 0, 10),
        PiiSpan("EMAIL_ADDRESS", 5, 20),
        PiiSpan("PHONE_NUMBER", 22, 30),
        PiiSpan("PHONE_NUMBER", 22, 26),
    ]
    rank = {e: i for i, e in enumerate(ENTITIES)}
    kept = resolve_overlaps(spans, lambda s: (rank[s.entity], s.start - s.end))
    assert kept == [PiiSpan("EMAIL_ADDRESS", 5, 20), PiiSpan("PHONE_NUMBER", 22, 30)]
    # An email whose local part looks like a phone number stays one email.
    assert redact("write to 4155550132@example.com") == "write to <EMAIL_ADDRESS>"


def test_person_detection_is_conservative() -> None:
    assert redact("my name is John Smith") == "my name is <PERSON>"
    assert redact("Dear Ms. Novak,") == "Dear Ms. <PERSON>,"
    assert redact("Best regards,\nJane Doe\nSupport") == "Best regards,\n<PERSON>\nSupport"
    for text in ("Dear Sir or Madam,", "Thanks,\nThe Team", "my name is wrong", "Best Buy"):
        assert detect_pii(text) == [], text


def test_bank_numbers_need_account_context() -> None:
    assert redact("account number 12345678") == "account number <US_BANK_NUMBER>"
    assert detect_pii("order number 12345678") == []
    assert detect_pii("my account is 3 years old") == []


def test_make_redactor_by_name() -> None:
    engine = make_redactor("regex")
    assert engine.name == "regex"
    assert engine.redact("a@b.com") == "<EMAIL_ADDRESS>"
    assert engine.redact_texts(pd.Series(["a@b.com"])).tolist() == ["<EMAIL_ADDRESS>"]
    with pytest.raises(InputError, match="regex, presidio"):
        make_redactor("spacy")  # type: ignore[arg-type]


def test_presidio_engine_missing_raises_dependency_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "presidio_analyzer", None)
    with pytest.raises(DependencyError, match="pip install"):
        make_redactor("presidio")


def test_non_series_input_is_rejected() -> None:
    with pytest.raises(InputError, match="pd.Series"):
        redact_texts(["a@b.com"])  # type: ignore[arg-type]


@pytest.mark.slow
def test_regex_recall_at_least_presidio_pattern_recall(monkeypatch) -> None:
    pytest.importorskip("presidio_analyzer")
    pytest.importorskip("spacy")

    def no_network(*args, **kwargs):
        raise AssertionError("the presidio engine tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    engine = make_redactor("presidio")
    assert engine.redact("mail jane.doe@example.com now") == "mail <EMAIL_ADDRESS> now"
    ours = evaluate(detect_pii, CASES, "regex")
    theirs = evaluate(engine.detect, CASES, "presidio")
    assert ours.recall >= theirs.recall
    assert ours.near_misses_flagged == []
    batch = engine.redact_texts(pd.Series(["card 4111 1111 1111 1111", ""]))
    assert batch.tolist() == ["card <CREDIT_CARD>", ""]
