"""The Ray Serve application: health, similarity search and classification over the store.

``build_app(args)`` is the one builder behind ``privacy-ray serve``, ``serve run
privacy_ray.serve.app:build_app store_path=...`` and the RayService ``serveConfigV2``;
``privacy_ray.serve.app:app`` is the same app built from the config file and environment, for
``serve build`` (which wants an Application, not a builder).

Deployments (replicas and CPUs per deployment come from the ``serve`` config section)::

    HTTP ─► ingress (FastAPI) ──► embedder      MiniLM, @serve.batch over texts
              │  @serve.batch ──► shard-0 .. shard-N-1   one FAISS shard each
              │                   (fan-out, merge top-k in the ingress)
              └─────────────────► classifier ──► embedder (reused: one model in memory)

Searches that arrive together are merged by the ingress into one batch: one encode call for
their texts, one call per shard for all their vectors. Shard replicas load only their own
shard's files. The ingress polls the store manifest (or ``POST /admin/reload``); on a new
version it asks every shard to load it and switches only when all have, pinning each batch to
the version it started with, so queries in flight finish on the old version (see
:mod:`privacy_ray.serve.shards`).

A replica whose model or shard cannot be loaded stays up, retries, and reports the problem
through ``/ready`` (503 naming the component) and its ``check()``; ``check_health`` runs the
same checks and fails - so Serve restarts the replica - only when a loaded model or shard stops
answering its canary, since a restart cannot repair files on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from ray import serve
from ray.serve import Application

from privacy_ray.errors import ModelError, StoreError
from privacy_ray.serve.options import AppConfig, resolve_app_args

log = logging.getLogger(__name__)


def _total_texts(items: list[list[str]]) -> int:
    return sum(len(x) for x in items)


def _reason(e: BaseException, what: str) -> str:
    """A short, path-free account of a failure for open endpoints (details go to the log)."""
    if isinstance(e, TimeoutError):
        return f"{what} did not answer in time"
    cause = getattr(e, "cause", None) or e
    return f"{what} failed ({type(cause).__name__}); see the replica log"


class _Retrying:
    """Load-once-with-retries bookkeeping shared by the replicas that load something."""

    retry_load_s: float = 2.0

    def _init_retry(self, retry_load_s: float) -> None:
        self.retry_load_s = retry_load_s
        self.load_error: str | None = None
        self._last_try = 0.0

    def _due(self) -> bool:
        return time.monotonic() - self._last_try >= self.retry_load_s


@serve.deployment(name="embedder")
class Embedder(_Retrying):
    """The sentence encoder (MiniLM by default); batches concurrent encode calls."""

    def __init__(self, config: dict[str, Any]) -> None:
        cfg = AppConfig.from_dict(config)
        opts = cfg.options
        self._cfg = cfg.settings.embedding
        self._threads = self._cfg.torch_threads or max(1, math.ceil(opts.embedder_num_cpus))
        self._init_retry(opts.retry_load_s)
        self.encode.set_max_batch_size(max(opts.embed_batch_max_texts, opts.max_texts_per_request))
        self.encode.set_batch_wait_timeout_s(opts.embed_batch_wait_s)
        self._encoder: Any = None
        self._model: dict[str, Any] | None = None
        self._load()

    def _load(self) -> None:
        from privacy_ray.model.embedder import SentenceEncoder
        from privacy_ray.store import ModelRef

        self._last_try = time.monotonic()
        try:
            enc = SentenceEncoder.from_config(self._cfg, torch_threads=self._threads).load()
            ref = ModelRef.of(enc)
            self._model = {"id": ref.id, "hash": ref.hash, "dimension": enc.dimension,
                           "device": getattr(enc, "resolved_device", "cpu")}
            self._encoder = enc
            self.load_error = None
        except Exception as e:
            self.load_error = type(e).__name__
            log.error("embedder: cannot load model %r: %s", self._cfg.model, e)

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.002, batch_size_fn=_total_texts)
    async def encode(self, batches: list[list[str]]) -> list[np.ndarray]:
        """Unit-norm float32 vectors, one (len(texts), dim) array per call."""
        if self._encoder is None:
            msg = "the embedding model is not loaded; see the embedder replica log"
            raise ModelError(msg)
        flat = [t for b in batches for t in b]
        vectors = await asyncio.to_thread(self._encoder.encode, flat)
        out, start = [], 0
        for b in batches:
            out.append(vectors[start:start + len(b)])
            start += len(b)
        return out

    def _canary(self) -> None:
        vec = self._encoder.encode(["readiness check of the privacy-ray embedder"])
        if vec.shape != (1, self._model["dimension"]) or not np.isfinite(vec).all() \
                or abs(float(np.linalg.norm(vec)) - 1.0) > 1e-3:
            msg = "the embedding model returned an invalid vector for the canary text"
            raise ModelError(msg)

    async def check(self) -> dict[str, Any]:
        """Readiness: model loaded (retrying a failed load) and a canary text encodes."""
        if self._encoder is None and self._due():
            await asyncio.to_thread(self._load)
        if self._encoder is None:
            return {"ok": False, "reason": f"model not loaded ({self.load_error})"}
        try:
            await asyncio.to_thread(self._canary)
        except Exception as e:
            log.error("embedder canary failed: %s", e)
            return {"ok": False, "reason": _reason(e, "canary encode")}
        return {"ok": True, "model": self._model}

    async def check_health(self) -> None:
        if self._encoder is None:
            if self._due():
                await asyncio.to_thread(self._load)
            return  # a restart cannot fix a missing model; /ready reports it
        await asyncio.to_thread(self._canary)

    async def model(self) -> dict[str, Any] | None:
        return self._model


@serve.deployment(name="classifier")
class ClassifierDeployment(_Retrying):
    """The intent classifier; borrows the embedder deployment's model for MiniLM vectors."""

    def __init__(self, embedder: Any, config: dict[str, Any]) -> None:
        cfg = AppConfig.from_dict(config)
        self._embedder = embedder
        self._settings = cfg.settings
        self._model_dir = cfg.model_dir
        self._timeout_s = cfg.options.backend_timeout_s
        self._init_retry(cfg.options.retry_load_s)
        limit = max(cfg.options.embed_batch_max_texts, cfg.options.max_texts_per_request)
        self.classify.set_max_batch_size(limit)
        self.classify.set_batch_wait_timeout_s(cfg.options.embed_batch_wait_s)
        self._bundle: Any = None
        self._info: dict[str, Any] | None = None
        self._load()

    def _load(self) -> None:
        from privacy_ray.api import Classifier
        from privacy_ray.serve.classify import model_info

        self._last_try = time.monotonic()
        try:
            clf = Classifier(self._model_dir, self._settings)  # default model: built if needed
            self._bundle = clf.bundle
            self._info = model_info(clf.bundle, str(clf.model_dir))
            self.load_error = None
        except Exception as e:
            self.load_error = type(e).__name__
            log.error("classifier: cannot load model %s: %s", self._model_dir or "(default)", e)

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.002, batch_size_fn=_total_texts)
    async def classify(self, batches: list[list[str]],
                       received: list[str | None]) -> list[list[dict[str, Any]]]:
        """Predictions per call, in order."""
        from privacy_ray.serve.classify import finish, prepare

        if self._bundle is None:
            msg = "the classifier model is not loaded; see the classifier replica log"
            raise ModelError(msg)
        flat = [t for b in batches for t in b]
        stamps = [r for b, r in zip(batches, received, strict=True) for _ in b]
        feats, redacted = await asyncio.to_thread(prepare, flat)
        minilm = await asyncio.wait_for(
            _awaited(self._embedder.encode.remote(redacted.tolist())), self._timeout_s)
        preds = await asyncio.to_thread(finish, self._bundle, self._settings.classifier, feats,
                                        redacted, minilm, stamps)
        out, start = [], 0
        for b in batches:
            out.append(preds[start:start + len(b)])
            start += len(b)
        return out

    async def check(self) -> dict[str, Any]:
        if self._bundle is None and self._due():
            await asyncio.to_thread(self._load)
        if self._bundle is None:
            return {"ok": False, "reason": f"model not loaded ({self.load_error})"}
        return {"ok": True, "model": self._info}

    async def check_health(self) -> None:
        if self._bundle is None and self._due():
            await asyncio.to_thread(self._load)

    async def model(self) -> dict[str, Any] | None:
        return self._info


