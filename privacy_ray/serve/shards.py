"""One shard of the store as the Serve app holds it: loaded by version, searched in batches.

:class:`ShardHolder` is plain Python (no Ray): the shard deployment wraps it, and tests use it
directly. It reads only its own shard's two files of a store version (named by that version's
manifest, checksums verified), keeps the newest version it loaded plus, optionally, the one
before, and answers a query for a given version with that version when it still holds it - so
queries already pinned to the old version finish on it while new ones use the new one.
A version that erased data drops every older version at once: erased rows are never served
once the erasure is loaded.

Loaded shards are never mutated, so concurrent searches from several threads are safe.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from privacy_ray.errors import StoreError
from privacy_ray.store import SearchFilter, Shard, StoreOptions, open_storage
from privacy_ray.store import manifest as mf
from privacy_ray.store.records import as_vectors, normalize_rows, us_to_iso

log = logging.getLogger(__name__)

#: One hit as a shard returns it: (score, conversation_id, date, channel, intent, confidence,
#: snippet). Tuples keep the payload between replicas small.
HitRow = tuple[float, str, str, Any, Any, Any, Any]


@dataclass(frozen=True)
class LoadedShard:
    """One shard of one store version, ready to search."""

    version: int
    shard: Shard
    index_sha256: str
    meta_sha256: str
    normalize: bool
    dim: int
    erased: bool  # this version's commit erased data

    @property
    def count(self) -> int:
        return len(self.shard)


def store_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """The public facts of a manifest (no paths): version, sizes, model, index type."""
    return {
        "store_version": int(manifest["store_version"]),
        "num_shards": int(manifest["num_shards"]),
        "count": int(manifest.get("count", 0)),
        "dimension": int(manifest["dimension"]),
        "index_type": manifest.get("index_type"),
        "committed_at": manifest.get("committed_at"),
        "embedding_model": dict(manifest["embedding_model"]),
        "shard_counts": {str(e["shard"]): int(e["count"])
                         for e in sorted(manifest.get("shards", []), key=lambda e: e["shard"])},
    }


def check_manifest(manifest: dict[str, Any], *, num_shards: int | None,
                   model: dict[str, str] | None) -> None:
    """Refuse a store version this app cannot serve: another shard count, or vectors of another
    embedding model (compared by weights hash, so a renamed copy of the same model passes)."""
    if num_shards is not None and int(manifest["num_shards"]) != num_shards:
        msg = (f"store version {manifest['store_version']} has {manifest['num_shards']} shards "
               f"but the app was deployed for {num_shards}; redeploy the app")
        raise StoreError(msg)
    if model is not None and manifest["embedding_model"].get("hash") != model.get("hash"):
        stored = manifest["embedding_model"]
        msg = (f"store version {manifest['store_version']} was built with embedding model "
               f"{stored.get('id')} (hash {stored.get('hash')}), the app encodes queries with "
               f"{model.get('id')} (hash {model.get('hash')}); set embedding.model to match")
        raise StoreError(msg)


class ShardHolder:
    """Loads shard ``shard_no`` of the store at ``path`` and searches it."""

    def __init__(
        self,
        path: str,
        shard_no: int,
        *,
        num_shards: int | None = None,
        keep_previous: bool = True,
        search_overrides: dict[str, Any] | None = None,
        verify: bool = True,
    ) -> None:
        self.path = path
        self.shard_no = int(shard_no)
        self.num_shards = num_shards
        self.keep_previous = keep_previous
        self.search_overrides = dict(search_overrides or {})
        self.verify = verify
        self._storage = open_storage(path)
        self._held: dict[int, LoadedShard] = {}
        self._lock = threading.Lock()  # guards _held
        self._load_lock = threading.Lock()  # one load at a time
        self.last_error: str | None = None
        self.last_error_type: str | None = None
        self.last_attempt: float = 0.0

    # ------------------------------------------------------------------ state

    @property
    def current(self) -> LoadedShard | None:
        with self._lock:
            return self._held[max(self._held)] if self._held else None

    @property
    def versions(self) -> list[int]:
        with self._lock:
            return sorted(self._held)

    @property
    def loaded(self) -> bool:
        return bool(self._held)

    def status(self) -> dict[str, Any]:
        cur = self.current
        return {"shard": self.shard_no, "loaded": cur is not None,
                "store_version": cur.version if cur else None,
                "count": cur.count if cur else None, "versions_held": self.versions,
                "error": self.last_error_type}

    # ------------------------------------------------------------------ loading

    def refresh(self) -> bool:
        """Load the store's current version if it is newer than the newest held. Returns True
        when a new version was loaded. Errors are recorded and raised as :class:`StoreError`."""
        with self._load_lock:
            self.last_attempt = time.monotonic()
            try:
                changed = self._refresh_locked()
            except Exception as e:
                self.last_error = str(e).splitlines()[0] if str(e) else type(e).__name__
                self.last_error_type = type(e).__name__
                log.warning("shard %d: cannot load the store at %s: %s", self.shard_no,
                            self.path, self.last_error)
                if isinstance(e, StoreError):
                    raise
                msg = f"shard {self.shard_no}: {self.last_error}"
                raise StoreError(msg) from e
            self.last_error = self.last_error_type = None
            return changed

    def _refresh_locked(self) -> bool:
        for attempt in range(5):
            manifest = mf.read_manifest(self._storage)
            version = int(manifest["store_version"])
            cur = self.current
            if cur is not None and version <= cur.version:
                return False
            check_manifest(manifest, num_shards=self.num_shards, model=None)
            try:
                loaded = self._load(manifest, cur)
            except FileNotFoundError:
                # a writer published a newer version and collected this one meanwhile
                if attempt == 4:
                    msg = (f"shard {self.shard_no} files of store version {version} vanished "
                           f"while loading; the store is being rewritten too often")
                    raise StoreError(msg) from None
                continue
            self._install(loaded)
            return True
        return False  # pragma: no cover - loop always returns or raises

    def _load(self, manifest: dict[str, Any], cur: LoadedShard | None) -> LoadedShard:
        entries = [e for e in manifest["shards"] if int(e["shard"]) == self.shard_no]
        if len(entries) != 1:
            msg = (f"store version {manifest['store_version']} has no entry for shard "
                   f"{self.shard_no}; restore the store from a backup")
            raise StoreError(msg)
        entry = entries[0]
        version = int(manifest["store_version"])
        erased = bool(manifest.get("erasures"))
        normalize = bool(manifest["build_params"].get("normalize", True))
        dim = int(manifest["dimension"])
        if (cur is not None and cur.index_sha256 == entry["index_sha256"]
                and cur.meta_sha256 == entry["meta_sha256"]):
            # unchanged in this version: same files, reuse the loaded index
            return LoadedShard(version, cur.shard, cur.index_sha256, cur.meta_sha256, normalize,
                               dim, erased)
        params = dict(manifest["build_params"])
        params.update(manifest.get("search_params", {}))
        params.update({k: v for k, v in self.search_overrides.items() if v is not None})
        options = StoreOptions.from_config(None, **params)
        index_rel, meta_rel = entry["index_file"], entry["meta_file"]
        index_bytes = mf.read_verified(self._storage, index_rel,
                                       entry["index_sha256"] if self.verify else None)
        meta_bytes = mf.read_verified(self._storage, meta_rel,
                                      entry["meta_sha256"] if self.verify else None)
        shard = Shard.from_bytes(
            index_bytes, meta_bytes, dim=dim,
            index_type=entry.get("index_type", manifest["index_type"]), options=options,
            shard_no=self.shard_no,
            names=(self._storage.uri(index_rel), self._storage.uri(meta_rel)))
        if len(shard) != int(entry["count"]):
            msg = (f"shard file {self._storage.uri(meta_rel)} holds {len(shard)} rows but the "
                   f"manifest says {entry['count']}; restore the store from a backup")
            raise StoreError(msg)
        log.info("shard %d: loaded store version %d (%d vectors)", self.shard_no, version,
                 len(shard))
        return LoadedShard(version, shard, entry["index_sha256"], entry["meta_sha256"],
                           normalize, dim, erased)

    def _install(self, loaded: LoadedShard) -> None:
        with self._lock:
            if loaded.erased or not self.keep_previous:
                self._held = {}  # in-flight searches keep their own reference
            self._held[loaded.version] = loaded
            for v in sorted(self._held)[:-2]:
                del self._held[v]

    def ensure(self, version: int | None) -> LoadedShard:
        """A held version >= ``version`` (loading the newest when needed)."""
        cur = self.current
        if cur is None or (version is not None and cur.version < version):
            self.refresh()
            cur = self.current
        if cur is None:
            msg = f"shard {self.shard_no} is not loaded"
            raise StoreError(msg)
        if version is not None and cur.version < version:
            msg = (f"shard {self.shard_no}: store version {version} is not published; the "
                   f"newest is {cur.version}")
            raise StoreError(msg)
        return cur

    def pick(self, version: int | None) -> LoadedShard:
        """The held shard for ``version``: that version if held, else the newest (loading a
        newer one first when ``version`` is ahead of what is held)."""
        with self._lock:
            if version is not None and version in self._held:
                return self._held[version]
        return self.ensure(version)

    # ------------------------------------------------------------------ search

    def search(
        self,
        queries: Any,
        ks: list[int],
        filters: list[dict[str, Any] | None],
        version: int | None = None,
    ) -> tuple[int, list[list[HitRow]]]:
        """Top-``ks[i]`` hits of query ``i`` under ``filters[i]``. Returns the version used and
        per query a list of :data:`HitRow`, best first. Queries with the same filter share one
        FAISS call."""
        loaded = self.pick(version)
        q = as_vectors(queries, dim=loaded.dim, what="query vectors")
        if len(ks) != len(q) or len(filters) != len(q):
            msg = f"{len(q)} queries but {len(ks)} k values and {len(filters)} filters"
            raise ValueError(msg)
        if loaded.normalize:
            q = normalize_rows(q.copy())
        groups: dict[str, list[int]] = {}
        for i, f in enumerate(filters):
            groups.setdefault(json.dumps(f, sort_keys=True), []).append(i)
        out: list[list[HitRow]] = [[] for _ in range(len(q))]
        for key, idx in groups.items():
            spec = json.loads(key)
            flt = SearchFilter.of(**spec) if spec else None
            k = max(ks[i] for i in idx)
            scores, pos = loaded.shard.search(q[idx], k, flt)
            valid = pos >= 0
            if not valid.any():
                continue
            rows = loaded.shard.rows(pos[valid])
            cols = [rows[c].tolist() for c in ("conversation_id", "date_us", "channel", "intent",
                                                "confidence", "snippet")]
            flat_scores = scores[valid].tolist()
            j = 0
            for r, qi in enumerate(idx):
                hits = []
                for slot in range(k):
                    if not valid[r, slot]:
                        continue
                    if slot < ks[qi]:
                        conf = cols[4][j]
                        hits.append((flat_scores[j], cols[0][j], us_to_iso(cols[1][j]),
                                     cols[2][j], cols[3][j],
                                     None if conf is None or np.isnan(conf) else float(conf),
                                     cols[5][j]))
                    j += 1
                out[qi] = hits
        return loaded.version, out

    def canary(self, version: int | None = None) -> dict[str, Any]:
        """A real search of one fixed unit vector: proves the index answers (an exact index
        must return a hit when it holds vectors). Returns the version and count."""
        loaded = self.pick(version)
        shard = loaded.shard
        probe = np.full((1, loaded.dim), 1.0 / np.sqrt(loaded.dim), dtype=np.float32)
        used, hits = self.search(probe, [1], [None], loaded.version)
        if len(shard) and shard.kind == "flat" and not hits[0]:
            msg = f"shard {self.shard_no}: canary query found nothing in {len(shard)} vectors"
            raise StoreError(msg)
        return {"store_version": used, "count": len(shard)}


def merge_hits(per_shard: list[list[list[HitRow]]], ks: list[int]) -> list[list[HitRow]]:
    """Merge per-shard hit lists into the global top-k per query: by score, ties in shard
    order then rank, like :func:`privacy_ray.store.search.merge_topk`."""
    out = []
    for qi, k in enumerate(ks):
        rows = [h for shard_hits in per_shard for h in shard_hits[qi]]
        order = sorted(range(len(rows)), key=lambda i: -rows[i][0])  # stable
        out.append([rows[i] for i in order[:k]])
    return out
