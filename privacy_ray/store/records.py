"""Rows as the store holds them: int64 ids, float32 vectors and a small metadata table.

:func:`prepare_rows` turns an input frame (``conversation_id, user_id, date, channel, intent,
confidence, snippet, vector``) into :class:`ShardRows`: the raw user id is replaced by its keyed
hash here, before anything reaches a shard, and snippets are cut to a fixed length.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from privacy_ray.errors import InputError, StoreError
from privacy_ray.store.ids import conversation_int_ids, shard_of_ids
from privacy_ray.store.keys import UserKeyer

#: Metadata columns kept per vector, in memory and in the shard's Parquet file.
META_COLUMNS: tuple[str, ...] = (
    "conversation_id", "user_key", "date_us", "channel", "intent", "confidence", "snippet",
)
REQUIRED_INPUT: tuple[str, ...] = ("conversation_id", "date")
OPTIONAL_INPUT: tuple[str, ...] = ("channel", "intent", "confidence", "snippet")
_OBJ_COLS = ("conversation_id", "user_key", "channel", "intent", "snippet")


def empty_meta() -> dict[str, np.ndarray]:
    meta = {c: np.empty(0, dtype=object) for c in _OBJ_COLS}
    meta["date_us"] = np.empty(0, dtype=np.int64)
    meta["confidence"] = np.empty(0, dtype=np.float32)
    return meta


def concat_meta(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {c: np.concatenate([a[c], b[c]]) for c in META_COLUMNS}


def take_meta(meta: Mapping[str, np.ndarray], index: np.ndarray) -> dict[str, np.ndarray]:
    return {c: meta[c][index] for c in META_COLUMNS}


@dataclass
class ShardRows:
    """A batch of rows ready for a shard: unique-per-row int ids, vectors, metadata columns."""

    ids: np.ndarray
    vectors: np.ndarray
    meta: dict[str, np.ndarray] = field(default_factory=empty_meta)

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, index: np.ndarray) -> ShardRows:
        return ShardRows(self.ids[index], self.vectors[index], take_meta(self.meta, index))


def to_utc_us(values: Any, what: str = "date") -> np.ndarray:
    """Datetimes, dates or ISO strings as int64 microseconds since the epoch, UTC."""
    ser = pd.Series(values) if not isinstance(values, pd.Series) else values
    try:
        parsed = pd.to_datetime(ser, utc=True, errors="coerce", format="mixed")
    except (TypeError, ValueError) as e:
        msg = f"column {what!r} holds values that are not dates: {e}"
        raise InputError(msg) from e
    out = parsed.dt.tz_convert(None).dt.as_unit("us").to_numpy().view(np.int64).copy()
    out[parsed.isna().to_numpy()] = np.iinfo(np.int64).min
    return out


def bound_to_us(value: Any, *, end: bool) -> int:
    """A filter bound as µs UTC. A bare date (``2026-01-31``) as an end bound covers that day."""
    if isinstance(value, str) and len(value.strip()) == 10:
        value = dt.date.fromisoformat(value.strip())
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        day = dt.datetime.combine(value, dt.time(), tzinfo=dt.UTC)
        if end:
            return int(day.timestamp() * 1_000_000) + 86_400_000_000 - 1
        return int(day.timestamp() * 1_000_000)
    us = to_utc_us([value], what="date bound")[0]
    if us == np.iinfo(np.int64).min:
        msg = f"date filter {value!r} is not a date; use YYYY-MM-DD or an ISO timestamp"
        raise InputError(msg)
    return int(us)


def us_to_iso(us: int) -> str:
    return (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=int(us))).isoformat()


def as_vectors(values: Any, *, dim: int | None = None, what: str = "vector") -> np.ndarray:
    """A 2-D contiguous float32 array from an ndarray, a list of arrays or a Series of them."""
    if isinstance(values, pd.Series):
        values = values.to_numpy()
    arr = np.asarray(values)
    if arr.dtype == object:
        try:
            arr = np.stack([np.asarray(v, dtype=np.float32) for v in arr]) if len(arr) else (
                np.empty((0, dim or 0), dtype=np.float32))
        except ValueError as e:
            msg = f"column {what!r} holds vectors of different lengths; embed all rows alike"
            raise StoreError(msg) from e
    if arr.ndim == 1 and arr.size and dim and arr.size == dim:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        msg = f"{what} must be a 2-D array of shape (rows, dim), got shape {arr.shape}"
        raise StoreError(msg)
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if dim is not None and arr.shape[1] != dim:
        msg = (f"{what} has {arr.shape[1]} dimensions but the store holds {dim}-d vectors; "
               f"use the store's embedding model")
        raise StoreError(msg)
    if arr.size and not np.isfinite(arr).all():
        msg = f"{what} holds NaN or infinite values; fix the embedding step"
        raise StoreError(msg)
    return arr


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalise rows in place (zero rows stay zero) and return ``x``."""
    if x.dtype == np.float32 and x.flags.c_contiguous and x.size:
        import faiss

        faiss.normalize_L2(x)  # multi-threaded C++, several times faster than numpy here
        return x
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]
    norms[norms == 0] = 1.0
    x /= norms
    return x