@serve.deployment
class ShardSearcher(_Retrying):
    """One shard of the store (its own files only); deployed once per shard as ``shard-<i>``."""

    async def __init__(self, config: dict[str, Any], shard_no: int, num_shards: int) -> None:
        import faiss

        from privacy_ray.serve.shards import ShardHolder

        cfg = AppConfig.from_dict(config)
        opts = cfg.options
        faiss.omp_set_num_threads(opts.shard_faiss_threads)
        self._init_retry(opts.retry_load_s)
        from privacy_ray.store import StoreOptions

        # search-time knobs (ivf_nprobe, hnsw_ef_search, ...) from the config win over the
        # values recorded in the manifest, as for VectorStore.open
        search = StoreOptions.from_config(cfg.settings.store).search_params()
        self.holder = ShardHolder(cfg.store_path, shard_no, num_shards=num_shards,
                                  keep_previous=opts.keep_previous_version,
                                  search_overrides=search)
        self._poll_s = opts.reload_poll_s
        await self._try_refresh()
        self._poller = (asyncio.get_running_loop().create_task(self._poll())
                        if self._poll_s > 0 else None)

    def __del__(self) -> None:
        poller = getattr(self, "_poller", None)
        if poller is not None:
            poller.cancel()

    async def _try_refresh(self) -> None:
        self._last_try = time.monotonic()
        with contextlib.suppress(Exception):  # recorded and logged by the holder
            await asyncio.to_thread(self.holder.refresh)

    async def _poll(self) -> None:
        """Load new versions in the background, so other replicas of this shard are warm
        when the ingress pins them."""
        while True:
            await asyncio.sleep(self._poll_s)
            await self._try_refresh()

    async def search(self, queries: np.ndarray, ks: list[int],
                     filters: list[dict[str, Any] | None],
                     version: int | None) -> tuple[int, list[list[tuple]]]:
        return await asyncio.to_thread(self.holder.search, queries, ks, filters, version)

    async def prepare(self, version: int) -> dict[str, Any]:
        """Load ``version`` (or newer) now; raises when it cannot."""
        await asyncio.to_thread(self.holder.ensure, version)
        return self.holder.status()

    async def check(self, version: int | None = None) -> dict[str, Any]:
        """Readiness: the shard is loaded (retrying a failed load) and answers a canary."""
        if not self.holder.loaded and self._due():
            await self._try_refresh()
        status = self.holder.status()
        if not self.holder.loaded:
            return {"ok": False, "reason": f"shard not loaded ({status['error']})", **status}
        try:
            await asyncio.to_thread(self.holder.canary, version)
        except Exception as e:
            log.error("shard %d canary failed: %s", self.holder.shard_no, e)
            return {"ok": False, "reason": _reason(e, "canary query"), **status}
        return {"ok": True, **self.holder.status()}

    async def check_health(self) -> None:
        if not self.holder.loaded:
            if self._due():
                await self._try_refresh()
            return  # a restart cannot repair the store; /ready reports it
        await asyncio.to_thread(self.holder.canary, None)


