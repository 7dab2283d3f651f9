"""MLflow tracking of train / evaluate: when it is on, what a run records, and that a missing
package or a broken store never fails the command. Logging tests use the real mlflow package
against a local SQLite store (skipped when mlflow is not installed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from privacy_ray import tracking
from privacy_ray.config import LABELS, Settings
from privacy_ray.model.training import metrics as score

SAMPLE = [
    {"text": "Please delete my account and all my personal data", "label": "deletion_request"},
    {"text": "I want a copy of all the data you hold about me", "label": "access_request"},
    {"text": "where is my parcel, it is late", "label": "none"},
    {"text": "my card has not arrived", "label": "none"},
]


def _report() -> dict:
    """A training report shaped like ``train_model``'s, with real scores."""
    truth = ["none", "none", "deletion_request", "access_request", "opt_out", "none"]
    pred = ["none", "opt_out", "deletion_request", "access_request", "opt_out", "none"]
    fams = {"logreg": dict(score(truth, pred), fit_seconds=0.5),
            "mlp": dict(score(truth, ["none"] * 6), fit_seconds=1.5)}
    return {"best_family": "logreg", "families": fams, "encode_seconds": 2.0, "n": 6}


def _model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    (d / "metadata.json").write_text(json.dumps({"family": "logreg", "n_train": 6, "seed": 3}))
    (d / "classifier.skops").write_bytes(b"weights")
    return d


def test_enabled_by_flag_or_by_tracking_uri():
    assert tracking.tracking_enabled(None, {}) is False
    assert tracking.tracking_enabled(None, {"MLFLOW_TRACKING_URI": "  "}) is False
    assert tracking.tracking_enabled(None, {"MLFLOW_TRACKING_URI": "http://mlflow:5000"})
    assert tracking.tracking_enabled(True, {}) is True
    assert tracking.tracking_enabled(False, {"MLFLOW_TRACKING_URI": "http://mlflow:5000"}) is False


