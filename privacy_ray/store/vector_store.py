"""The sharded, persistent vector store of past conversations.

``VectorStore`` holds N :class:`~privacy_ray.store.shard.Shard` objects (shard = stable
hash(conversation_id) mod N) and publishes them as numbered versions (see
:mod:`privacy_ray.store.manifest`). Mutations (upsert, erasure, retention, compaction) change
the in-memory shards; :meth:`VectorStore.commit` writes a new version atomically.

Privacy: user ids are stored only as keyed hashes (:mod:`privacy_ray.store.keys`). An erasure
removes the user's rows from every shard, is committed at once by default, deletes every older
version from disk, and is recorded in the manifest and in ``erasures.jsonl`` (counts per shard
and the keyed hash, never the raw id); ``on_erase`` callbacks (e.g. an OpenLineage emitter)
receive the same record after the commit.

Thread safety: one lock serialises mutations and searches of one instance; :meth:`refresh`
swaps in a newer version whole, so a search sees one version.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from privacy_ray.errors import InputError, StoreError
from privacy_ray.store import manifest as mf
from privacy_ray.store.ids import SHARD_HASH, conversation_int_id
from privacy_ray.store.keys import UserKeyer, check_fingerprint
from privacy_ray.store.options import StoreOptions
from privacy_ray.store.records import (
    as_vectors,
    normalize_rows,
    prepare_rows,
    split_by_shard,
    us_to_iso,
)
from privacy_ray.store.search import SearchFilter, SearchHit, merge_topk
from privacy_ray.store.shard import Shard
from privacy_ray.store.storage import Storage, open_storage

ErasureCallback = Callable[[dict[str, Any]], None]
_DURATION = re.compile(r"^\s*(\d+)\s*([dwh]?)\s*$")


@dataclass(frozen=True)
class ModelRef:
    """Identity of an embedding model: its id (name or path) and a hash of its weights."""

    id: str
    hash: str

    @classmethod
    def of(cls, obj: Any) -> ModelRef:
        """From a ModelRef, an ``(id, hash)`` pair, a mapping, or an encoder that declares
        ``model_id``/``model_hash`` (or ``model_name``, hashed with the embedder's
        ``model_fingerprint``)."""
        if isinstance(obj, ModelRef):
            return obj
        if isinstance(obj, tuple | list) and len(obj) == 2:
            return cls(str(obj[0]), str(obj[1]))
        if isinstance(obj, dict):
            return cls(str(obj["id"]), str(obj["hash"]))
        model_id, model_hash = getattr(obj, "model_id", None), getattr(obj, "model_hash", None)
        if model_id and model_hash:
            return cls(str(model_id), str(model_hash))
        name = getattr(obj, "model_name", None)
        if name:
            from privacy_ray.model.embedder import model_fingerprint

            return cls(str(name), model_fingerprint(str(name)))
        msg = (f"cannot tell which embedding model {type(obj).__name__} is; give it model_id and "
               f"model_hash attributes or pass embedding_model=(id, hash)")
        raise StoreError(msg)

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "hash": self.hash}


def parse_duration(value: str | dt.timedelta | int) -> dt.timedelta:
    """``365d``, ``52w``, ``12h`` or a number of days."""
    if isinstance(value, dt.timedelta):
        return value
    if isinstance(value, int):
        return dt.timedelta(days=value)
    m = _DURATION.match(str(value))
    if not m:
        msg = f"cannot read duration {value!r}; use e.g. 365d, 52w or 12h"
        raise InputError(msg)
    n, unit = int(m.group(1)), m.group(2) or "d"
    return {"d": dt.timedelta(days=n), "w": dt.timedelta(weeks=n), "h": dt.timedelta(hours=n)}[unit]


def _encode(encoder: Any, texts: list[str]) -> np.ndarray:
    fn = getattr(encoder, "encode", None)
    return np.asarray(fn(texts) if callable(fn) else encoder(texts))


class VectorStore:
    """N shards of conversation vectors with metadata, versioned on disk. Use :meth:`create`,
    :meth:`open` or :meth:`open_or_create`."""

    def __init__(
        self,
        storage: Storage,
        manifest: dict[str, Any],
        shards: list[Shard],
        options: StoreOptions,
        *,
        keyer: UserKeyer | None = None,
        on_erase: ErasureCallback | Sequence[ErasureCallback] | None = None,
        encoder: Any = None,
    ) -> None:
        self.storage = storage
        self._manifest = manifest
        self._shards = shards
        self.options = options
        self._keyer = keyer
        if on_erase is None:
            self.on_erase: list[ErasureCallback] = []
        elif callable(on_erase):
            self.on_erase = [on_erase]
        else:
            self.on_erase = list(on_erase)
        self.encoder = encoder
        self._lock = threading.RLock()
        self._pending_erasures: list[dict[str, Any]] = []
        self._build_changed = False

    # ------------------------------------------------------------------ construction

    @classmethod
    def create(
        cls,
        path: str,
        *,
        dim: int,
        embedding_model: ModelRef | tuple[str, str] | Any,
        options: StoreOptions | None = None,
        filesystem: Any = None,
        keyer: UserKeyer | None = None,
        on_erase: ErasureCallback | Sequence[ErasureCallback] | None = None,
        encoder: Any = None,
        **option_overrides: Any,
    ) -> VectorStore:
        """Create an empty store at ``path`` (local dir, ``file://`` or ``s3://`` URI) and
        commit it as version 1. Fails if a store already exists there."""
        storage = open_storage(path, filesystem)
        if storage.exists(mf.MANIFEST):
            msg = (f"a vector store already exists at {storage.root_uri}; open it or pick "
                   f"another path")
            raise StoreError(msg)
        opts = options or StoreOptions()
        if option_overrides:
            opts = opts.replace(**option_overrides)
        model = ModelRef.of(embedding_model)
        manifest = {
            "format_version": mf.FORMAT_VERSION,
            "store_version": 0,
            "created_at": mf.now_iso(),
            "dimension": int(dim),
            "metric": "inner_product",
            "shard_hash": SHARD_HASH,
            "num_shards": opts.num_shards,
            "index_type": opts.index_type,
            "build_params": opts.build_params(),
            "search_params": opts.search_params(),
            "embedding_model": model.to_dict(),
            "user_key_fingerprint": None,
            "count": 0,
            "shards": [],
            "erasures": [],
        }
        shards = [Shard(int(dim), index_type=opts.index_type, options=opts, shard_no=s)
                  for s in range(opts.num_shards)]
        for s in shards:
            s.dirty = True
        store = cls(storage, manifest, shards, opts, keyer=keyer, on_erase=on_erase,
                    encoder=encoder)
        store.commit()
        return store

    @classmethod
    def open(
        cls,
        path: str,
        *,
        embedding_model: ModelRef | tuple[str, str] | Any = None,
        version: int | None = None,
        verify: bool = True,
        filesystem: Any = None,
        keyer: UserKeyer | None = None,
        on_erase: ErasureCallback | Sequence[ErasureCallback] | None = None,
        encoder: Any = None,
        **search_overrides: Any,
    ) -> VectorStore:
        """Open the current version (or ``version``). With ``embedding_model`` (or an
        ``encoder``) the query-side model must match the store's, else :class:`StoreError`.
        ``search_overrides`` may change ``ivf_nprobe``, ``hnsw_ef_search``,
        ``exact_search_max_rows`` and the HMAC settings for this instance."""
        storage = open_storage(path, filesystem)
        manifest, shards, options = cls._load(storage, version, verify, search_overrides)
        if embedding_model is None and encoder is not None:
            embedding_model = encoder
        if embedding_model is not None:
            _check_model(manifest, ModelRef.of(embedding_model), storage.root_uri)
        return cls(storage, manifest, shards, options, keyer=keyer, on_erase=on_erase,
                   encoder=encoder)

    @classmethod
    def open_or_create(
        cls,
        path: str,
        *,
        dim: int,
        embedding_model: ModelRef | tuple[str, str] | Any,
        options: StoreOptions | None = None,
        filesystem: Any = None,
        **kwargs: Any,
    ) -> VectorStore:
        """Open the store at ``path`` (checking the model), or create it when absent."""
        storage = open_storage(path, filesystem)
        if storage.exists(mf.MANIFEST):
            store = cls.open(path, embedding_model=embedding_model, filesystem=filesystem,
                             **kwargs)
            if store.dim != dim:
                msg = (f"store {storage.root_uri} holds {store.dim}-d vectors, not {dim}-d; use "
                       f"another path for this model")
                raise StoreError(msg)
            return store
        return cls.create(path, dim=dim, embedding_model=embedding_model, options=options,
                          filesystem=filesystem, **kwargs)

    @staticmethod
    def _load(
        storage: Storage, version: int | None, verify: bool, overrides: dict[str, Any]
    ) -> tuple[dict[str, Any], list[Shard], StoreOptions]:
        attempts = 0
        while True:
            manifest = mf.read_manifest(storage, version)
            build = dict(manifest["build_params"])
            build.update(manifest.get("search_params", {}))
            build.update({k: v for k, v in overrides.items() if v is not None})
            options = StoreOptions.from_config(None, **build)
            try:
                shards = [_load_shard(storage, e, manifest, options, verify)
                          for e in sorted(manifest["shards"], key=lambda e: e["shard"])]
            except FileNotFoundError as e:
                # A writer may have published a newer version and collected this one while
                # we were reading: start again from the new manifest (a reader never mixes).
                attempts += 1
                current = mf.read_manifest(storage) if version is None else manifest
                if version is None and current["store_version"] != manifest["store_version"] \
                        and attempts < 5:
                    continue
                msg = (f"shard file {e.args[0] if e.args else '?'} named by the manifest is "
                       f"missing; restore it from a backup or rebuild the store")
                raise StoreError(msg) from None
            if len(shards) != manifest["num_shards"]:
                msg = (f"manifest {storage.uri(mf.MANIFEST)} lists {len(shards)} shards but "
                       f"declares {manifest['num_shards']}; restore the store from a backup")
                raise StoreError(msg)
            return manifest, shards, options

    # ------------------------------------------------------------------ properties

    @property
    def version(self) -> int:
        return int(self._manifest["store_version"])

    @property
    def dim(self) -> int:
        return int(self._manifest["dimension"])

    @property
    def num_shards(self) -> int:
        return len(self._shards)

    @property
    def uri(self) -> str:
        return self.storage.root_uri

    @property
    def embedding_model(self) -> ModelRef:
        return ModelRef.of(self._manifest["embedding_model"])

    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest of the version this instance last loaded or committed (a copy)."""
        import copy

        return copy.deepcopy(self._manifest)

    @property
    def shards(self) -> list[Shard]:
        return list(self._shards)

    def __len__(self) -> int:
        return sum(len(s) for s in self._shards)

    @property
    def has_changes(self) -> bool:
        """True when there are mutations not yet committed."""
        return bool(self._pending_erasures or self._build_changed
                    or any(s.dirty for s in self._shards))

    def keyer(self) -> UserKeyer:
        """The HMAC keyer for user ids, resolved from the environment on first use."""
        if self._keyer is None:
            self._keyer = UserKeyer.from_environment(
                env_var=self.options.hmac_env_var, secret_file=self.options.hmac_secret_file)
        return self._keyer

    def _checked_keyer(self) -> UserKeyer:
        keyer = self.keyer()
        check_fingerprint(keyer, self._manifest.get("user_key_fingerprint"), self.uri)
        return keyer

    # ------------------------------------------------------------------ writes

    def upsert(self, df: pd.DataFrame, vectors: Any = None) -> dict[str, Any]:
        """Insert or replace conversations. ``df`` has ``conversation_id, user_id, date,
        channel, intent, confidence, snippet`` and ``vector`` (or pass ``vectors``, one row per
        frame row). The snippet must already be redacted. Changes are in memory until
        :meth:`commit`. Returns counts (added, replaced, per shard)."""
        keyer = self._checked_keyer() if "user_id" in df.columns else None
        rows = prepare_rows(df, keyer=keyer, snippet_chars=self.options.snippet_chars,
                            normalize=self.options.normalize, dim=self.dim, vectors=vectors)
        parts = split_by_shard(rows, self.num_shards)
        added = replaced = 0
        per_shard: dict[str, int] = {}
        with self._lock:
            if keyer is not None and not self._manifest.get("user_key_fingerprint"):
                self._manifest["user_key_fingerprint"] = keyer.fingerprint
            for s, part in parts.items():
                a, r = self._shards[s].upsert(part)
                added += a
                replaced += r
                per_shard[str(s)] = a + r
        return {"rows": len(df), "stored": len(rows), "added": added, "replaced": replaced,
                "per_shard": per_shard}

    def remove_conversations(self, conversation_ids: Sequence[str]) -> int:
        """Remove conversations by id (not an erasure: nothing is logged)."""
        ids = np.asarray([conversation_int_id(str(c)) for c in conversation_ids], np.int64)
        with self._lock:
            return sum(s.remove_ids(ids[ids % self.num_shards == s.shard_no])
                       for s in self._shards)

    def erase_user(
        self, user_id: str | None = None, *, user_key: str | None = None, commit: bool = True,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Remove every vector and metadata row of one user from every shard and record it.

        Give the raw ``user_id`` (hashed here with the store's HMAC key) or its ``user_key``.
        With ``commit`` (default) the removal is written at once and every older version is
        deleted; the returned record then carries the new ``store_version``."""
        if (user_id is None) == (user_key is None):
            msg = "erase_user needs exactly one of user_id or user_key"
            raise InputError(msg)
        key = user_key if user_key is not None else self._checked_keyer().hash(str(user_id))
        with self._lock:
            counts = {str(s.shard_no): s.remove_user_key(key) for s in self._shards}
            record = {
                "event": "erase_user",
                "erasure_id": uuid.uuid4().hex,
                "timestamp": mf.now_iso(),
                "user_key": key,
                "counts": counts,
                "total": sum(counts.values()),
                "previous_version": self.version,
                "store_version": None,
                "store": self.uri,
            }
            if request_id:
                record["request_id"] = request_id
            self._pending_erasures.append(record)
        if commit:
            self.commit()
        return dict(record)

    def apply_retention(
        self, older_than: str | dt.timedelta | int, *, now: dt.datetime | None = None,
        commit: bool = True,
    ) -> dict[str, Any]:
        """Remove conversations dated before ``now - older_than`` (e.g. ``"365d"``); recorded
        like an erasure (without a user key) and committed at once by default."""
        delta = parse_duration(older_than)
        now = now or dt.datetime.now(dt.UTC)
        if now.tzinfo is None:
            now = now.replace(tzinfo=dt.UTC)
        cutoff = now - delta
        cutoff_us = int(cutoff.timestamp() * 1_000_000)
        with self._lock:
            counts = {str(s.shard_no): s.remove_older_than(cutoff_us) for s in self._shards}
            record = {
                "event": "retention",
                "erasure_id": uuid.uuid4().hex,
                "timestamp": mf.now_iso(),
                "older_than": str(older_than) if not isinstance(older_than, dt.timedelta)
                else f"{delta.total_seconds() / 86400:g}d",
                "cutoff": cutoff.isoformat(),
                "counts": counts,
                "total": sum(counts.values()),
                "previous_version": self.version,
                "store_version": None,
                "store": self.uri,
            }
            self._pending_erasures.append(record)
        if commit:
            self.commit()
        return dict(record)

    def compact(
        self, shards: Sequence[int] | None = None, *, index_type: str | None = None,
        commit: bool = True,
    ) -> int | None:
        """Rebuild shards from their live vectors (retrain IVF on a fresh sample, rebuild HNSW
        graphs, drop tombstones), optionally switching the index type. Commits by default and
        returns the new version."""
        if index_type is not None:
            self.options = self.options.replace(index_type=index_type)
        with self._lock:
            for s in self._shards:
                if shards is None or s.shard_no in shards:
                    s.rebuild(index_type)
            if index_type is not None:
                self._manifest["index_type"] = index_type
                self._manifest["build_params"] = self.options.build_params()
                self._build_changed = True
        return self.commit() if commit else None

    def commit(self) -> int:
        """Write the in-memory state as a new version (atomic; see :mod:`.manifest`) and
        return its number. Unchanged shards keep their files. Pending erasure records go into
        the manifest and the erasure log, and ``on_erase`` callbacks run, after publication."""
        with self._lock, self.storage.writer_lock():
            if self._manifest["store_version"] > 0:
                on_disk = mf.read_manifest(self.storage)
                if on_disk["store_version"] != self.version:
                    msg = (f"store {self.uri} moved to version {on_disk['store_version']} since "
                           f"this instance loaded version {self.version}; reopen it and redo "
                           f"the change (one writer at a time)")
                    raise StoreError(msg)
                self._repair_erasure_log(on_disk)
            new_version = mf.next_version(self.storage, self.version)
            old_entries = {e["shard"]: e for e in self._manifest.get("shards", [])}
            entries = []
            wrote = 0
            for shard in self._shards:
                old = old_entries.get(shard.shard_no)
                if old is not None and not shard.dirty:
                    entries.append(old)
                    continue
                shard.prepare_for_write()
                index_bytes, meta_bytes = shard.to_bytes()
                extra = {"index_type": shard.index_type}
                if shard.kind == "ivf":
                    extra.update(ivf_nlist=int(shard._index.nlist),
                                 ivf_trained_on=shard.ivf_trained_on)
                entries.append(mf.write_shard_files(
                    self.storage, new_version, shard.shard_no, index_bytes, meta_bytes,
                    count=len(shard), index_kind=shard.kind, extra=extra))
                wrote += 1
                if wrote == 1:
                    mf.fault_point("after_first_shard")
            mf.fault_point("after_shard_write")
            erasures = [dict(r, store_version=new_version) for r in self._pending_erasures]
            manifest = dict(self._manifest)
            manifest.update(
                store_version=new_version,
                previous_version=self.version or None,
                committed_at=mf.now_iso(),
                count=sum(e["count"] for e in entries),
                shards=entries,
                erasures=erasures,
                package_version=mf.package_version(),
            )
            mf.publish(self.storage, manifest)
            # published: from here on the new version is the store
            self._manifest = manifest
            for shard in self._shards:
                shard.dirty = False
            self._build_changed = False
            for pending in self._pending_erasures:  # the dicts erase_user returned
                pending["store_version"] = new_version
            self._pending_erasures = []
            mf.fault_point("after_manifest_rename")
            if erasures:
                mf.append_erasures(self.storage, erasures)
            # versions older than an erasure are never kept (see manifest.kept_versions)
            mf.collect_garbage(self.storage, manifest, keep=self.options.versions_kept)
        for rec in erasures:
            for cb in self.on_erase:
                cb(dict(rec))
        return new_version

    def _repair_erasure_log(self, on_disk: dict[str, Any]) -> None:
        """A writer killed between publishing a version and appending its erasure records
        leaves them only in the manifest: append them now."""
        records = on_disk.get("erasures") or []
        if not records:
            return
        logged = {r.get("erasure_id") for r in mf.read_erasure_log(self.storage)}
        missing = [r for r in records if r.get("erasure_id") not in logged]
        if missing:
            mf.append_erasures(self.storage, missing)
            for rec in missing:
                for cb in self.on_erase:
                    cb(dict(rec))

    def refresh(self, verify: bool = True) -> bool:
        """Load the newest committed version if it is newer than this one (for long-lived
        readers such as the Serve app). Returns True when it changed."""
        current = mf.read_manifest(self.storage)
        if current["store_version"] == self.version:
            return False
        if self.has_changes:
            msg = "this store instance has uncommitted changes; commit them before refresh()"
            raise StoreError(msg)
        overrides = {k: getattr(self.options, k) for k in
                     ("ivf_nprobe", "hnsw_ef_search", "exact_search_max_rows")}
        manifest, shards, options = self._load(self.storage, None, verify, overrides)
        if manifest["embedding_model"] != self._manifest["embedding_model"]:
            msg = (f"store {self.uri} was rebuilt with another embedding model "
                   f"({manifest['embedding_model']['id']}); reopen it with that model")
            raise StoreError(msg)
        with self._lock:
            self._manifest, self._shards, self.options = manifest, shards, options
        return True

    def set_search_params(
        self, *, ivf_nprobe: int | None = None, hnsw_ef_search: int | None = None,
        exact_search_max_rows: int | None = None,
    ) -> None:
        """Change search-time knobs of this instance (speed against recall); not persisted."""
        changes = {k: v for k, v in {"ivf_nprobe": ivf_nprobe, "hnsw_ef_search": hnsw_ef_search,
                                     "exact_search_max_rows": exact_search_max_rows}.items()
                   if v is not None}
        with self._lock:
            self.options = self.options.replace(**changes)
            for s in self._shards:
                s.options = s.options.replace(**changes)

    # ------------------------------------------------------------------ search

    def query_vectors(self, queries: Any, encoder: Any = None) -> np.ndarray:
        """Queries as normalised float32 vectors; texts are encoded with ``encoder`` (or the
        one given at open), which must be the store's embedding model."""
        texts: list[str] | None = None
        if isinstance(queries, str):
            texts = [queries]
        elif isinstance(queries, list | tuple) and queries and all(
                isinstance(q, str) for q in queries):
            texts = list(queries)
        if texts is not None:
            enc = encoder if encoder is not None else self.encoder
            if enc is None:
                msg = ("text queries need an encoder: VectorStore.open(..., encoder=...) or "
                       "search(..., encoder=...)")
                raise StoreError(msg)
            _check_model(self._manifest, ModelRef.of(enc), self.uri)
            vecs = as_vectors(_encode(enc, texts), dim=self.dim, what="encoded queries")
        else:
            vecs = as_vectors(queries, dim=self.dim, what="query vectors")
        if self._manifest["build_params"].get("normalize"):
            return normalize_rows(vecs.copy())  # never normalise the caller's array in place
        return vecs

    def search(
        self,
        queries: Any,
        k: int = 10,
        filters: SearchFilter | None = None,
        *,
        encoder: Any = None,
    ) -> list[list[SearchHit]]:
        """Top-``k`` conversations per query, merged across shards, best first.

        ``queries``: one text, a list of texts, one vector or a (n, dim) array. ``filters``
        restricts by date range, channel and intent. In flat mode the result equals brute
        force over all stored vectors."""
        if k < 1:
            msg = f"k must be at least 1, got {k}"
            raise InputError(msg)
        q = self.query_vectors(queries, encoder)
        with self._lock:
            shards = self._shards
            per_shard = [s.search(q, k, filters) for s in shards]
            scores, shard_no, pos = merge_topk(per_shard, k)
            return self._hits(shards, scores, shard_no, pos)

    @staticmethod
    def _hits(
        shards: list[Shard], scores: np.ndarray, shard_no: np.ndarray, pos: np.ndarray
    ) -> list[list[SearchHit]]:
        nq, k = scores.shape
        names = ("conversation_id", "user_key", "date_us", "channel", "intent", "confidence",
                 "snippet")
        grid = {c: np.empty((nq, k), dtype=object) for c in names}
        for s in np.unique(shard_no[shard_no >= 0]).tolist():
            sel = shard_no == s  # row-major boolean indexing: same order on both sides
            rows = shards[s].rows(pos[sel])
            for c in names:
                grid[c][sel] = rows[c]
        out: list[list[SearchHit]] = []
        for qi in range(nq):
            hits = []
            for r in range(k):
                s = int(shard_no[qi, r])
                if s < 0:
                    continue
                conf = float(grid["confidence"][qi, r])
                hits.append(SearchHit(
                    conversation_id=grid["conversation_id"][qi, r],
                    score=float(scores[qi, r]),
                    shard=s,
                    user_key=grid["user_key"][qi, r],
                    date=us_to_iso(grid["date_us"][qi, r]),
                    channel=grid["channel"][qi, r],
                    intent=grid["intent"][qi, r],
                    confidence=None if np.isnan(conf) else conf,
                    snippet=grid["snippet"][qi, r],
                ))
            out.append(hits)
        return out

    # ------------------------------------------------------------------ inspection

    def stats(self) -> dict[str, Any]:
        """Counts, sizes and identity of the store (what ``privacy-ray index stats`` prints)."""
        with self._lock:
            entries = {e["shard"]: e for e in self._manifest.get("shards", [])}
            shard_stats = []
            for s in self._shards:
                st = s.stats()
                e = entries.get(s.shard_no, {})
                st.update({k: e.get(k) for k in ("index_file", "index_bytes", "meta_file",
                                                 "meta_bytes", "written_in_version")})
                shard_stats.append(st)
            log = mf.read_erasure_log(self.storage)
            return {
                "store": self.uri,
                "store_version": self.version,
                "format_version": self._manifest["format_version"],
                "created_at": self._manifest.get("created_at"),
                "committed_at": self._manifest.get("committed_at"),
                "dimension": self.dim,
                "index_type": self._manifest["index_type"],
                "num_shards": self.num_shards,
                "count": len(self),
                "embedding_model": self._manifest["embedding_model"],
                "build_params": self._manifest["build_params"],
                "search_params": self.options.search_params(),
                "versions_on_disk": mf.list_versions(self.storage),
                "erasures_logged": len(log),
                "uncommitted_changes": self.has_changes,
                "shards": shard_stats,
            }


def _check_model(manifest: dict[str, Any], model: ModelRef, where: str) -> None:
    stored = ModelRef.of(manifest["embedding_model"])
    if stored != model:
        msg = (f"query-side embedding model {model.id} (hash {model.hash}) differs from the one "
               f"store {where} was built with, {stored.id} (hash {stored.hash}); encode queries "
               f"with that model or rebuild the store")
        raise StoreError(msg)


def _load_shard(
    storage: Storage, entry: dict[str, Any], manifest: dict[str, Any], options: StoreOptions,
    verify: bool,
) -> Shard:
    index_rel, meta_rel = entry["index_file"], entry["meta_file"]
    index_bytes = mf.read_verified(storage, index_rel, entry["index_sha256"] if verify else None)
    meta_bytes = mf.read_verified(storage, meta_rel, entry["meta_sha256"] if verify else None)
    shard = Shard.from_bytes(
        index_bytes, meta_bytes, dim=int(manifest["dimension"]),
        index_type=entry.get("index_type", manifest["index_type"]), options=options,
        shard_no=int(entry["shard"]), names=(storage.uri(index_rel), storage.uri(meta_rel)))
    if len(shard) != entry["count"]:
        msg = (f"shard file {storage.uri(meta_rel)} holds {len(shard)} rows but the manifest "
               f"says {entry['count']}; restore the store from a backup")
        raise StoreError(msg)
    return shard
