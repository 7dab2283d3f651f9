"""Pipeline metrics reach Ray's Prometheus endpoint, scraped over HTTP."""

from __future__ import annotations

import re
import time
import urllib.request

import pytest

from privacy_ray.config import load_config
from privacy_ray.metrics import METRICS
from tests.conftest import METRICS_PORT

pytestmark = pytest.mark.slow


def scrape() -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=10) as r:
        return r.read().decode()


def value(text: str, name: str, **tags: str) -> float | None:
    """The sum of the samples of ``name`` (any Ray prefix) whose labels include ``tags``."""
    total = None
    for line in text.splitlines():
        m = re.match(r"^(?:ray_)?" + re.escape(name) + r"(?:_total)?\{([^}]*)\} (\S+)$", line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if all(labels.get(k) == v for k, v in tags.items()):
            total = (total or 0.0) + float(m.group(2))
    return total


def test_pipeline_metrics_are_scraped(ray_session, tiny_model_dir, tmp_path):
    from privacy_ray.pipelines.main import run_pipeline

    resolved = load_config(overrides={"pipeline.n_messages": 150, "pipeline.seed": 2,
                                      "pipeline.output_dir": str(tmp_path),
                                      "classifier.model_dir": str(tiny_model_dir)}, environ={})
    result = run_pipeline(resolved)
    expected = {
        "privacy_ray_records_processed_total": {"stage": "features"},
        "privacy_ray_stage_seconds_total": {"stage": "embed"},
        "privacy_ray_stage_throughput_records_per_second": {"stage": "classify"},
        "privacy_ray_data_quality_score": {},
        "privacy_ray_feature_coverage_percent": {},
        "privacy_ray_embedding_mean_norm": {},
        "privacy_ray_embedding_collapse_score": {},
        "privacy_ray_predicted_intents_total": {"label": "none"},
        "privacy_ray_requests_due_soon": {},
        "privacy_ray_run_records_per_second": {},
    }
    score = result.to_summary()["quality_score"]
    deadline = time.monotonic() + 90
    while True:  # Ray exports metrics every few seconds: wait for this run's values
        text = scrape()
        found = {n: value(text, n, pipeline="main", **t) for n, t in expected.items()}
        current = found["privacy_ray_data_quality_score"] == pytest.approx(score, abs=0.01)
        if (all(v is not None for v in found.values()) and current
                or time.monotonic() > deadline):
            break
        time.sleep(3)
    missing = [n for n, v in found.items() if v is None]
    assert not missing, f"not on the metrics endpoint: {missing}"
    assert found["privacy_ray_records_processed_total"] >= 150
    assert 0 < found["privacy_ray_data_quality_score"] <= 100
    assert found["privacy_ray_data_quality_score"] == pytest.approx(score, abs=0.01)
    assert 1.0 < found["privacy_ray_embedding_mean_norm"] < 1.6  # two unit halves: ~sqrt(2)
    assert set(expected) <= set(METRICS)
