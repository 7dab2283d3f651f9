"""MLflow tracking of ``train`` and ``evaluate`` (optional: ``pip install 'privacy-ray[mlflow]'``).

When a run is logged:

* ``--mlflow`` logs, ``--no-mlflow`` never does;
* with neither flag, a run is logged exactly when ``MLFLOW_TRACKING_URI`` is set, so a team
  that points its shell or its job at a tracking server gets every run recorded without
  changing commands, and a laptop user gets nothing unexpected.

Where: ``MLFLOW_TRACKING_URI`` (a server, ``sqlite:///...``, ...), else a local store in the
current directory: ``sqlite:///mlflow.db`` with artifacts under ``./mlruns`` (MLflow 3 refuses
the old ``./mlruns`` file backend unless ``MLFLOW_ALLOW_FILE_STORE=true``); ``mlflow ui
--backend-store-uri sqlite:///mlflow.db`` in that directory shows the runs. The experiment is
``MLFLOW_EXPERIMENT_NAME`` or ``privacy-ray``.

What: parameters (data, seed, model families, embedding settings, threshold), metrics
(held-out and evaluation scores, per label), and artifacts (``evaluation/confusion_matrix.png``,
``evaluation/metrics.json``, ``evaluation/per_label.md``; ``train`` also the whole model
directory under ``model/``, ``evaluate`` the model's ``metadata.json``).

Tracking is best effort: the model is already written when logging starts, so a missing
package or an unreachable server costs one line on stderr, never the run.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from privacy_ray.config import Settings

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
DEFAULT_EXPERIMENT = "privacy-ray"
DEFAULT_DB_FILE = "mlflow.db"
DEFAULT_ARTIFACT_DIR = "mlruns"
INSTALL_HINT = (
    "mlflow is not installed, so this run was not tracked; "
    "pip install 'privacy-ray[mlflow]' (or pass --no-mlflow)"
)
#: MLflow's limit on a parameter value.
_MAX_PARAM_CHARS = 6000

Warn = Callable[[str], None]


@dataclass(frozen=True)
class TrackedRun:
    """Where a logged run lives."""

    run_id: str
    experiment_id: str
    tracking_uri: str
    artifact_uri: str


@dataclass
class RunRecord:
    """Everything one MLflow run records; built without MLflow, so it is testable alone."""

    name: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    evaluation: dict[str, Any] | None = None
    json_artifacts: dict[str, Any] = field(default_factory=dict)
    artifact_dirs: dict[str, Path] = field(default_factory=dict)
    artifact_files: dict[str, Path] = field(default_factory=dict)


# --------------------------------------------------------------------------- when and where


def tracking_enabled(flag: bool | None, environ: Mapping[str, str] | None = None) -> bool:
    """``--mlflow`` / ``--no-mlflow`` decide; without either, MLFLOW_TRACKING_URI does."""
    environ = os.environ if environ is None else environ
    if flag is not None:
        return flag
    return bool(environ.get(TRACKING_URI_ENV, "").strip())


def tracking_uri(environ: Mapping[str, str] | None = None, cwd: str | Path | None = None) -> str:
    """MLFLOW_TRACKING_URI, else ``sqlite:///<cwd>/mlflow.db``."""
    environ = os.environ if environ is None else environ
    uri = environ.get(TRACKING_URI_ENV, "").strip()
    if uri:
        return uri
    return f"sqlite:///{(Path(cwd or os.getcwd()) / DEFAULT_DB_FILE).resolve()}"


def default_artifact_location(cwd: str | Path | None = None) -> str:
    """``./mlruns`` as a file URI: where a new experiment keeps artifacts in the local store."""
    return (Path(cwd or os.getcwd()) / DEFAULT_ARTIFACT_DIR).resolve().as_uri()


