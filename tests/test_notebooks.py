"""The notebooks are committed without outputs and run top to bottom (executed with nbclient).

Sizes and the model come from environment variables the notebooks read, so they run small here:
the tiny model instead of the default one (which takes minutes to train), the session's Ray
through ``RAY_ADDRESS`` so no second Ray starts. ``03-cluster`` needs Ray's job API, which
lives in the dashboard that the session's Ray does not run: it starts its own 1-CPU local Ray.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

NOTEBOOKS = REPO_ROOT / "notebooks"
NAMES = ("01-quickstart", "02-vector-search", "03-cluster")
CELL_TIMEOUT_S = 600


def _read(name: str):
    import nbformat

    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_committed_clean(name):
    import nbformat

    nb = _read(name)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a notebook without code"
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, "commit without outputs"
    source = "\n".join(c.source for c in code)
    assert "PRIVACY_RAY_NOTEBOOK_N" in source and "PRIVACY_RAY_NOTEBOOK_MODEL_DIR" in source
    assert (NOTEBOOKS / f"{name}.ipynb").stat().st_size < 20_000


def _execute(name: str, workdir: Path):
    from nbclient import NotebookClient

    nb = _read(name)
    NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(workdir)}}).execute()
    return nb


def _outputs(nb, output_type: str | None = None) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if output_type is None or o.output_type == output_type]


def _text(nb) -> str:
    parts = []
    for o in _outputs(nb):
        if o.output_type == "stream":
            parts.append(o.text)
        elif "text/plain" in o.get("data", {}):
            parts.append(o.data["text/plain"])
    return "\n".join(parts)


@pytest.fixture
def notebook_env(monkeypatch, tmp_path, tiny_model_dir):
    """Small sizes, the tiny model and a private output folder for the kernel."""
    monkeypatch.setenv("PRIVACY_RAY_NOTEBOOK_MODEL_DIR", str(tiny_model_dir))
    monkeypatch.setenv("PRIVACY_RAY_NOTEBOOK_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    return tmp_path / "out"


@pytest.mark.slow
def test_quickstart_runs_the_pipeline_and_plots(ray_session, notebook_env, monkeypatch,
                                                tmp_path):
    monkeypatch.setenv("RAY_ADDRESS", ray_session.get_runtime_context().gcs_address)
    monkeypatch.setenv("PRIVACY_RAY_NOTEBOOK_N", "150")
    nb = _execute("01-quickstart", tmp_path)
    runs = sorted((notebook_env / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "_SUCCESS").exists()
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert summary["records_in"] == 150 and summary["reconciled"]
    images = [o for o in _outputs(nb, "display_data") if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # features, labels, confusion matrix
    text = _text(nb)
    assert "records in 150" in text and "macro avg" in text


@pytest.mark.slow
def test_vector_search_builds_searches_and_erases(ray_session, notebook_env, monkeypatch,
                                                  tmp_path):
    from privacy_ray.store import VectorStore, read_erasure_log

    monkeypatch.setenv("RAY_ADDRESS", ray_session.get_runtime_context().gcs_address)
    monkeypatch.setenv("PRIVACY_RAY_NOTEBOOK_N", "60")
    _execute("02-vector-search", tmp_path)
    store = VectorStore.open(str(notebook_env / "store"))
    log = read_erasure_log(store.storage)
    assert len(log) == 1 and log[0]["event"] == "erase_user" and log[0]["total"] >= 1
    (run,) = (notebook_env / "conversations" / "runs").iterdir()
    upserted = json.loads((run / "summary.json").read_text())["upserted"]
    assert upserted > 50 and len(store) == upserted - log[0]["total"]


@pytest.mark.slow
def test_cluster_notebook_submits_and_follows_a_job(notebook_env, monkeypatch, tmp_path):
    monkeypatch.setenv("PRIVACY_RAY_NOTEBOOK_N", "40")
    monkeypatch.setenv("PRIVACY_RAY_NOTEBOOK_LOCAL_CPUS", "1")
    monkeypatch.setenv("PRIVACY_RAY_NOTEBOOK_JOB_TIMEOUT_S", "280")  # fail inside the cell
    nb = _execute("03-cluster", tmp_path)
    assert "final status: SUCCEEDED" in _text(nb)
    runs = sorted((notebook_env / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "_SUCCESS").exists()
    assert json.loads((runs[0] / "summary.json").read_text())["records_in"] == 40