def test_default_store_is_local_sqlite_with_artifacts_in_mlruns(tmp_path):
    assert tracking.tracking_uri({}, cwd=tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert tracking.tracking_uri({"MLFLOW_TRACKING_URI": "http://h:5000"}) == "http://h:5000"
    assert tracking.default_artifact_location(tmp_path) == (tmp_path / "mlruns").resolve().as_uri()
    assert tracking.experiment_name({}) == "privacy-ray"
    assert tracking.experiment_name({"MLFLOW_EXPERIMENT_NAME": "triage"}) == "triage"


def test_training_record_holds_params_scores_and_the_model(tmp_path):
    model = _model_dir(tmp_path)
    rec = tracking.training_record(_report(), model, Settings(), data_source="synthetic", seed=7)
    assert rec.params["seed"] == "7" and rec.params["best_family"] == "logreg"
    assert rec.params["families"] == "logreg,mlp"
    assert rec.params["embedding.model"] == "all-MiniLM-L6-v2"
    best = _report()["families"]["logreg"]
    assert rec.metrics["heldout.best.macro_f1"] == pytest.approx(best["macro_f1"])
    assert rec.metrics["heldout.mlp.accuracy"] == pytest.approx(0.5)
    assert rec.metrics["heldout.best.opt_out.precision"] == pytest.approx(0.5)
    # labels absent from the held-out data get no per-label score
    assert "heldout.best.portability_request.f1" not in rec.metrics
    assert rec.artifact_dirs == {"model": model}
    assert rec.evaluation["confusion_matrix"]["labels"] == list(LABELS)
    assert rec.tags["privacy_ray.command"] == "train"


def test_evaluation_record_reads_the_model_metadata(tmp_path):
    model = _model_dir(tmp_path)
    result = dict(score(["none", "opt_out"], ["none", "none"]), abstain_rate=0.5,
                  request_precision_non_abstained=None)
    rec = tracking.evaluation_record(result, model, Settings(), data_source="eval.jsonl")
    assert rec.params["model.family"] == "logreg" and rec.params["data"] == "eval.jsonl"
    assert rec.metrics["accuracy"] == pytest.approx(0.5)
    assert rec.metrics["abstain_rate"] == pytest.approx(0.5)
    assert "request_precision_non_abstained" not in rec.metrics
    assert rec.artifact_files == {"model": model / "metadata.json"}


def test_missing_mlflow_is_a_one_line_hint_not_a_crash(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what an absent package looks like
    said: list[str] = []
    run = tracking.log_training(_report(), _model_dir(tmp_path), Settings(),
                                data_source="synthetic", seed=1, flag=True, environ={},
                                warn=said.append)
    assert run is None
    assert said == [tracking.INSTALL_HINT]
    assert "pip install 'privacy-ray[mlflow]'" in said[0] and "\n" not in said[0]


def test_disabled_tracking_does_not_touch_mlflow(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    said: list[str] = []
    assert tracking.log_evaluation({"n": 0}, tmp_path, Settings(), data_source="x", flag=None,
                                   environ={}, warn=said.append) is None
    assert said == []


# --------------------------------------------------------------------------- real mlflow


@pytest.fixture
def mlflow_client():
    mlflow = pytest.importorskip("mlflow")
    return mlflow.MlflowClient


def test_training_run_is_logged_to_a_local_store(tmp_path, monkeypatch, mlflow_client):
    monkeypatch.chdir(tmp_path)  # the default store lives in the current directory
    model = _model_dir(tmp_path)
    report = _report()
    run = tracking.log_training(report, model, Settings(), data_source="synthetic", seed=7,
                                flag=True, environ={})
    assert run is not None
    assert run.tracking_uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    client = mlflow_client(run.tracking_uri)
    logged = client.get_run(run.run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.params["best_family"] == "logreg"
    assert logged.data.metrics["heldout.best.macro_f1"] == pytest.approx(
        report["families"]["logreg"]["macro_f1"])
    artifacts = {a.path for a in client.list_artifacts(run.run_id)}
    assert {"evaluation", "model", "training_report.json"} <= artifacts
    evaluation = {a.path for a in client.list_artifacts(run.run_id, "evaluation")}
    assert {"evaluation/confusion_matrix.png", "evaluation/metrics.json"} <= evaluation
    local = Path(client.download_artifacts(run.run_id, "evaluation", str(tmp_path / "dl")))
    assert (local / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((local / "metrics.json").read_text())
    assert saved["confusion_matrix"] == report["families"]["logreg"]["confusion_matrix"]
    assert {a.path for a in client.list_artifacts(run.run_id, "model")} == {
        "model/metadata.json", "model/classifier.skops"}
    # artifacts of the default store sit under ./mlruns
    assert (tmp_path / "mlruns").is_dir()


def test_unwritable_store_warns_and_returns_none(tmp_path, mlflow_client):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    said: list[str] = []
    run = tracking.log_evaluation(
        dict(score(["none"], ["none"])), _model_dir(tmp_path), Settings(), data_source="x",
        flag=True, environ={"MLFLOW_TRACKING_URI": f"sqlite:///{blocker}/sub/mlflow.db"},
        warn=said.append)
    assert run is None
    assert len(said) == 1 and said[0].startswith("MLflow logging to sqlite:///")


@pytest.mark.slow
def test_cli_evaluate_logs_when_tracking_uri_is_set(tiny_model_dir, tmp_path, monkeypatch,
                                                    mlflow_client):
    from typer.testing import CliRunner

    from privacy_ray.cli import app

    monkeypatch.chdir(tmp_path)  # MLflow puts a configured SQLite store's artifacts in ./mlruns
    data = tmp_path / "eval.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in SAMPLE) + "\n")
    uri = f"sqlite:///{tmp_path}/store.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "privacy-ray-test")
    args = ["evaluate", "--data", str(data), "--model", str(tiny_model_dir), "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    client = mlflow_client(uri)
    logged = client.get_run(out["mlflow_run_id"])
    assert logged.data.metrics["accuracy"] == pytest.approx(out["accuracy"])
    assert logged.data.params["data"] == str(data)
    assert logged.data.params["model.family"] == json.loads(
        (tiny_model_dir / "metadata.json").read_text())["family"]
    paths = {a.path for a in client.list_artifacts(logged.info.run_id, "evaluation")}
    assert "evaluation/confusion_matrix.png" in paths
    matrix = np.asarray(out["confusion_matrix"]["matrix"])
    assert matrix.sum() == len(SAMPLE)

    # --no-mlflow wins over the environment
    res = CliRunner().invoke(app, [*args, "--no-mlflow"])
    assert res.exit_code == 0, res.output
    assert "mlflow_run_id" not in json.loads(res.stdout.strip().splitlines()[-1])
    experiment = client.get_experiment_by_name("privacy-ray-test")
    assert len(client.search_runs([experiment.experiment_id])) == 1


@pytest.mark.slow
def test_cli_train_with_mlflow_flag_uses_the_local_store(tmp_path, monkeypatch, mlflow_client):
    from typer.testing import CliRunner

    from privacy_ray.cli import app

    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["train", "--n", "300", "--seed", "42", "--out",
                                   str(tmp_path / "m"), "--mlflow", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    client = mlflow_client(f"sqlite:///{tmp_path.resolve()}/mlflow.db")
    logged = client.get_run(out["mlflow_run_id"])
    best = out["families"][out["best_family"]]
    assert logged.data.metrics["heldout.best.macro_f1"] == pytest.approx(best["macro_f1"])
    assert logged.data.params["data"] == "synthetic" and logged.data.params["seed"] == "42"
    model_files = {a.path for a in client.list_artifacts(logged.info.run_id, "model")}
    assert "model/metadata.json" in model_files and "model/classifier.skops" in model_files


@pytest.mark.slow
def test_cli_without_mlflow_package_still_evaluates(tiny_model_dir, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from privacy_ray.cli import app

    monkeypatch.setitem(sys.modules, "mlflow", None)
    data = tmp_path / "eval.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in SAMPLE[:2]) + "\n")
    res = CliRunner().invoke(app, ["evaluate", "--data", str(data), "--model",
                                   str(tiny_model_dir), "--mlflow", "--json"])
    assert res.exit_code == 0, res.output
    assert tracking.INSTALL_HINT in res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["n"] == 2