def experiment_name(environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    return environ.get(EXPERIMENT_ENV, "").strip() or DEFAULT_EXPERIMENT


# --------------------------------------------------------------------------- what


def _param(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text[:_MAX_PARAM_CHARS]


def _score_metrics(prefix: str, scores: Mapping[str, Any]) -> dict[str, float]:
    """Accuracy, macro-F1 and per-label precision/recall/F1 of a ``training.metrics`` result."""
    out: dict[str, float] = {}
    for key in ("accuracy", "macro_f1", "abstain_rate", "request_precision_non_abstained",
                "fit_seconds"):
        if scores.get(key) is not None:
            out[f"{prefix}{key}"] = float(scores[key])
    for label, s in (scores.get("per_label") or {}).items():
        if not s.get("support"):
            continue  # a label absent from the data has no meaningful score
        for k in ("precision", "recall", "f1"):
            out[f"{prefix}{label}.{k}"] = float(s[k])
    return out


def _embedding_params(settings: Settings) -> dict[str, str]:
    e = settings.embedding
    return {
        "embedding.model": e.model,
        "embedding.svd_dim": str(e.svd_dim),
        "embedding.long_text_policy": e.long_text_policy,
        "embedding.max_seq_length_tokens": str(e.max_seq_length_tokens),
        "classifier.abstain_threshold": str(settings.classifier.abstain_threshold),
    }


def _version_tags(command: str, model_dir: str | Path) -> dict[str, str]:
    from privacy_ray import __version__

    return {
        "privacy_ray.command": command,
        "privacy_ray.version": __version__,
        "privacy_ray.model_dir": str(model_dir),
    }


def training_record(
    report: Mapping[str, Any],
    model_dir: str | Path,
    settings: Settings,
    *,
    data_source: str,
    seed: int,
) -> RunRecord:
    """The run of ``privacy-ray train``: ``report`` is what ``train_model`` returned."""
    best = report["best_family"]
    families = report.get("families") or {}
    params = {
        "data": data_source,
        "seed": str(seed),
        "n_rows": str(report.get("n", "")),
        "families": ",".join(families),
        "best_family": best,
        **_embedding_params(settings),
    }
    metrics: dict[str, float] = {"n_rows": float(report.get("n", 0))}
    if report.get("encode_seconds") is not None:
        metrics["encode_seconds"] = float(report["encode_seconds"])
    for fam, scores in families.items():
        metrics.update(_score_metrics(f"heldout.{fam}.", {k: scores.get(k) for k in (
            "accuracy", "macro_f1", "fit_seconds")}))
    if best in families:
        metrics.update(_score_metrics("heldout.best.", families[best]))
    model = Path(model_dir)
    return RunRecord(
        name=f"train-{model.name}",
        params={k: _param(v) for k, v in params.items()},
        metrics=metrics,
        tags=_version_tags("train", model_dir),
        evaluation=dict(families[best]) if best in families else None,
        json_artifacts={"training_report.json": report},
        artifact_dirs={"model": model} if model.is_dir() else {},
    )


def evaluation_record(
    result: Mapping[str, Any],
    model_dir: str | Path,
    settings: Settings,
    *,
    data_source: str,
) -> RunRecord:
    """The run of ``privacy-ray evaluate``: ``result`` is what ``evaluate_model`` returned."""
    model = Path(model_dir)
    params = {
        "data": data_source,
        "n_rows": str(result.get("n", "")),
        "model_dir": str(model_dir),
        **_embedding_params(settings),
    }
    meta_file = model / "metadata.json"
    if meta_file.is_file():
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        for key in ("family", "data_sha256", "embedding_model_hash", "n_train", "seed"):
            if meta.get(key) is not None:
                params[f"model.{key}"] = meta[key]
    metrics = {"n_rows": float(result.get("n", 0)), **_score_metrics("", result)}
    return RunRecord(
        name=f"evaluate-{model.name}",
        params={k: _param(v) for k, v in params.items()},
        metrics=metrics,
        tags=_version_tags("evaluate", model_dir),
        evaluation=dict(result),
        artifact_files={"model": meta_file} if meta_file.is_file() else {},
    )


# --------------------------------------------------------------------------- logging


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:300] if lines else type(e).__name__


def log_run(
    record: RunRecord,
    *,
    environ: Mapping[str, str] | None = None,
    warn: Warn | None = None,
) -> TrackedRun | None:
    """Log ``record`` as one finished MLflow run; ``None`` (after one ``warn`` line) if MLflow is
    missing or the store cannot be written."""
    say = warn or (lambda _msg: None)
    try:
        from mlflow import MlflowClient
        from mlflow.entities import Metric, Param
    except ImportError:
        say(INSTALL_HINT)
        return None
    uri = tracking_uri(environ)
    try:
        client = MlflowClient(tracking_uri=uri)
        name = experiment_name(environ)
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            experiment_id = experiment.experiment_id
        else:
            # A configured server decides where artifacts go; the local store uses ./mlruns.
            configured = (environ if environ is not None else os.environ).get(
                TRACKING_URI_ENV, "").strip()
            experiment_id = client.create_experiment(
                name, artifact_location=None if configured else default_artifact_location())
        run = client.create_run(experiment_id, run_name=record.name, tags=record.tags)
        run_id = run.info.run_id
        try:
            now = int(time.time() * 1000)
            client.log_batch(
                run_id,
                metrics=[Metric(k, v, now, 0) for k, v in sorted(record.metrics.items())],
                params=[Param(k, v) for k, v in sorted(record.params.items())],
                tags=[],
            )
            _log_artifacts(client, run_id, record)
        except BaseException:
            client.set_terminated(run_id, status="FAILED")
            raise
        client.set_terminated(run_id, status="FINISHED")
        return TrackedRun(run_id=run_id, experiment_id=str(experiment_id), tracking_uri=uri,
                          artifact_uri=str(run.info.artifact_uri))
    except Exception as e:  # tracking must never fail the command that trained the model
        say(f"MLflow logging to {uri} failed ({_first_line(e)}); the run was not tracked")
        return None


def _log_artifacts(client: Any, run_id: str, record: RunRecord) -> None:
    with tempfile.TemporaryDirectory(prefix="privacy-ray-mlflow-") as tmp:
        staging = Path(tmp)
        if record.evaluation is not None:
            from privacy_ray.model.reports import write_evaluation_report

            write_evaluation_report(record.evaluation, staging / "evaluation")
            client.log_artifacts(run_id, str(staging / "evaluation"), "evaluation")
        for name, obj in record.json_artifacts.items():
            path = staging / name
            path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str),
                            encoding="utf-8")
            client.log_artifact(run_id, str(path))
        for artifact_path, path in record.artifact_files.items():
            client.log_artifact(run_id, str(path), artifact_path)
        for artifact_path, directory in record.artifact_dirs.items():
            client.log_artifacts(run_id, str(directory), artifact_path)


def log_training(
    report: Mapping[str, Any],
    model_dir: str | Path,
    settings: Settings,
    *,
    data_source: str,
    seed: int,
    flag: bool | None = None,
    environ: Mapping[str, str] | None = None,
    warn: Warn | None = None,
) -> TrackedRun | None:
    """Log a training run when tracking is enabled (see the module docstring)."""
    if not tracking_enabled(flag, environ):
        return None
    record = training_record(report, model_dir, settings, data_source=data_source, seed=seed)
    return log_run(record, environ=environ, warn=warn)


def log_evaluation(
    result: Mapping[str, Any],
    model_dir: str | Path,
    settings: Settings,
    *,
    data_source: str,
    flag: bool | None = None,
    environ: Mapping[str, str] | None = None,
    warn: Warn | None = None,
) -> TrackedRun | None:
    """Log an evaluation run when tracking is enabled (see the module docstring)."""
    if not tracking_enabled(flag, environ):
        return None
    record = evaluation_record(result, model_dir, settings, data_source=data_source)
    return log_run(record, environ=environ, warn=warn)
