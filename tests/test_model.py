"""Embeddings, the classifier bundle, its artifact format and predictions."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from privacy_ray.config import LABELS, ClassifierConfig
from privacy_ray.errors import ModelError
from privacy_ray.model.classifier import due_dates, infer_regulation, load_bundle
from privacy_ray.model.embedder import (
    SentenceEncoder,
    budget_batches,
    configure_tokenizer_threads,
    embedding_quality,
    pad_token_ids,
)


def test_regulation_cues():
    texts = pd.Series(
        [
            "Under Article 17 GDPR I request erasure",
            "As a California resident under the CCPA (1798.105) delete my data",
            "delete my data please",
            "GDPR and also CCPA and CPRA",
        ]
    )
    assert infer_regulation(texts).tolist() == ["GDPR", "CCPA", "unknown", "CCPA"]
    assert infer_regulation(texts, default="GDPR").tolist()[2] == "GDPR"


def test_due_dates_by_regulation():
    cfg = ClassifierConfig()
    ts = pd.Series(pd.to_datetime(["2026-01-31T12:00:00Z"] * 3, utc=True))
    due = due_dates(ts, pd.Series(["GDPR", "CCPA", "unknown"]), cfg)
    assert due[0] == pd.Timestamp("2026-02-28T12:00:00Z")  # one calendar month, clipped
    assert due[1] == pd.Timestamp("2026-03-17T12:00:00Z")  # 45 days
    assert due[2] == due[0]  # unknown: the earlier deadline


def test_embedding_quality_detects_collapse():
    rng = np.random.default_rng(0)
    healthy = rng.normal(size=(50, 16)).astype(np.float32)
    q = embedding_quality(healthy)
    assert q["non_finite"] == 0 and abs(q["mean_pairwise_cosine"]) < 0.2
    collapsed = np.tile(healthy[:1], (50, 1))
    assert embedding_quality(collapsed)["mean_pairwise_cosine"] > 0.99
    broken = healthy.copy()
    broken[3, 0] = np.nan
    broken[4] = 0
    q = embedding_quality(broken)
    assert (q["non_finite"], q["zero_norm"]) == (1, 1)


def test_budget_batches_bound_padding_and_rows():
    lengths = np.array([5] * 300 + [40] * 30 + [200, 256, 256])
    spans = budget_batches(lengths, token_budget=512, max_rows=64)
    assert spans[0][0] == 0 and spans[-1][1] == len(lengths)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))  # no gap, no overlap
    for start, stop in spans:
        rows = stop - start
        assert rows <= 64
        assert rows == 1 or rows * lengths[stop - 1] <= 512
    # the last six 40s; then 200 and 256 (2 x 256 = 512 fits); the second 256 alone
    assert [stop - start for start, stop in spans[-3:]] == [6, 2, 1]
    assert spans[0] == (0, 64)  # short texts fill whole batches
    assert budget_batches(np.array([], dtype=int), 512, 64) == []
    assert budget_batches(np.array([900]), 512, 64) == [(0, 1)]  # longer than the budget


def test_pad_token_ids_pads_on_the_tokenizers_side():
    ids, mask = pad_token_ids([[1, 2, 3], [4]], pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    ids, mask = pad_token_ids([[1, 2, 3], [4]], pad_id=9, left=True)
    assert ids.tolist() == [[1, 2, 3], [9, 9, 4]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]


@pytest.mark.parametrize(("device", "threads", "parallel", "rayon"), [
    ("cpu", 4, "false", None),  # the model's threads have the cores
    ("cuda", 4, "true", "4"),  # the tokenizer paces a GPU: the actor's CPUs, not the node's
    ("cuda", None, "true", None),
])
def test_tokenizer_threads_follow_the_device(monkeypatch, device, threads, parallel, rayon):
    monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    monkeypatch.delenv("RAYON_NUM_THREADS", raising=False)
    configure_tokenizer_threads(device, threads)
    assert os.environ["TOKENIZERS_PARALLELISM"] == parallel
    assert os.environ.get("RAYON_NUM_THREADS") == rayon
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")  # the user's setting wins
    configure_tokenizer_threads("cuda", 2)
    assert os.environ["TOKENIZERS_PARALLELISM"] == "false"


@pytest.fixture(scope="module")
def encoder():
    return SentenceEncoder().load()


@pytest.mark.slow
def test_texts_are_cut_as_token_ids_by_the_long_text_policy(encoder):
    """One tokenisation per text: the policy cuts ids (no decode and tokenise again), special
    tokens go around every row, and the vectors are the model's for exactly those ids."""
    tokenizer = encoder.model.tokenizer
    long_text = " ".join(f"word{i}" for i in range(400))
    ids = tokenizer(long_text, add_special_tokens=False)["input_ids"]
    window = 254  # 256 less [CLS] and [SEP]
    assert len(ids) > 2 * window
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    for policy, want in [
        ("truncate", [ids[:window]]),
        ("head_tail", [ids[:127] + ids[-127:]]),
        ("chunk_mean", [ids[i:i + window] for i in range(0, len(ids), window)]),
    ]:
        enc = SentenceEncoder(long_text_policy=policy)
        enc._model, enc.resolved_device = encoder._model, "cpu"
        rows, owners = enc._token_rows([long_text, "short"])
        assert rows[:-1] == [[cls, *piece, sep] for piece in want]
        assert owners.tolist() == [0] * len(want) + [1]
    # short texts: the vectors sentence-transformers gives for the same texts
    texts = ["please delete my account", "Where is my parcel?", "", "STOP emailing me!!"]
    bare = encoder.model.module.encode(texts, normalize_embeddings=True)
    assert np.min((encoder.encode(texts) * bare).sum(axis=1)) > 0.99999


