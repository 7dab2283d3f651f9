"""One shard: a FAISS inner-product index and its metadata rows, usable without Ray.

Vectors are addressed by *position* (row number); ``ids`` (stable int64 hashes of conversation
ids) and the metadata columns are arrays in the same order, so a search result maps to its
row without a lookup table and a filter is a boolean mask turned into a FAISS bitmap selector.

Index types and removal:

- ``flat``: ``IndexFlatIP``, exact. Removal is physical and immediate (an order-preserving
  compaction), so unfiltered searches stay on FAISS's BLAS path.
- ``ivf``: ``IndexIVFFlat`` trained on a sample of the shard's vectors. A shard with fewer than
  ``ivf_min_train_vectors`` vectors stays flat (exact) until a commit or compact finds enough.
- ``hnsw``: ``IndexHNSWFlat``. HNSW graphs do not support removal.

For ``ivf`` and ``hnsw``, removed rows become tombstones: excluded from every search at once
(bitmap selector), their metadata blanked in memory, and physically dropped by
:meth:`Shard.prepare_for_write` (rebuild without them) before the shard is saved. A removed
vector therefore never reaches disk, at the price of one rebuild per commit that removed rows.

Filtered searches whose filter leaves at most ``exact_search_max_rows`` rows are answered by
exact search over those rows, so tight filters do not lose recall on approximate indexes.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from privacy_ray.errors import StoreError
from privacy_ray.store.options import StoreOptions
from privacy_ray.store.records import (
    META_COLUMNS,
    ShardRows,
    dedupe_last,
    empty_meta,
    meta_from_arrow,
    meta_to_arrow,
    take_meta,
)
from privacy_ray.store.search import SearchFilter


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as e:  # pragma: no cover - a declared dependency
        from privacy_ray.errors import DependencyError

        msg = "the vector store needs FAISS: pip install faiss-cpu"
        raise DependencyError(msg) from e
    return faiss


class Shard:
    """A FAISS index over positions plus aligned ids and metadata. Not thread-safe by itself:
    :class:`~privacy_ray.store.VectorStore` serialises access."""

    def __init__(
        self,
        dim: int,
        *,
        index_type: str = "flat",
        options: StoreOptions | None = None,
        shard_no: int = 0,
    ) -> None:
        if dim < 1:
            msg = f"vector dimension must be positive, got {dim}"
            raise StoreError(msg)
        self.dim = int(dim)
        self.options = (options or StoreOptions()).replace(index_type=index_type)
        self.index_type = index_type
        self.shard_no = shard_no
        self._kind = "hnsw" if index_type == "hnsw" else "flat"
        self._index = self._new_index(self._kind)
        #: Rows appended since the arrays were last consolidated (see :meth:`_flush`).
        self._pending: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
        self._ids = np.empty(0, dtype=np.int64)
        self._alive = np.empty(0, dtype=bool)
        self._n_dead = 0
        self._meta = empty_meta()
        self._id_set: set[int] = set()
        self.ivf_trained_on = 0
        #: True when the shard changed since it was loaded or last written.
        self.dirty = False

    # ------------------------------------------------------------------ properties

    def __len__(self) -> int:
        return int(self._index.ntotal) - self._n_dead

    # Row arrays are consolidated lazily: upserts append chunks, the first read concatenates
    # them once, so many small batches (a Ray build) cost linear time, not quadratic.

    def _flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        ids = [self._ids_arr, *(p[0] for p in pending)]
        self._ids_arr = np.concatenate(ids)
        self._alive_arr = np.concatenate(
            [self._alive_arr, np.ones(sum(len(p[0]) for p in pending), dtype=bool)])
        self._meta_arr = {c: np.concatenate([self._meta_arr[c], *(p[1][c] for p in pending)])
                          for c in META_COLUMNS}

    @property
    def _ids(self) -> np.ndarray:
        self._flush()
        return self._ids_arr

    @_ids.setter
    def _ids(self, value: np.ndarray) -> None:
        self._ids_arr = value

    @property
    def _alive(self) -> np.ndarray:
        self._flush()
        return self._alive_arr

    @_alive.setter
    def _alive(self, value: np.ndarray) -> None:
        self._alive_arr = value

    @property
    def _meta(self) -> dict[str, np.ndarray]:
        self._flush()
        return self._meta_arr

    @_meta.setter
    def _meta(self, value: dict[str, np.ndarray]) -> None:
        self._meta_arr = value

    @property
    def kind(self) -> str:
        """The index actually built: ``flat``, ``ivf`` or ``hnsw`` (an untrained IVF is flat)."""
        return self._kind

    @property
    def tombstones(self) -> int:
        return self._n_dead

    @property
    def ids(self) -> np.ndarray:
        """Int ids of the live rows."""
        return self._ids[self._alive] if self._n_dead else self._ids

    @property
    def meta(self) -> dict[str, np.ndarray]:
        """Metadata columns of the live rows (copies when there are tombstones)."""
        return take_meta(self._meta, self._alive) if self._n_dead else dict(self._meta)

    def vectors(self) -> np.ndarray:
        """Stored vectors of the live rows (a copy), in row order."""
        n = self._index.ntotal
        if n == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        x = self._index.reconstruct_n(0, n)
        return x[self._alive] if self._n_dead else x

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"shard": self.shard_no, "count": len(self), "index_kind": self.kind,
                               "tombstones": self._n_dead}
        if self._kind == "ivf":
            out["ivf_nlist"] = int(self._index.nlist)
            out["ivf_trained_on"] = self.ivf_trained_on
        return out

    # ------------------------------------------------------------------ building

    def _new_index(self, kind: str, train: np.ndarray | None = None) -> Any:
        faiss = _faiss()
        if kind == "flat":
            return faiss.IndexFlatIP(self.dim)
        if kind == "hnsw":
            idx = faiss.IndexHNSWFlat(self.dim, self.options.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            idx.hnsw.efConstruction = self.options.hnsw_ef_construction
            return idx
        if train is None:  # pragma: no cover - internal call contract
            msg = "an IVF index needs training vectors"
            raise StoreError(msg)
        n = len(train)
        nlist = self.options.ivf_nlist or max(1, round(math.sqrt(n)))
        nlist = max(1, min(nlist, n // 39 or 1))
        idx = faiss.index_factory(self.dim, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
        idx.cp.seed = 1234 + self.shard_no
        idx.train(train)
        idx.set_direct_map_type(faiss.DirectMap.Array)
        return idx

    def _train_sample(self, x: np.ndarray) -> np.ndarray:
        size = self.options.ivf_train_sample_size
        if len(x) <= size:
            return x
        rng = np.random.default_rng(20_240_601 + self.shard_no)
        return x[np.sort(rng.choice(len(x), size=size, replace=False))]

    def rebuild(self, index_type: str | None = None) -> None:
        """Build the index again from the live vectors: drops tombstones, retrains IVF on a
        fresh sample, rebuilds the HNSW graph. ``index_type`` switches the type."""
        if index_type is not None:
            self.index_type = index_type
            self.options = self.options.replace(index_type=index_type)
        x = self.vectors()
        keep = self._alive if self._n_dead else None
        if self.index_type == "ivf" and len(x) >= self.options.ivf_min_train_vectors:
            kind = "ivf"
            index = self._new_index("ivf", self._train_sample(x))
            self.ivf_trained_on = len(x)
        else:
            kind = "hnsw" if self.index_type == "hnsw" else "flat"
            index = self._new_index(kind)
            self.ivf_trained_on = 0
        if len(x):
            index.add(x)
        self._index, self._kind = index, kind
        if keep is not None:
            self._ids = self._ids[keep]
            self._meta = take_meta(self._meta, keep)
        self._alive = np.ones(len(self._ids), dtype=bool)
        self._n_dead = 0
        self.dirty = True

    def prepare_for_write(self) -> None:
        """Make the in-memory state fit to save: no tombstones, IVF trained once large enough."""
        untrained_ivf = (self.index_type == "ivf" and self._kind != "ivf"
                         and len(self) >= self.options.ivf_min_train_vectors)
        if self._n_dead == 0 and not untrained_ivf:
            return
        if self._kind == "ivf" and not untrained_ivf:  # keep the trained quantizer
            x = self.vectors()
            self._index.reset()
            if len(x):
                self._index.add(x)
            self._ids = self._ids[self._alive]
            self._meta = take_meta(self._meta, self._alive)
            self._alive = np.ones(len(self._ids), dtype=bool)
            self._n_dead = 0
            self.dirty = True
            return
        self.rebuild()

    # ------------------------------------------------------------------ mutation

    def upsert(self, rows: ShardRows) -> tuple[int, int]:
        """Add rows, replacing live rows with the same id. Returns ``(added, replaced)``."""
        if len(rows) == 0:
            return 0, 0
        if rows.vectors.shape[1] != self.dim:
            msg = (f"vectors have {rows.vectors.shape[1]} dimensions but shard {self.shard_no} "
                   f"holds {self.dim}-d vectors")
            raise StoreError(msg)
        rows = dedupe_last(rows)
        id_set = self._id_set
        new_ids = rows.ids.tolist()
        replaced = 0
        if any(i in id_set for i in new_ids):
            replaced = self._remove_mask(np.isin(self._ids, rows.ids) & self._alive)
        self._index.add(np.ascontiguousarray(rows.vectors, dtype=np.float32))
        self._pending.append((rows.ids, rows.meta))
        id_set.update(new_ids)
        self.dirty = True
        return len(rows) - replaced, replaced

    def _remove_mask(self, mask: np.ndarray) -> int:
        """Remove the rows where ``mask`` (over positions, live rows only) is true."""
        count = int(mask.sum())
        if count == 0:
            return 0
        for i in self._ids[mask].tolist():
            self._id_set.discard(i)
        if self._kind == "flat":
            faiss = _faiss()
            bits = np.packbits(mask, bitorder="little")
            sel = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bits))
            removed = self._index.remove_ids(sel)
            if removed != count:  # pragma: no cover - FAISS contract
                msg = f"shard {self.shard_no}: FAISS removed {removed} rows, expected {count}"
                raise StoreError(msg)
            keep = ~mask
            self._ids = self._ids[keep]
            self._alive = self._alive[keep]
            self._meta = take_meta(self._meta, keep)
        else:
            self._alive[mask] = False
            self._n_dead += count
            for col in ("conversation_id", "user_key", "snippet", "channel", "intent"):
                self._meta[col][mask] = None  # forget now; the vector goes at the next write
        self.dirty = True
        return count

    def remove_ids(self, int_ids: np.ndarray) -> int:
        """Remove rows by int id (see :func:`privacy_ray.store.ids.conversation_int_ids`)."""
        return self._remove_mask(np.isin(self._ids, np.asarray(int_ids, np.int64)) & self._alive)

    def remove_user_key(self, user_key: str) -> int:
        """Remove every row of the user with keyed hash ``user_key``."""
        return self._remove_mask((self._meta["user_key"] == user_key) & self._alive)

    def remove_older_than(self, cutoff_us: int) -> int:
        """Remove rows dated strictly before ``cutoff_us`` (µs since the epoch, UTC)."""
        return self._remove_mask((self._meta["date_us"] < cutoff_us) & self._alive)

    # ------------------------------------------------------------------ search

    def _params(self, sel: Any = None) -> Any:
        faiss = _faiss()
        if self._kind == "ivf":
            p = faiss.SearchParametersIVF()
            p.nprobe = min(self.options.ivf_nprobe, int(self._index.nlist))
        elif self._kind == "hnsw":
            p = faiss.SearchParametersHNSW()
            p.efSearch = self.options.hnsw_ef_search
        elif sel is not None:
            p = faiss.SearchParameters()
        else:
            return None
        if sel is not None:
            p.sel = sel
        return p

    def search(
        self, queries: np.ndarray, k: int, filters: SearchFilter | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` by inner product: ``(scores, positions)`` of shape (nq, k), -1 where the
        shard has fewer matching rows. ``queries`` must already be normalised like the store."""
        faiss = _faiss()
        nq = len(queries)
        scores = np.full((nq, k), -np.inf, dtype=np.float32)
        labels = np.full((nq, k), -1, dtype=np.int64)
        n = self._index.ntotal
        if nq == 0 or len(self) == 0:
            return scores, labels
        mask = self._alive.copy() if self._n_dead else None
        if filters is not None and not filters.is_empty():
            fm = filters.mask(self._meta)
            mask = fm if mask is None else mask & fm
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if mask is None:
            d, i = self._index.search(q, k, params=self._params())
        else:
            count = int(mask.sum())
            if count == 0:
                return scores, labels
            if count <= self.options.exact_search_max_rows:
                pos = np.flatnonzero(mask)
                sub = self._index.reconstruct_batch(pos)
                kk = min(k, count)
                d, i = faiss.knn(q, sub, kk, metric=faiss.METRIC_INNER_PRODUCT)
                i = np.where(i >= 0, pos[np.clip(i, 0, None)], -1)
            else:
                bits = np.packbits(mask, bitorder="little")
                sel = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bits))
                d, i = self._index.search(q, k, params=self._params(sel))
        kk = i.shape[1]
        scores[:, :kk] = np.where(i >= 0, d, -np.inf)
        labels[:, :kk] = i
        return scores, labels

    def rows(self, positions: np.ndarray) -> dict[str, np.ndarray]:
        """Metadata (plus ``id``) of rows at ``positions``."""
        out = take_meta(self._meta, positions)
        out["id"] = self._ids[positions]
        return out

    # ------------------------------------------------------------------ persistence

    def to_bytes(self) -> tuple[bytes, bytes]:
        """``(faiss_index_bytes, parquet_metadata_bytes)``; call :meth:`prepare_for_write`
        first (tombstones are never saved)."""
        if self._n_dead:
            self.prepare_for_write()
        faiss = _faiss()
        index_bytes = faiss.serialize_index(self._index).tobytes()
        buf = io.BytesIO()
        table = meta_to_arrow(self._ids, self._meta)
        table = table.replace_schema_metadata({
            "privacy_ray.dim": str(self.dim), "privacy_ray.index_kind": self._kind,
            "privacy_ray.index_type": self.index_type,
            "privacy_ray.ivf_trained_on": str(self.ivf_trained_on)})
        pq.write_table(table, buf, compression="zstd")
        return index_bytes, buf.getvalue()

    @classmethod
    def from_bytes(
        cls,
        index_bytes: bytes,
        meta_bytes: bytes,
        *,
        dim: int,
        index_type: str,
        options: StoreOptions | None = None,
        shard_no: int = 0,
        names: tuple[str, str] = ("index file", "metadata file"),
    ) -> Shard:
        """Rebuild a shard from :meth:`to_bytes` output. Errors name the offending file."""
        faiss = _faiss()
        shard = cls(dim, index_type=index_type, options=options, shard_no=shard_no)
        try:
            index = faiss.deserialize_index(np.frombuffer(index_bytes, dtype=np.uint8))
        except RuntimeError as e:
            msg = f"shard file {names[0]} is not a readable FAISS index; restore it or rebuild"
            raise StoreError(msg) from e
        try:
            table = pq.read_table(pa.BufferReader(meta_bytes))
            ids, meta = meta_from_arrow(table)
        except (pa.ArrowException, KeyError, ValueError) as e:
            msg = f"shard file {names[1]} is not a readable metadata table; restore or rebuild"
            raise StoreError(msg) from e
        if index.d != dim or index.ntotal != len(ids):
            msg = (f"shard file {names[0]} holds {index.ntotal} {index.d}-d vectors but "
                   f"{names[1]} has {len(ids)} rows for {dim}-d; the files do not belong together")
            raise StoreError(msg)
        if isinstance(index, faiss.IndexHNSWFlat):
            shard._kind = "hnsw"
        elif isinstance(index, faiss.IndexIVFFlat):
            shard._kind = "ivf"
            trained = (table.schema.metadata or {}).get(b"privacy_ray.ivf_trained_on", b"0")
            shard.ivf_trained_on = int(trained)
        elif isinstance(index, faiss.IndexFlat):
            shard._kind = "flat"
        else:
            msg = f"shard file {names[0]} holds an unsupported index ({type(index).__name__})"
            raise StoreError(msg)
        if index.metric_type != faiss.METRIC_INNER_PRODUCT:
            msg = f"shard file {names[0]} does not use inner product; rebuild the store"
            raise StoreError(msg)
        shard._index = index
        shard._ids = ids
        shard._alive = np.ones(len(ids), dtype=bool)
        shard._meta = meta
        shard._id_set = set(ids.tolist())
        if len(shard._id_set) != len(ids):
            msg = f"shard file {names[1]} repeats conversation ids; rebuild the store"
            raise StoreError(msg)
        return shard

    def save(self, directory: str | Path, name: str = "shard") -> tuple[Path, Path]:
        """Write ``name.faiss`` and ``name.parquet`` into a local directory (atomically)."""
        from privacy_ray.store.storage import LocalStorage

        index_bytes, meta_bytes = self.to_bytes()
        storage = LocalStorage(directory)
        storage.write_atomic(f"{name}.faiss", index_bytes)
        storage.write_atomic(f"{name}.parquet", meta_bytes)
        self.dirty = False
        return Path(directory) / f"{name}.faiss", Path(directory) / f"{name}.parquet"

    @classmethod
    def load(
        cls,
        directory: str | Path,
        name: str = "shard",
        *,
        index_type: str | None = None,
        options: StoreOptions | None = None,
    ) -> Shard:
        """Load a shard saved by :meth:`save`."""
        d = Path(directory)
        ip, mp = d / f"{name}.faiss", d / f"{name}.parquet"
        for p in (ip, mp):
            if not p.is_file():
                msg = f"shard file {p} does not exist"
                raise StoreError(msg)
        schema_meta = pq.read_schema(mp).metadata or {}
        dim = int(schema_meta.get(b"privacy_ray.dim", b"0"))
        kind = schema_meta.get(b"privacy_ray.index_type", b"flat").decode()
        return cls.from_bytes(ip.read_bytes(), mp.read_bytes(), dim=dim,
                              index_type=index_type or kind, options=options,
                              names=(str(ip), str(mp)))


__all__ = ["META_COLUMNS", "Shard"]
