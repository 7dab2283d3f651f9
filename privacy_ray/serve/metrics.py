"""Request metrics on Ray's metrics endpoint (Prometheus format), names prefixed ``privacy_ray_``.

Ray exports application metrics with its own ``ray_`` prefix (and counters with a ``_total``
suffix), so Prometheus sees e.g.
``ray_privacy_ray_http_requests_total{endpoint="/search",method="POST",status="200",...}``;
Serve adds ``deployment``, ``replica`` and ``application`` tags. Endpoints are route templates
(a fixed set), never raw paths, so a scanner cannot blow up the label cardinality.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

PREFIX = "privacy_ray_"
#: Latency buckets in milliseconds (the p99 target of /search is 150 ms).
LATENCY_BOUNDARIES_MS = [1, 2.5, 5, 10, 20, 35, 50, 75, 100, 150, 200, 300, 500, 1000, 2500,
                         5000, 10000]
ENDPOINTS = ("/", "/health", "/ready", "/search", "/classify", "/admin/reload", "/docs",
             "/openapi.json", "/docs/oauth2-redirect")


def endpoint_label(path: str, root_path: str = "") -> str:
    """The route template of ``path`` (``other`` for anything unknown)."""
    if root_path and path.startswith(root_path):
        path = path[len(root_path):] or "/"
    if len(path) > 1:
        path = path.rstrip("/")
    return path if path in ENDPOINTS else "other"


class HttpMetrics:
    """Counters and a latency histogram per endpoint, method and status."""

    def __init__(self) -> None:
        from ray.serve import metrics

        tags = ("endpoint", "method", "status")
        self.requests = metrics.Counter(
            f"{PREFIX}http_requests", description="HTTP requests by endpoint and status.",
            tag_keys=tags)
        self.errors = metrics.Counter(
            f"{PREFIX}http_errors",
            description="HTTP responses with status >= 400 by endpoint and status.",
            tag_keys=tags)
        self.latency = metrics.Histogram(
            f"{PREFIX}http_request_duration_ms",
            description="HTTP request latency in milliseconds by endpoint and status.",
            boundaries=LATENCY_BOUNDARIES_MS, tag_keys=tags)
        self.search_batch = metrics.Histogram(
            f"{PREFIX}search_batch_size", description="Searches answered by one batched call.",
            boundaries=[1, 2, 4, 8, 16, 32, 64, 128])
        self.store_version = metrics.Gauge(
            f"{PREFIX}store_version", description="Store version the app is serving.")

    def observe(self, endpoint: str, method: str, status: int, duration_s: float) -> None:
        tags = {"endpoint": endpoint, "method": method, "status": str(status)}
        try:
            self.requests.inc(1, tags=tags)
            if status >= 400:
                self.errors.inc(1, tags=tags)
            self.latency.observe(duration_s * 1000.0, tags=tags)
        except Exception:  # metrics must never fail a request
            log.debug("metrics export failed", exc_info=True)

    def observe_batch(self, size: int) -> None:
        try:
            self.search_batch.observe(size)
        except Exception:
            log.debug("metrics export failed", exc_info=True)

    def set_store_version(self, version: Any) -> None:
        try:
            self.store_version.set(float(version or 0))
        except Exception:
            log.debug("metrics export failed", exc_info=True)