@pytest.mark.slow
def test_encoder_shape_norm_determinism(encoder):
    texts = ["please delete my account", "what is my balance", ""]
    a = encoder.encode(texts)
    b = encoder.encode(list(reversed(texts)))[::-1]
    assert a.shape == (3, 384) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-4)
    assert np.allclose(a, b, atol=1e-5)


@pytest.mark.slow
def test_token_budget_batches_give_the_same_vectors(encoder):
    texts = ["hi", "delete my account please", "I request a copy of my data. " * 30, "", "why?"]
    fixed = SentenceEncoder(cpu_token_budget=0).load()
    budgeted = SentenceEncoder(cpu_token_budget=64, cpu_batch_size=2).load()
    assert np.allclose(fixed.encode(texts), budgeted.encode(texts), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["truncate", "head_tail", "chunk_mean"])
def test_long_text_policies(policy):
    enc = SentenceEncoder(long_text_policy=policy).load()
    long_text = "I request a copy of my data. " + "filler words here. " * 400 + "Regards, Ann"
    v = enc.encode([long_text, "short"])
    assert v.shape == (2, 384) and np.isfinite(v).all()
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)


@pytest.mark.slow
def test_bundle_roundtrip_layout_and_calibration(tiny_model_dir, encoder):
    from privacy_ray.api import Classifier

    clf = Classifier(tiny_model_dir)
    vectors = clf.embed(["delete my data", "where is my parcel"])
    assert vectors.shape == (2, 584)
    assert np.allclose(np.linalg.norm(vectors[:, :384], axis=1), 1, atol=1e-4)
    assert np.allclose(np.linalg.norm(vectors[:, 384:], axis=1), 1, atol=1e-4)
    out = clf.classify(
        [
            "Under GDPR Article 17 please erase all my personal data",
            "my card has not arrived yet",
            "",
            "x" * 100_000,
            "Löschen Sie bitte",
        ]
    )
    assert list(out.columns[:3]) == ["text", "label", "confidence"]
    for probs, conf, abstain in zip(
        out["probabilities"], out["confidence"], out["abstain"], strict=True
    ):
        assert set(probs) == set(LABELS)
        assert abs(sum(probs.values()) - 1) < 1e-4
        assert abs(max(probs.values()) - conf) < 1e-4
        assert abstain == (conf < clf.settings.classifier.abstain_threshold)
    first = out.iloc[0]
    if first["label"] in ("deletion_request",):
        assert first["regulation"] == "GDPR" and pd.notna(first["due_by"])


@pytest.mark.slow
def test_abstain_threshold_is_honoured(tiny_model_dir):
    from privacy_ray.api import Classifier
    from privacy_ray.config import Settings

    s = Settings()
    s.classifier.abstain_threshold = 1.0
    out = Classifier(tiny_model_dir, s).classify(["delete my data", "hello"])
    assert out["abstain"].all()


