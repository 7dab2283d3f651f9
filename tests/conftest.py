"""Shared fixtures: one small local Ray per test session and one tiny trained model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("PRIVACY_RAY_HMAC_KEY", "test-hmac-key-not-secret")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


@pytest.fixture(autouse=True)
def _isolated_config(monkeypatch, tmp_path_factory):
    """Tests never read the developer's config or model cache."""
    for var in list(os.environ):
        if var.startswith("PRIVACY_RAY_") and var != "PRIVACY_RAY_HMAC_KEY":
            monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("CONFIG_PATH", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cache = tmp_path_factory.getbasetemp() / "model-cache"
    monkeypatch.setenv("PRIVACY_RAY_CLASSIFIER__CACHE_DIR", str(cache))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: Prometheus port of the session's Ray (tests/test_metrics.py scrapes it).
METRICS_PORT = _free_port()


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for every test that needs it (2 CPUs: this is a 2-core machine)."""
    import ray

    from privacy_ray.config import RAY_SYSTEM_CONFIG

    if not ray.is_initialized():
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            object_store_memory=300 * 1024 * 1024,
            logging_level="ERROR",
            log_to_driver=False,
            _metrics_export_port=METRICS_PORT,
            _system_config=dict(RAY_SYSTEM_CONFIG),
        )
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A real model trained on 900 generated messages (one family, to keep it quick)."""
    from privacy_ray.config import Settings
    from privacy_ray.model.classifier import save_bundle
    from privacy_ray.model.training import train
    from privacy_ray.synth import generate_messages

    out = tmp_path_factory.mktemp("model") / "tiny"
    settings = Settings()
    bundle, _ = train(generate_messages(900, seed=3), settings, families=("logreg",))
    save_bundle(bundle, out)
    return out
