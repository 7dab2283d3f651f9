"""The main pipeline end to end on the session's local Ray: outputs, quarantine, reconciliation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from privacy_ray.cli import app
from privacy_ray.config import LABELS

pytestmark = pytest.mark.slow
runner = CliRunner()


def run_cli(*args: str, env: dict | None = None) -> dict:
    res = runner.invoke(app, ["run", "--json", *args], env=env)
    assert res.exit_code == 0, f"{res.output}\n{res.exception!r}"
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_synthetic_run_writes_a_complete_run_folder(ray_session, tiny_model_dir, tmp_path):
    summary = run_cli(
        "--n", "200", "--seed", "5", "--output", str(tmp_path), "--model", str(tiny_model_dir)
    )
    run_dir = Path(summary["run_dir"])
    assert summary["records_in"] == 200 and summary["reconciled"] and summary["complete"]
    assert summary["records_out"] + summary["records_quarantined"] == 200
    for name in (
        "config.yaml",
        "config_sources.json",
        "stats.json",
        "summary.json",
        "features.json",
        "_SUCCESS",
    ):
        assert (run_dir / name).is_file(), name
    stats = json.loads((run_dir / "stats.json").read_text())["stages"]
    assert set(stats) == {
        "validate_raw",
        "normalize",
        "features",
        "redact",
        "embed",
        "validate_derived",
        "classify",
    }
    assert stats["validate_raw"]["rows_in"] == 200
    table = pq.read_table(run_dir / "messages")
    assert table.num_rows == summary["records_out"]
    emb_type = table.schema.field("embedding").type
    assert emb_type.list_size == 584 and str(emb_type.value_type) == "float"
    df = table.to_pandas()
    assert set(df["label"]) <= set(LABELS)
    assert np.allclose(np.stack(df["probabilities"]).sum(axis=1), 1, atol=1e-4)
    assert len([c for c in df.columns if c.startswith("f_")]) >= 25
    assert not df["text"].str.contains(r"[\w.+-]+@[\w-]+\.[\w.]+", regex=True).any()
    assert {p.name.split("=")[0] for p in (run_dir / "messages").iterdir()} == {"date"}
    assert summary["embedding_quality"]["non_finite"] == 0
    assert 0 <= summary["quality_score"] <= 100 and summary["quality"]["gate"] != "failed"
    assert (run_dir / "quality_report.html").stat().st_size > 1000
    events = [json.loads(line) for line in (run_dir / "lineage.jsonl").read_text().splitlines()]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    outputs = {o["name"].rsplit("/", 1)[-1]: o for o in events[-1]["outputs"]}
    assert outputs["messages"]["outputFacets"]["outputStatistics"]["rowCount"] == 200
    assert "embedding" in outputs["messages"]["facets"]["columnLineage"]["fields"]


def bad_rows_file(tmp_path: Path) -> Path:
    good = {
        "conversation_id": "c",
        "user_id": "u",
        "channel": "chat",
        "timestamp": "2026-01-05T10:00:00Z",
        "text": "please delete my account",
    }
    lines = [json.dumps({"message_id": f"ok{i}", **good}) for i in range(5)]
    bad = [
        {"message_id": "n1", **good, "text": None},
        {"message_id": "n2", **good, "text": ""},
        {"message_id": "n3", **good, "text": "   "},
        {"message_id": "n4", **good, "text": "x" * 1_000_001},
        {"message_id": "n5", **good, "timestamp": "yesterday-ish"},
        {"message_id": "n6", **good, "timestamp": "2099-01-01T00:00:00Z"},
        {"message_id": "n7", **good, "channel": "pigeon"},
        {"message_id": "n8", **good, "label": "spam"},
        {"message_id": "ok0", **good},
        {"message_id": "n9", **good, "text": 42},
    ]
    lines += [json.dumps(b) for b in bad]
    raw = ("\n".join(lines[:3]) + '\n{"message_id": "broken", "text": \n').encode()
    raw += "\n".join(lines[3:]).encode() + b'\n{"message_id": "u8", "text": "\xff\xfe"}\n'
    path = tmp_path / "in.jsonl"
    path.write_bytes(raw)
    return path


def test_bad_rows_are_quarantined_not_lost(ray_session, tiny_model_dir, tmp_path):
    path = bad_rows_file(tmp_path)
    relaxed = {"PRIVACY_RAY_QUALITY__MAX_QUARANTINE_SHARE": "1.0"}
    summary = run_cli("--input", str(path), "--output", str(tmp_path / "out"),
                      "--model", str(tiny_model_dir), env=relaxed)
    assert summary["records_in"] == 17
    assert summary["records_out"] == 5 and summary["records_quarantined"] == 12
    assert summary["reconciled"]
    reasons = summary["quarantine_reasons"]
    for code in (
        "text_null",
        "text_empty",
        "text_too_long",
        "timestamp_unparseable",
        "timestamp_future",
        "channel_unknown",
        "label_unknown",
        "duplicate_message_id",
        "text_not_string",
        "json_malformed",
        "invalid_utf8",
    ):
        assert reasons.get(code), (code, reasons)
    q = pd.read_parquet(Path(summary["run_dir"]) / "quarantine")
    assert len(q) == 12
    malformed = q[q["quarantine_reason"].str.startswith("json_malformed")]
    assert malformed["quarantine_reason"].iloc[0] == "json_malformed:line=4"


def test_csv_with_embedded_newlines_and_quotes(ray_session, tiny_model_dir, tmp_path):
    df = pd.DataFrame(
        {
            "message_id": ["a", "b"],
            "body": [
                'He said "delete it"\nand then, again, "delete it"',
                "where is my order, 1234?",
            ],
            "channel": ["email", "chat"],
            "timestamp": ["2026-02-01T00:00:00Z", "2026-02-02T00:00:00Z"],
        }
    )
    path = tmp_path / "in.csv"
    df.to_csv(path, index=False)
    res = runner.invoke(
        app,
        [
            "run",
            "--json",
            "--input",
            str(path),
            "--output",
            str(tmp_path / "o"),
            "--model",
            str(tiny_model_dir),
        ],
        env={"PRIVACY_RAY_INPUT__COLUMN_MAP": "{body: text}"},
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["records_in"] == 2 and summary["records_out"] == 2
    out = pq.read_table(Path(summary["run_dir"]) / "messages").to_pandas()
    assert sorted(out["message_id"]) == ["a", "b"]
    assert "\n" in out.set_index("message_id").loc["a", "text"]


def test_quality_gate_fails_the_run_with_exit_3(ray_session, tiny_model_dir, tmp_path):
    from privacy_ray.errors import QualityGateError

    path = bad_rows_file(tmp_path)
    res = runner.invoke(app, ["run", "--json", "--input", str(path), "--output",
                              str(tmp_path / "out"), "--model", str(tiny_model_dir)])
    assert isinstance(res.exception, QualityGateError), res.output
    assert res.exception.exit_code == 3 and "quarantine_share" in str(res.exception)
    (run_dir,) = (tmp_path / "out" / "runs").iterdir()
    assert (run_dir / "_INCOMPLETE").exists() and not (run_dir / "_SUCCESS").exists()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["complete"] is False and summary["reconciled"] is True
    events = [json.loads(line) for line in (run_dir / "lineage.jsonl").read_text().splitlines()]
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