@pytest.mark.slow
def test_missing_and_corrupted_model_dirs(tmp_path, tiny_model_dir):
    with pytest.raises(ModelError, match="does not exist"):
        load_bundle(tmp_path / "nope")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "classifier.skops").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="classifier.skops"):
        load_bundle(broken)
    (broken / "classifier.skops").unlink()
    with pytest.raises(ModelError, match="incomplete"):
        load_bundle(broken)


@pytest.mark.slow
def test_version_and_embedder_mismatch(tmp_path, tiny_model_dir):
    d = tmp_path / "m"
    shutil.copytree(tiny_model_dir, d)
    meta = json.loads((d / "metadata.json").read_text())
    with pytest.raises(ModelError, match="trained on embeddings of"):
        load_bundle(d, embedding_model="other-model")
    meta["versions"]["scikit-learn"] = "0.1.0"
    (d / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="scikit-learn 0.1.0"):
        load_bundle(d)
    meta["format_version"] = 99
    (d / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="format 99"):
        load_bundle(d)


@pytest.mark.slow
def test_evaluate_json_schema_and_values(tiny_model_dir, tmp_path):
    from typer.testing import CliRunner

    from privacy_ray.cli import app

    rows = [{"text": "Please delete my account and all my personal data", "label":
             "deletion_request"},
            {"text": "where is my parcel, it is late", "label": "none"},
            {"text": "my card has not arrived", "label": "none"}]
    f = tmp_path / "eval.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    res = CliRunner().invoke(app, ["evaluate", "--data", str(f), "--model", str(tiny_model_dir),
                                   "--json", "--report", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["n"] == 3
    assert set(out["per_label"]) == set(LABELS)
    assert out["per_label"]["none"]["support"] == 2
    matrix = np.asarray(out["confusion_matrix"]["matrix"])
    assert out["confusion_matrix"]["labels"] == list(LABELS) and matrix.sum() == 3
    assert abs(out["accuracy"] - np.trace(matrix) / 3) < 1e-9
    assert 0 <= out["macro_f1"] <= 1
    assert (tmp_path / "rep" / "confusion_matrix.png").stat().st_size > 1000


@pytest.mark.slow
def test_classify_cli_prints_json_per_message(tiny_model_dir):
    from typer.testing import CliRunner

    from privacy_ray.cli import app

    res = CliRunner().invoke(app, ["classify", "I want a copy of all data you hold about me",
                                   "--model", str(tiny_model_dir)])
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout.strip().splitlines()[-1])
    assert row["label"] in LABELS and set(row["probabilities"]) == set(LABELS)
    assert isinstance(row["abstain"], bool)


EVAL_SETS = {"handwritten_eval.jsonl": 30, "handwritten_eval_2.jsonl": 8}
EVAL_STYLES = {"formal_letter", "chat", "lowercase_question", "dev_post", "email", "social",
               "banking", "travel", "retail", "other"}


def test_handwritten_eval_sets_are_balanced_disjoint_and_out_of_training():
    """The evaluation sets (tests/data/README.md): every label equally often, documented
    styles, no message in both, and none of six words or more verbatim in the default model's
    generated training data (stock lines such as "stop emailing me" occur in both naturally)."""
    from pathlib import Path

    from privacy_ray.config import Settings
    from privacy_ray.model.training import DEFAULT_MODEL_SEED
    from privacy_ray.synth import generate_messages

    data = Path(__file__).parent / "data"
    texts: dict[str, set[str]] = {}
    for name, per_label in EVAL_SETS.items():
        df = pd.read_json(data / name, lines=True)
        assert df["label"].value_counts().to_dict() == dict.fromkeys(LABELS, per_label), name
        assert set(df["style"]) <= EVAL_STYLES, name
        texts[name] = {" ".join(t.lower().split()) for t in df["text"]}
        assert len(texts[name]) == len(df), f"{name} repeats a message"
    first, second = texts.values()
    assert not first & second
    training = generate_messages(Settings().classifier.training_messages,
                                 seed=DEFAULT_MODEL_SEED)["text"]
    seen = {" ".join(t.lower().split()) for t in training}
    distinctive = {t for t in first | second if len(t.split()) >= 6}
    assert not distinctive & seen
