"""The daily conversations pipeline into the sharded store, on the session's local Ray."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from privacy_ray.cli import app
from privacy_ray.pipelines.conversations import customer_text, flatten_turns

runner = CliRunner()
TURNS = [{"role": "customer", "text": "hi"}, {"role": "agent", "text": "hello, how can I help?"},
         {"role": "customer", "text": "delete my data"}]


def test_flatten_modes():
    assert flatten_turns(TURNS, "customer_only") == "[customer] hi\n[customer] delete my data"
    assert flatten_turns(TURNS, "whole").count("\n") == 2
    assert "[agent] hello" in flatten_turns(TURNS, "whole")
    assert customer_text(TURNS) == "hi\ndelete my data"


def run(*args: str) -> dict:
    res = runner.invoke(app, ["conversations", "--json", *args])
    assert res.exit_code == 0, f"{res.output}\n{res.exception!r}"
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_conversations_upsert_is_idempotent_and_searchable(ray_session, tiny_model_dir,
                                                             tmp_path):
    from privacy_ray.store import VectorStore

    store = tmp_path / "store"
    common = ("--n", "40", "--seed", "3", "--store", str(store), "--output", str(tmp_path / "o"),
              "--model", str(tiny_model_dir))
    first = run(*common)
    assert first["records_in"] == 40 and first["reconciled"]
    assert first["upserted"] == 40 and first["store_count"] == 40
    stats = json.loads((Path(first["run_dir"]) / "stats.json").read_text())
    assert {s: st["rows_in"] for s, st in stats["stages"].items()} == {
        "validate_conversations": 40, "flatten": 40, "embed_classify": 40}
    assert all(len(ids) >= 1 for ids in stats["nodes"].values())  # where each stage ran
    second = run(*common)
    assert second["store_count"] == 40  # upsert by conversation_id: nothing duplicated
    assert second["store_version"] > first["store_version"]
    from privacy_ray.model.embedder import SentenceEncoder
    from privacy_ray.synth import generate_conversations
    from privacy_ray.text import make_redactor, normalize_texts

    conv = generate_conversations(40, seed=3).iloc[7]
    text = make_redactor("regex").redact_texts(normalize_texts(pd.Series(
        [flatten_turns(list(conv["turns"]), "customer_only")])))
    vs = VectorStore.open(str(store))
    assert vs.stats()["count"] == 40
    hits = vs.search(SentenceEncoder().encode(text.tolist()), k=3)[0]
    assert hits[0].conversation_id == conv["conversation_id"]
    assert hits[0].score > 0.99


@pytest.mark.slow
def test_bad_conversations_are_quarantined(ray_session, tiny_model_dir, tmp_path):
    rows = [
        {"conversation_id": "ok", "user_id": "u1", "channel": "chat",
         "started_at": "2026-01-02T10:00:00Z", "turns": json.dumps(TURNS)},
        {"conversation_id": "no-customer", "user_id": "u1", "channel": "chat",
         "started_at": "2026-01-02T10:00:00Z",
         "turns": json.dumps([{"role": "agent", "text": "hello"}])},
        {"conversation_id": "bad-turns", "user_id": "u2", "channel": "chat",
         "started_at": "2026-01-02T10:00:00Z", "turns": "not json"},
        {"conversation_id": "bad-date", "user_id": "u2", "channel": "chat",
         "started_at": "someday", "turns": json.dumps(TURNS)},
        {"conversation_id": "other-day", "user_id": "u3", "channel": "email",
         "started_at": "2026-01-03T10:00:00Z", "turns": json.dumps(TURNS)},
    ]
    path = tmp_path / "conv.jsonl"
    pd.DataFrame(rows).to_json(path, orient="records", lines=True)
    out = run("--input", str(path), "--store", str(tmp_path / "s"), "--date", "2026-01-02",
              "--output", str(tmp_path / "o"), "--model", str(tiny_model_dir))
    assert (out["records_in"], out["upserted"], out["records_quarantined"],
            out["skipped_other_day"]) == (5, 1, 3, 1)
    assert out["reconciled"]
    assert set(out["quarantine_reasons"]) == {"no_customer_turn", "turns_missing",
                                              "started_at_unparseable"}