@functools.lru_cache(maxsize=50_000)
def _redact_snippet(snippet: str) -> str:
    """Snippets are stored redacted; redacting again on the way out costs ~60 us, so popular
    snippets are remembered."""
    from privacy_ray.text import redact

    return redact(snippet)


async def _awaited(response: Any) -> Any:
    return await response


@dataclass
class _Query:
    text: str | None
    vector: list[float] | None
    k: int
    filters: dict[str, Any] | None


@dataclass
class _Failed:
    status: int
    code: str
    message: str


@serve.deployment(name="ingress")
@serve.ingress()
class Ingress:
    """HTTP routes; fans searches out to the shards and merges their top-k."""

    async def __init__(self, embedder: Any, classifier: Any, shards: list[Any],
                       config: dict[str, Any], num_shards: int) -> None:
        from privacy_ray.serve.auth import TokenSet
        from privacy_ray.store import open_storage

        cfg = AppConfig.from_dict(config)
        self.cfg = cfg
        self.opts = cfg.options
        self.embedder, self.classifier, self.shards = embedder, classifier, list(shards)
        self.num_shards = num_shards
        self.tokens = TokenSet.from_environment(self.opts.api_tokens_file)
        if self.opts.require_auth and not self.tokens.configured:
            log.warning("no API tokens configured: data endpoints answer 503 until "
                        "PRIVACY_RAY_API_TOKENS (or a token file) is set")
        try:
            from privacy_ray.serve.metrics import HttpMetrics

            self.metrics: Any = HttpMetrics()
        except Exception as e:  # pragma: no cover - metrics are optional
            log.warning("request metrics disabled: %s", e)
            self.metrics = None
        self._storage = open_storage(cfg.store_path)
        self.active_version = 0
        self.summary: dict[str, Any] | None = None
        self.store_error: str | None = None
        self.reload_error: str | None = None
        self._reload_lock = asyncio.Lock()
        self._search_batched = serve.batch(
            max_batch_size=self.opts.search_batch_max_size,
            batch_wait_timeout_s=self.opts.search_batch_wait_s,
            max_concurrent_batches=self.opts.search_max_concurrent_batches,
        )(self._search_batch)
        self._models: dict[str, Any] = {}
        self.query_model = await asyncio.to_thread(self._query_model)
        await self._load_initial()
        self._poller = (asyncio.get_running_loop().create_task(self._poll())
                        if self.opts.reload_poll_s > 0 else None)

    def __del__(self) -> None:
        poller = getattr(self, "_poller", None)
        if poller is not None:
            poller.cancel()

    def __serve_build_asgi_app__(self) -> Any:
        from privacy_ray import __version__
        from privacy_ray.serve.http import create_http_app

        observe = self.metrics.observe if self.metrics is not None else None
        return create_http_app(self, self.opts, self.tokens, version=__version__,
                               observe=observe)

    # ------------------------------------------------------------------ store version

    def _query_model(self) -> dict[str, str]:
        from privacy_ray.model.embedder import model_fingerprint

        name = self.cfg.settings.embedding.model
        return {"id": name, "hash": model_fingerprint(name)}

    def _read_manifest(self) -> dict[str, Any]:
        from privacy_ray.store import read_manifest

        return read_manifest(self._storage)

    async def _load_initial(self) -> None:
        from privacy_ray.serve.shards import check_manifest, store_summary

        try:
            manifest = await asyncio.to_thread(self._read_manifest)
            check_manifest(manifest, num_shards=self.num_shards, model=None)
        except Exception as e:
            self.store_error = type(e).__name__
            log.warning("ingress: store not available yet: %s", e)
            return
        self.summary = store_summary(manifest)
        self.active_version = self.summary["store_version"]
        self.store_error = None
        if self.metrics is not None:
            self.metrics.set_store_version(self.active_version)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.opts.reload_poll_s)
            try:
                await self.reload()
            except Exception:
                log.exception("ingress: store poll failed")

    async def _call(self, response: Any, timeout_s: float) -> Any:
        try:
            return await asyncio.wait_for(_awaited(response), timeout_s)
        except TimeoutError:
            response.cancel()
            raise

    async def reload(self) -> dict[str, Any]:
        """Switch to the store's newest version once every shard has loaded it."""
        from privacy_ray.serve.shards import check_manifest, store_summary

        async with self._reload_lock:
            old = self.active_version
            try:
                manifest = await asyncio.to_thread(self._read_manifest)
            except Exception as e:
                self.store_error = type(e).__name__
                log.warning("ingress: cannot read the store manifest: %s", e)
                return {"changed": False, "store_version": old,
                        "error": "the store is not reachable; see the ingress log"}
            self.store_error = None
            version = int(manifest["store_version"])
            if version <= old:
                return {"changed": False, "store_version": old}
            try:
                check_manifest(manifest, num_shards=self.num_shards, model=self.query_model)
            except StoreError as e:
                self.reload_error = str(e)
                log.error("ingress: not switching to store version %d: %s", version, e)
                return {"changed": False, "store_version": old, "error": self.reload_error}
            results = await asyncio.gather(
                *(self._call(sh.prepare.remote(version), self.opts.backend_timeout_s)
                  for sh in self.shards), return_exceptions=True)
            failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
            if failed:
                for i in failed:
                    log.error("ingress: shard-%d cannot load store version %d: %s", i, version,
                              results[i])
                names = ", ".join(f"shard-{i}" for i in failed)
                self.reload_error = (f"store version {version} could not be loaded by {names}; "
                                     f"still serving version {old}")
                return {"changed": False, "store_version": old, "error": self.reload_error}
            self.summary = store_summary(manifest)
            self.active_version = version
            self.reload_error = None
            if self.metrics is not None:
                self.metrics.set_store_version(version)
            log.info("ingress: switched from store version %d to %d", old, version)
            return {"changed": True, "store_version": version, "previous_version": old}

    # ------------------------------------------------------------------ info / ready

    async def _model(self, name: str, handle: Any) -> dict[str, Any] | None:
        if name not in self._models:
            try:
                found = await self._call(handle.model.remote(), self.opts.ready_timeout_s)
            except Exception:
                found = None
            if found:
                self._models[name] = found
        return self._models.get(name)

    async def info(self) -> dict[str, Any]:
        from privacy_ray import __version__

        store: dict[str, Any] = {"available": self.summary is not None,
                                 "store_version": self.active_version,
                                 "num_shards": self.num_shards}
        if self.summary is not None:
            store.update({k: self.summary[k] for k in ("count", "shard_counts", "dimension",
                                                       "index_type", "committed_at")})
            store["embedding_model"] = self.summary["embedding_model"]
        return {
            "service": "privacy-ray",
            "version": __version__,
            "embedding_model": await self._model("embedder", self.embedder) or self.query_model,
            "classifier": await self._model("classifier", self.classifier),
            "store": store,
            "endpoints": ["GET /", "GET /health", "GET /ready", "POST /search",
                          "POST /classify", "POST /admin/reload", "GET /docs"],
        }

    async def ready(self) -> tuple[bool, dict[str, Any]]:
        """Every component's readiness, checked concurrently with a timeout each."""
        from privacy_ray.serve.shards import check_manifest

        t = self.opts.ready_timeout_s
        comps: dict[str, dict[str, Any]] = {}

        async def store_check() -> None:
            try:
                manifest = await asyncio.wait_for(asyncio.to_thread(self._read_manifest), t)
            except Exception as e:
                log.warning("ready: store not reachable: %s", e)
                comps["store"] = {"ok": False, "reason": _reason(e, "reading the manifest")}
                return
            entry: dict[str, Any] = {"ok": True, "store_version": self.active_version,
                                     "newest_version": int(manifest["store_version"])}
            try:
                check_manifest(manifest, num_shards=self.num_shards, model=self.query_model)
            except StoreError as e:
                entry = {"ok": False, "reason": str(e)}
            if self.active_version == 0:
                entry = {"ok": False, "reason": "no store version is loaded yet"}
            comps["store"] = entry

        async def remote(name: str, call: Any) -> None:
            try:
                comps[name] = await self._call(call, t)
            except Exception as e:
                log.warning("ready: %s did not answer: %s", name, e)
                comps[name] = {"ok": False, "reason": _reason(e, f"{name} check")}

        version = self.active_version or None
        await asyncio.gather(
            store_check(),
            remote("embedder", self.embedder.check.remote()),
            remote("classifier", self.classifier.check.remote()),
            *(remote(f"shard-{i}", sh.check.remote(version)) for i, sh in enumerate(self.shards)),
        )
        if self.opts.require_auth:
            comps["auth"] = ({"ok": True} if self.tokens.configured else
                             {"ok": False, "reason": "no API tokens configured"})
        failing = sorted(n for n, c in comps.items() if not c.get("ok"))
        body: dict[str, Any] = {"status": "not_ready" if failing else "ready",
                                "failing": failing, "store_version": self.active_version,
                                "components": {k: comps[k] for k in sorted(comps)}}
        if self.reload_error:
            body["warnings"] = [self.reload_error]
        return not failing, body

    # ------------------------------------------------------------------ data

    async def search(self, req: Any) -> dict[str, Any]:
        from privacy_ray.serve.http import ApiError, summarize_errors
        from privacy_ray.serve.schemas import check_search_limits

        dim = self.summary["dimension"] if self.summary else None
        errors = check_search_limits(req, max_k=self.opts.max_k,
                                     max_text_chars=self.opts.max_text_chars, dim=dim)
        if errors:
            raise ApiError(422, "validation_error", summarize_errors(errors), detail=errors)
        if self.summary is None:
            raise ApiError(503, "store_unavailable", "no store version is loaded yet")
        if req.text is not None and \
                self.summary["embedding_model"].get("hash") != self.query_model["hash"]:
            raise ApiError(503, "model_mismatch", "the store was built with another embedding "
                           "model than the service encodes queries with; search by vector or "
                           "fix embedding.model")
        started = time.perf_counter()
        filters = req.filters.to_store() if req.filters is not None else None
        result = await self._search_batched(_Query(req.text, req.vector, req.k, filters))
        if isinstance(result, _Failed):
            raise ApiError(result.status, result.code, result.message)
        version, hits = result
        return {"store_version": version, "k": req.k,
                "took_ms": round((time.perf_counter() - started) * 1000, 2),
                "hits": [{"conversation_id": h[1], "score": h[0], "date": h[2], "channel": h[3],
                          "intent": h[4], "confidence": h[5], "snippet": h[6]} for h in hits]}

    async def _search_batch(self, queries: list[_Query]) -> list[Any]:
        """One encode call for the batch's texts, one call per shard for all its vectors
        (wrapped with ``serve.batch`` per replica, with the configured sizes)."""
        import pandas as pd

        from privacy_ray.serve.shards import merge_hits
        from privacy_ray.text import normalize_texts, redact_texts

        n = len(queries)
        if self.metrics is not None:
            self.metrics.observe_batch(n)
        dim = int(self.summary["dimension"]) if self.summary else 0
        out: list[Any] = [None] * n
        vectors = np.zeros((n, dim), dtype=np.float32)
        text_idx = [i for i, q in enumerate(queries) if q.text is not None]
        if text_idx:
            # normalise first: zero-width characters must not hide PII from the redactor
            cleaned = redact_texts(normalize_texts(
                pd.Series([queries[i].text for i in text_idx], dtype=object))).tolist()
            try:
                encoded = await self._call(self.embedder.encode.remote(cleaned),
                                           self.opts.backend_timeout_s)
                vectors[text_idx] = encoded
            except Exception as e:
                log.error("search: embedder call failed: %s", e)
                for i in text_idx:
                    out[i] = _Failed(503, "embedder_unavailable", _reason(e, "the embedder"))
        for i, q in enumerate(queries):
            if q.vector is not None:
                vectors[i] = np.asarray(q.vector, dtype=np.float32)
        live = [i for i in range(n) if out[i] is None]
        if not live:
            return out
        ks = [queries[i].k for i in live]
        filters = [queries[i].filters for i in live]
        q = vectors[live]
        version = self.active_version or None
        results = await asyncio.gather(
            *(self._call(sh.search.remote(q, ks, filters, version), self.opts.backend_timeout_s)
              for sh in self.shards), return_exceptions=True)
        failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
        if failed:
            for i in failed:
                log.error("search: shard-%d failed: %s", i, results[i])
            names = ", ".join(f"shard-{i}" for i in failed)
            for i in live:
                out[i] = _Failed(503, "shard_unavailable", f"{names} did not answer; retry")
            return out
        merged = merge_hits([r[1] for r in results], ks)
        used = min(int(r[0]) for r in results)
        if self.opts.redact_snippets:
            merged = [[h[:6] + (_redact_snippet(h[6]) if h[6] else h[6],) for h in hits]
                      for hits in merged]
        for j, i in enumerate(live):
            out[i] = (used, merged[j])
        return out

    async def classify(self, req: Any) -> dict[str, Any]:
        from privacy_ray.serve.http import ApiError, summarize_errors
        from privacy_ray.serve.schemas import check_classify_limits

        errors = check_classify_limits(req, max_text_chars=self.opts.max_text_chars,
                                       max_texts=self.opts.max_texts_per_request)
        if errors:
            raise ApiError(422, "validation_error", summarize_errors(errors), detail=errors)
        received = req.received_at.isoformat() if req.received_at is not None else None
        try:
            preds = await self._call(self.classifier.classify.remote(req.all_texts(), received),
                                     self.opts.backend_timeout_s)
        except Exception as e:
            log.error("classify: classifier call failed: %s", e)
            raise ApiError(503, "classifier_unavailable", _reason(e, "the classifier")) from None
        return {"model": await self._model("classifier", self.classifier) or {},
                "predictions": preds}


