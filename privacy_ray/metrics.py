"""Prometheus metrics through ``ray.util.metrics``, exported by every Ray node's metrics agent.

All names start with ``privacy_ray_``; Ray exports them as ``ray_<name>`` (counters with a
``_total`` suffix) plus node and session labels. They are
listed in :data:`METRICS`, which the docs' table and the Grafana dashboard test read. Metric
objects are created lazily, once per process, and every call is best effort: metrics must
never fail a pipeline.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

#: name -> (kind, description, tag keys)
METRICS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "privacy_ray_records_processed_total": (
        "counter", "Rows that entered a pipeline stage.", ("pipeline", "stage")),
    "privacy_ray_records_quarantined_total": (
        "counter", "Rows a stage sent to quarantine.", ("pipeline", "stage")),
    "privacy_ray_stage_seconds_total": (
        "counter", "Wall time spent inside a stage's batches.", ("pipeline", "stage")),
    "privacy_ray_stage_throughput_records_per_second": (
        "gauge", "Rows per second of a stage's latest batch.", ("pipeline", "stage")),
    "privacy_ray_data_quality_score": (
        "gauge", "Data quality score (0-100) of the latest run.", ("pipeline",)),
    "privacy_ray_feature_coverage_percent": (
        "gauge", "Mean share of non-null values per feature in the latest run.", ("pipeline",)),
    "privacy_ray_embedding_mean_norm": (
        "gauge", "Mean norm of the latest run's 584-d embeddings.", ("pipeline",)),
    "privacy_ray_embedding_non_finite_total": (
        "counter", "Embeddings with NaN or infinite values.", ("pipeline",)),
    "privacy_ray_embedding_collapse_score": (
        "gauge", "Mean pairwise cosine of embeddings per batch (near 1: collapsed).",
        ("pipeline",)),
    "privacy_ray_predicted_intents_total": (
        "counter", "Messages per predicted label.", ("pipeline", "label")),
    "privacy_ray_requests_due_soon": (
        "gauge", "Requests in the latest run due within 7 days.", ("pipeline",)),
    "privacy_ray_run_records_per_second": (
        "gauge", "End-to-end throughput of the latest run.", ("pipeline",)),
    "privacy_ray_vectors_per_shard": (
        "gauge", "Vectors in each shard of the vector store.", ("store", "shard")),
}

_objects: dict[str, Any] = {}


def _metric(name: str) -> Any:
    if name not in _objects:
        from ray.util import metrics as rm

        kind, description, tags = METRICS[name]
        cls = rm.Counter if kind == "counter" else rm.Gauge
        _objects[name] = cls(name, description=description, tag_keys=tags)
    return _objects[name]


def _safe(fn):
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except Exception as e:  # metrics are best effort, never a failure
            log.debug("metric not recorded: %s", e)

    return wrapper


@_safe
def record_stage_batch(pipeline: str, stage: str, rows_in: int, quarantined: int,
                       seconds: float) -> None:
    """Per-batch stage counters; called inside Ray workers."""
    tags = {"pipeline": pipeline, "stage": stage}
    if rows_in:
        _metric("privacy_ray_records_processed_total").inc(rows_in, tags=tags)
    if quarantined:
        _metric("privacy_ray_records_quarantined_total").inc(quarantined, tags=tags)
    if seconds > 0:
        _metric("privacy_ray_stage_seconds_total").inc(seconds, tags=tags)
        _metric("privacy_ray_stage_throughput_records_per_second").set(rows_in / seconds,
                                                                       tags=tags)


@_safe
def record_run(pipeline: str, summary: dict[str, Any]) -> None:
    """Run-level gauges from a run summary; called on the driver at the end of a run."""
    tags = {"pipeline": pipeline}
    quality = summary.get("quality") or {}
    if summary.get("quality_score") is not None:
        _metric("privacy_ray_data_quality_score").set(float(summary["quality_score"]), tags=tags)
    coverage = (quality.get("components") or {}).get("feature_coverage")
    if coverage is not None:
        _metric("privacy_ray_feature_coverage_percent").set(100.0 * float(coverage), tags=tags)
    emb = summary.get("embedding_quality") or {}
    if emb:
        _metric("privacy_ray_embedding_mean_norm").set(float(emb["mean_norm"]), tags=tags)
        _metric("privacy_ray_embedding_collapse_score").set(
            float(emb["mean_pairwise_cosine"]), tags=tags)
        if emb.get("non_finite"):
            _metric("privacy_ray_embedding_non_finite_total").inc(int(emb["non_finite"]),
                                                                  tags=tags)
    for label, count in (summary.get("labels") or summary.get("intents") or {}).items():
        if count:
            _metric("privacy_ray_predicted_intents_total").inc(
                int(count), tags={"pipeline": pipeline, "label": label})
    _metric("privacy_ray_requests_due_soon").set(float(summary.get("due_within_7d", 0)),
                                                 tags=tags)
    if summary.get("records_per_second") is not None:
        _metric("privacy_ray_run_records_per_second").set(float(summary["records_per_second"]),
                                                          tags=tags)


@_safe
def record_store(store: str, per_shard: dict[int | str, int]) -> None:
    for shard, count in per_shard.items():
        _metric("privacy_ray_vectors_per_shard").set(float(count),
                                                     tags={"store": store, "shard": str(shard)})
