"""Parallel store build: one Ray actor per shard, fed by Ray Data, shards written in parallel.

Flow of :func:`build_store_with_ray`::

    Dataset ─► map_batches(route) ──► ShardBuilder[0] ─┐   each actor: upsert its partition,
     (conversation_id, user_id,    └─► ShardBuilder[1] ─┼─► then prepare + write its two files
      date, ..., vector)           └─► ShardBuilder[N] ─┘   into the new version directory
                                                         ─► driver publishes the manifest last

The routing tasks hash user ids (the raw id never reaches an actor) and split each batch by
stable hash(conversation_id) mod N, calling the owning actor directly: rows go from the routing
worker to the shard actor through the object store, never through the driver. Actors reserve a
fraction of a CPU (default 0.25), so four of them fit on a 2-core machine with room for routing.

If the same conversation appears in two batches, which copy wins is not defined (batches run
concurrently): deduplicate upstream when it matters.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

from privacy_ray.errors import StoreError
from privacy_ray.store import manifest as mf
from privacy_ray.store.ids import SHARD_HASH
from privacy_ray.store.keys import UserKeyer, check_fingerprint
from privacy_ray.store.options import StoreOptions
from privacy_ray.store.records import ShardRows, as_vectors, prepare_rows, split_by_shard
from privacy_ray.store.shard import Shard
from privacy_ray.store.storage import open_storage
from privacy_ray.store.vector_store import ModelRef, _check_model, _load_shard

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import ray.data


class ShardBuilder:
    """Actor body: holds one shard while the dataset streams in, then writes it."""

    def __init__(
        self, path: str, filesystem: Any, shard_no: int, dim: int, options: StoreOptions,
        base_entry: dict[str, Any] | None, base_manifest: dict[str, Any] | None,
    ) -> None:
        self.storage = open_storage(path, filesystem)
        self.shard_no = shard_no
        if base_entry is not None and base_manifest is not None:
            self.shard = _load_shard(self.storage, base_entry, base_manifest, options, True)
        else:
            self.shard = Shard(dim, index_type=options.index_type, options=options,
                               shard_no=shard_no)
        self.shard.dirty = True
        self.seconds = 0.0

    def upsert(self, rows: ShardRows) -> tuple[int, int]:
        t0 = time.perf_counter()
        out = self.shard.upsert(rows)
        self.seconds += time.perf_counter() - t0
        return out

    def finish(self, version: int) -> dict[str, Any]:
        """Prepare (train IVF, drop tombstones) and write this shard into ``version``."""
        t0 = time.perf_counter()
        shard = self.shard
        shard.prepare_for_write()
        index_bytes, meta_bytes = shard.to_bytes()
        extra: dict[str, Any] = {"index_type": shard.index_type}
        if shard.kind == "ivf":
            extra.update(ivf_nlist=int(shard._index.nlist), ivf_trained_on=shard.ivf_trained_on)
        entry = mf.write_shard_files(self.storage, version, self.shard_no, index_bytes,
                                     meta_bytes, count=len(shard), index_kind=shard.kind,
                                     extra=extra)
        entry["_upsert_s"] = round(self.seconds, 4)
        entry["_write_s"] = round(time.perf_counter() - t0, 4)
        return entry


def route_batch(
    batch: pd.DataFrame, *, actors: list[Any], keyer: UserKeyer, dim: int, snippet_chars: int,
    normalize: bool,
) -> pd.DataFrame:
    """Hash user ids, split the batch by shard and hand each part to its shard's actor."""
    import pandas as pd
    import ray

    vectors = as_vectors(batch["vector"], dim=dim) if "vector" in batch.columns else None
    rows = prepare_rows(batch.drop(columns=["vector"], errors="ignore"), keyer=keyer,
                        snippet_chars=snippet_chars, normalize=normalize, dim=dim,
                        vectors=vectors)
    parts = split_by_shard(rows, len(actors))
    shards = list(parts)
    results = ray.get([actors[s].upsert.remote(parts[s]) for s in shards])
    return pd.DataFrame({
        "shard": shards,
        "added": [a for a, _ in results],
        "replaced": [r for _, r in results],
    })