def prepare_rows(
    df: pd.DataFrame,
    *,
    keyer: UserKeyer | None,
    snippet_chars: int,
    normalize: bool,
    dim: int | None = None,
    vectors: Any = None,
) -> ShardRows:
    """Validate an input frame and turn it into :class:`ShardRows`.

    ``user_id`` (raw) is hashed with ``keyer``; a frame may instead carry ``user_key`` (already
    keyed, e.g. computed upstream). Rows with the same ``conversation_id`` keep the last one.
    """
    missing = [c for c in REQUIRED_INPUT if c not in df.columns]
    if "user_id" not in df.columns and "user_key" not in df.columns:
        missing.append("user_id")
    if vectors is None and "vector" not in df.columns:
        missing.append("vector")
    if missing:
        msg = (f"rows for the store lack column(s) {', '.join(missing)}; expected "
               f"conversation_id, user_id, date, vector (+ channel, intent, confidence, snippet)")
        raise InputError(msg)
    n = len(df)
    vecs = as_vectors(df["vector"] if vectors is None else vectors, dim=dim)
    if len(vecs) != n:
        msg = f"got {len(vecs)} vectors for {n} rows; pass one vector per row"
        raise InputError(msg)
    cids = df["conversation_id"]
    if cids.isna().any():
        msg = "column 'conversation_id' has empty values; every stored row needs one"
        raise InputError(msg)
    cid_arr = cids.astype(str).to_numpy(dtype=object)
    if "user_key" in df.columns and "user_id" not in df.columns:
        keys = df["user_key"].astype(str).to_numpy(dtype=object)
    else:
        if keyer is None:  # pragma: no cover - the store always passes one
            msg = "hashing user ids needs an HMAC key; pass keyer="
            raise StoreError(msg)
        if df["user_id"].isna().any():
            bad = cid_arr[df["user_id"].isna().to_numpy()][0]
            msg = f"conversation {bad} has no user_id; every stored row needs one (for erasure)"
            raise InputError(msg)
        keys = keyer.hash_many(df["user_id"].tolist())
    date_us = to_utc_us(df["date"].reset_index(drop=True))
    bad_dates = date_us == np.iinfo(np.int64).min
    if bad_dates.any():
        msg = (f"conversation {cid_arr[bad_dates][0]} has a missing or unparseable date "
               f"({int(bad_dates.sum())} rows); retention needs a date on every row")
        raise InputError(msg)

    def _text(col: str, cut: int | None = None) -> np.ndarray:
        if col not in df.columns:
            return np.full(n, None, dtype=object)
        out = np.empty(n, dtype=object)
        out[:] = [(v[:cut] if cut else v) if isinstance(v, str) else None
                  for v in df[col].tolist()]
        return out

    if "confidence" in df.columns:
        conf = pd.to_numeric(df["confidence"], errors="coerce").to_numpy(dtype=np.float32)
    else:
        conf = np.full(n, np.nan, dtype=np.float32)
    meta = {
        "conversation_id": cid_arr,
        "user_key": keys,
        "date_us": date_us,
        "channel": _text("channel"),
        "intent": _text("intent"),
        "confidence": conf,
        "snippet": _text("snippet", snippet_chars),
    }
    if normalize:
        vecs = normalize_rows(vecs.copy() if vecs is vectors else vecs)
    rows = ShardRows(conversation_int_ids(cid_arr), vecs, meta)
    return dedupe_last(rows)


def dedupe_last(rows: ShardRows) -> ShardRows:
    """Keep the last row of each id (an upsert of the same conversation twice in one batch)."""
    if len(rows) < 2:
        return rows
    _, first_in_reversed = np.unique(rows.ids[::-1], return_index=True)
    if len(first_in_reversed) == len(rows):
        return rows
    keep = np.sort(len(rows) - 1 - first_in_reversed)
    return rows.take(keep)


def split_by_shard(rows: ShardRows, num_shards: int) -> dict[int, ShardRows]:
    """Route rows to shards: stable hash(conversation_id) mod ``num_shards``."""
    shard_no = shard_of_ids(rows.ids, num_shards)
    out: dict[int, ShardRows] = {}
    for s in np.unique(shard_no):
        out[int(s)] = rows.take(np.flatnonzero(shard_no == s))
    return out


# ---------------------------------------------------------------- Arrow (Parquet) round trip

META_SCHEMA = pa.schema([
    ("id", pa.int64()),
    ("conversation_id", pa.string()),
    ("user_key", pa.string()),
    ("date", pa.timestamp("us", tz="UTC")),
    ("channel", pa.string()),
    ("intent", pa.string()),
    ("confidence", pa.float32()),
    ("snippet", pa.string()),
])


def meta_to_arrow(ids: np.ndarray, meta: Mapping[str, np.ndarray]) -> pa.Table:
    cols = {
        "id": pa.array(ids, type=pa.int64()),
        "conversation_id": pa.array(meta["conversation_id"], type=pa.string()),
        "user_key": pa.array(meta["user_key"], type=pa.string()),
        "date": pa.array(meta["date_us"], type=pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "channel": pa.array(meta["channel"], type=pa.string()),
        "intent": pa.array(meta["intent"], type=pa.string()),
        "confidence": pa.array(meta["confidence"], type=pa.float32(),
                               mask=np.isnan(meta["confidence"])),
        "snippet": pa.array(meta["snippet"], type=pa.string()),
    }
    return pa.Table.from_pydict(cols, schema=META_SCHEMA)


def meta_from_arrow(table: pa.Table) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    def obj(name: str) -> np.ndarray:
        out = np.empty(table.num_rows, dtype=object)
        out[:] = table.column(name).to_pylist()
        return out

    ids = table.column("id").to_numpy().astype(np.int64, copy=False)
    date_us = table.column("date").cast(pa.int64()).to_numpy().astype(np.int64, copy=False)
    conf = table.column("confidence").to_numpy(zero_copy_only=False).astype(np.float32)
    meta = {
        "conversation_id": obj("conversation_id"),
        "user_key": obj("user_key"),
        "date_us": date_us,
        "channel": obj("channel"),
        "intent": obj("intent"),
        "confidence": conf,
        "snippet": obj("snippet"),
    }
    return ids, meta
