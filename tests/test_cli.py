"""The command line: help, one-line errors with exit codes, config show. No Ray needed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from privacy_ray.cli import app

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "privacy_ray", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )


def test_help_lists_commands_quickly():
    res = cli("--help")
    assert res.returncode == 0
    for command in ("run", "generate", "config", "train", "evaluate", "classify"):
        assert command in res.stdout


@pytest.mark.parametrize(
    "command", [["run"], ["generate"], ["config", "show"], ["train"], ["evaluate"], ["classify"]]
)
def test_every_command_has_examples(command):
    res = runner.invoke(app, [*command, "--help"])
    assert res.exit_code == 0, res.output
    assert "Examples:" in res.output


def test_config_error_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipeline:\n  sede: 1\n")
    res = cli("config", "show", "--config", str(bad))
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "pipeline.sede" in res.stderr
    assert "Traceback" not in res.stderr


def test_missing_input_is_one_line_exit_2(tmp_path):
    res = cli("run", "--input", str(tmp_path / "missing.parquet"), "--n", "5")
    assert res.returncode == 2, res.stderr
    assert "does not exist" in res.stderr and "Traceback" not in res.stderr


def test_unsupported_format_is_one_line(tmp_path):
    f = tmp_path / "data.xml"
    f.write_text("<x/>")
    res = cli("run", "--input", str(f))
    assert res.returncode == 2 and "format" in res.stderr and "Traceback" not in res.stderr


def test_truncated_parquet_names_the_file(tmp_path):
    import pandas as pd

    good = tmp_path / "in.parquet"
    pd.DataFrame({"message_id": ["a"], "text": ["hi"]}).to_parquet(good)
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    res = cli("run", "--input", str(good))
    assert res.returncode == 2 and str(good) in res.stderr and "Traceback" not in res.stderr


def test_config_show_json_reports_sources(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PRIVACY_RAY_PIPELINE__SEED": "9", "HOME": str(tmp_path)}
    res = cli("config", "show", "--json", env=env)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["values"]["pipeline.seed"] == 9
    assert out["sources"]["pipeline.seed"] == "env:PRIVACY_RAY_PIPELINE__SEED"


def test_evaluate_rejects_unknown_labels(tmp_path):
    f = tmp_path / "eval.jsonl"
    f.write_text('{"text": "hi", "label": "spam"}\n{"text": "x", "label": "none"}\n')
    res = runner.invoke(app, ["evaluate", "--data", str(f)])
    assert res.exit_code != 0
    assert "spam" in str(res.exception) or "spam" in res.output


def test_generate_writes_files(tmp_path):
    out = tmp_path / "m.jsonl"
    res = runner.invoke(app, ["generate", "--n", "30", "--seed", "1", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    assert len(lines) == 30 and "label" in json.loads(lines[0])
    conv = tmp_path / "c.parquet"
    res = runner.invoke(
        app, ["generate", "--kind", "conversations", "--n", "5", "--out", str(conv)]
    )
    assert res.exit_code == 0, res.output
    import pandas as pd

    assert len(pd.read_parquet(conv)) == 5