def build_store_with_ray(
    ds: ray.data.Dataset,
    path: str,
    *,
    embedding_model: ModelRef | tuple[str, str] | Any,
    dim: int | None = None,
    options: StoreOptions | None = None,
    mode: Literal["append", "overwrite"] = "append",
    actor_num_cpus: float = 0.25,
    route_num_cpus: float = 0.25,
    batch_size: int = 1024,
    keyer: UserKeyer | None = None,
    filesystem: Any = None,
) -> dict[str, Any]:
    """Upsert a Ray Dataset (store input columns, see ``VectorStore.upsert``) into the store at
    ``path`` with one actor per shard, and commit one new version.

    ``mode="append"`` adds to the current version of an existing store (same model, dimension,
    shard count and HMAC key); ``"overwrite"`` starts from empty shards. A missing store is
    created. Returns a summary (version, counts per shard, timings)."""
    import ray

    t0 = time.perf_counter()
    storage = open_storage(path, filesystem)
    model = ModelRef.of(embedding_model)
    exists = storage.exists(mf.MANIFEST)
    base = mf.read_manifest(storage) if exists else None
    if base is not None:
        if mode == "append":
            _check_model(base, model, storage.root_uri)
        opts = StoreOptions.from_config(None, **{**base["build_params"], **base["search_params"]})
        if options is not None and mode == "overwrite":
            opts = options
    else:
        opts = options or StoreOptions()
    if keyer is None:
        keyer = UserKeyer.from_environment(env_var=opts.hmac_env_var,
                                           secret_file=opts.hmac_secret_file)
    if base is not None and mode == "append":
        check_fingerprint(keyer, base.get("user_key_fingerprint"), storage.root_uri)
    if dim is None:
        if base is not None and mode == "append":
            dim = int(base["dimension"])
        else:
            first = ds.take_batch(1, batch_format="pandas")
            if len(first) == 0:
                msg = "the dataset is empty and no dim was given; pass dim= to create the store"
                raise StoreError(msg)
            dim = int(as_vectors(first["vector"]).shape[1])
    if base is not None and mode == "append" and int(base["dimension"]) != dim:
        msg = f"store {storage.root_uri} holds {base['dimension']}-d vectors, not {dim}-d"
        raise StoreError(msg)

    with storage.writer_lock():
        current = mf.read_manifest(storage) if exists else None
        if base is not None and current is not None and \
                current["store_version"] != base["store_version"]:
            msg = f"store {storage.root_uri} changed while the build started; run it again"
            raise StoreError(msg)
        version = mf.next_version(storage, base["store_version"] if base else 0)
        remote_cls = ray.remote(ShardBuilder).options(num_cpus=actor_num_cpus)
        entries = {e["shard"]: e for e in (base or {}).get("shards", [])}
        append = base is not None and mode == "append"
        actors = [
            remote_cls.remote(path, filesystem, s, dim, opts,
                              entries.get(s) if append else None, base if append else None)
            for s in range(opts.num_shards)
        ]
        try:
            routed = ds.map_batches(
                route_batch, batch_format="pandas", batch_size=batch_size,
                num_cpus=route_num_cpus,
                fn_kwargs={"actors": actors, "keyer": keyer, "dim": dim,
                           "snippet_chars": opts.snippet_chars, "normalize": opts.normalize},
            ).to_pandas()
            t_route = time.perf_counter() - t0
            new_entries = ray.get([a.finish.remote(version) for a in actors])
        finally:
            for a in actors:
                ray.kill(a)
        mf.fault_point("after_shard_write")
        timings = {e["shard"]: {"upsert_s": e.pop("_upsert_s"), "write_s": e.pop("_write_s")}
                   for e in new_entries}
        now = mf.now_iso()
        manifest = {
            "format_version": mf.FORMAT_VERSION,
            "store_version": version,
            "previous_version": base["store_version"] if base else None,
            "created_at": base["created_at"] if append else now,
            "committed_at": now,
            "dimension": dim,
            "metric": "inner_product",
            "shard_hash": SHARD_HASH,
            "num_shards": opts.num_shards,
            "index_type": opts.index_type,
            "build_params": opts.build_params(),
            "search_params": opts.search_params(),
            "embedding_model": model.to_dict(),
            "user_key_fingerprint": keyer.fingerprint,
            "count": sum(e["count"] for e in new_entries),
            "shards": sorted(new_entries, key=lambda e: e["shard"]),
            "erasures": [],
            "package_version": mf.package_version(),
        }
        mf.publish(storage, manifest)
        mf.collect_garbage(storage, manifest, keep=opts.versions_kept)
    added = routed.groupby("shard")[["added", "replaced"]].sum() if len(routed) else None
    return {
        "store": storage.root_uri,
        "store_version": version,
        "count": manifest["count"],
        "rows_routed": int(routed[["added", "replaced"]].to_numpy().sum()) if len(routed) else 0,
        "per_shard": {
            str(e["shard"]): {
                "count": e["count"],
                "added": int(added.loc[e["shard"], "added"]) if added is not None
                and e["shard"] in added.index else 0,
                "replaced": int(added.loc[e["shard"], "replaced"]) if added is not None
                and e["shard"] in added.index else 0,
                **timings[e["shard"]],
            }
            for e in manifest["shards"]
        },
        "route_s": round(t_route, 3),
        "total_s": round(time.perf_counter() - t0, 3),
    }