def _num_shards(cfg: AppConfig) -> int:
    """Shards of the store (its manifest), or the configured count when it does not exist
    yet - the app then deploys and turns ready once the pipeline has written the store."""
    from privacy_ray.store import open_storage, read_manifest

    try:
        return int(read_manifest(open_storage(cfg.store_path))["num_shards"])
    except StoreError as e:
        log.warning("%s; deploying %d shard searchers (store.num_shards)", e,
                    cfg.settings.store.num_shards)
        return cfg.settings.store.num_shards


def build_app(args: dict[str, Any] | None = None) -> Application:
    """The Serve application. ``args``: ``settings`` (config sections as dicts), ``store_path``,
    ``num_replicas``, and optionally ``model_dir``, ``config_path`` (see
    :class:`privacy_ray.serve.options.AppArgs`)."""
    cfg = resolve_app_args(args)
    opts = cfg.options
    num_shards = _num_shards(cfg)
    conf = cfg.to_dict()
    health = {"health_check_period_s": opts.health_check_period_s,
              "health_check_timeout_s": max(30.0, opts.ready_timeout_s),
              "logging_config": {"enable_access_log": opts.access_log,
                                 "log_level": cfg.settings.runtime.log_level}}
    backend = {"max_ongoing_requests": opts.backend_max_ongoing_requests, **health}
    embedder = Embedder.options(
        num_replicas=opts.replicas("embedder"),
        ray_actor_options={"num_cpus": opts.embedder_num_cpus,
                           "num_gpus": opts.embedder_num_gpus}, **backend,
    ).bind(conf)
    classifier = ClassifierDeployment.options(
        num_replicas=opts.replicas("classifier"),
        ray_actor_options={"num_cpus": opts.classifier_num_cpus}, **backend,
    ).bind(embedder, conf)
    shards = [
        ShardSearcher.options(
            name=f"shard-{i}", num_replicas=opts.replicas("shard"),
            ray_actor_options={"num_cpus": opts.shard_num_cpus}, **backend,
        ).bind(conf, i, num_shards)
        for i in range(num_shards)
    ]
    return Ingress.options(
        num_replicas=opts.replicas("ingress"),
        ray_actor_options={"num_cpus": opts.ingress_num_cpus},
        max_ongoing_requests=opts.ingress_max_ongoing_requests, **health,
    ).bind(embedder, classifier, shards, conf, num_shards)


def __getattr__(name: str) -> Any:
    """``privacy_ray.serve.app:app``: the app built from the config file and environment, for
    tools that want an Application rather than a builder (``serve build``, ``serve run``
    without arguments). Built on first access, never at import."""
    if name == "app":
        return build_app({})
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
