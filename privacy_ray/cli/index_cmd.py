"""``privacy-ray index stats | search | erase | compact``: the store of past conversations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from privacy_ray.cli._common import ConfigOption, JsonOption, echo_json, load

StoreOption = Annotated[
    str | None,
    typer.Option("--store", "-s", help="Store directory or URI (default: store.path)."),
]

INDEX_HELP = """Inspect, search, erase from and compact the vector store.

Examples:

  privacy-ray index stats --store output/store

  privacy-ray index erase --store output/store --user-id u-1042 --json
"""

STATS_HELP = """Counts, versions, index type and model of a store.

Examples:

  privacy-ray index stats --store output/store

  privacy-ray index stats --store file:///data/store --json
"""

SEARCH_HELP = """Find the conversations most similar to a text or a vector.

Texts are embedded with the store's own model (or --model, which must match).

Examples:

  privacy-ray index search --store output/store --text "please delete my account" --k 5

  privacy-ray index search --store output/store --text "who sees my data" --channel email --json

  privacy-ray index search --store output/store --vector-file query.npy --date-from 2026-01-01
"""

ERASE_HELP = """Erase a user's conversations, or every conversation older than a duration.

Removes the vectors and metadata rows from every shard, commits a new version, deletes
older versions, and appends a record (counts per shard, keyed hash of the user id, never the
raw id) to STORE/erasures.jsonl. The HMAC secret comes from PRIVACY_RAY_HMAC_KEY.

Examples:

  privacy-ray index erase --store output/store --user-id u-1042

  privacy-ray index erase --store output/store --older-than 365d --json
"""

COMPACT_HELP = """Rebuild shards: retrain IVF lists, rebuild HNSW graphs, optionally switch type.

Examples:

  privacy-ray index compact --store output/store

  privacy-ray index compact --store output/store --index-type hnsw --json
"""


def _store_path(store: str | None, config: str | None) -> tuple[Any, str]:
    settings = load(config, store__path=store).settings
    return settings, settings.store.path


def erase_callbacks(settings: Any) -> list[Callable[[dict[str, Any]], None]]:
    """Callbacks run after an erasure is committed (the place where lineage is emitted)."""
    try:
        from privacy_ray.lineage import erasure_callback  # type: ignore[attr-defined]
    except ImportError:
        return []
    return [erasure_callback(settings)]


def _parse_vector(vector: str | None, vector_file: str | None) -> Any:
    import json
    from pathlib import Path

    import numpy as np

    from privacy_ray.errors import InputError

    if vector:
        try:
            return np.asarray([float(x) for x in vector.replace(" ", "").split(",") if x],
                              dtype=np.float32)
        except ValueError as e:
            msg = "--vector must be comma-separated numbers, e.g. --vector 0.1,0.2,0.3"
            raise InputError(msg) from e
    path = Path(vector_file or "")
    if not path.is_file():
        msg = f"vector file {vector_file} not found; pass an existing .npy or .json file"
        raise InputError(msg)
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False).astype(np.float32)
        return np.asarray(json.loads(path.read_text(encoding="utf-8")), dtype=np.float32)
    except (ValueError, OSError) as e:
        msg = f"vector file {vector_file} is not a .npy array or a JSON list of numbers"
        raise InputError(msg) from e


def register(app: typer.Typer) -> None:
    index_app = typer.Typer(help=INDEX_HELP, no_args_is_help=True)
    app.add_typer(index_app, name="index")

    @index_app.command("stats", help=STATS_HELP)
    def stats(store: StoreOption = None, config: ConfigOption = None,
              json_out: JsonOption = False) -> None:
        from privacy_ray.store import VectorStore

        _, path = _store_path(store, config)
        info = VectorStore.open(path).stats()
        if json_out:
            echo_json(info)
            return
        model = info["embedding_model"]
        typer.echo(f"store {info['store']}: version {info['store_version']}, {info['count']} "
                   f"vectors ({info['dimension']}-d), {info['num_shards']} shards, "
                   f"{info['index_type']} index")
        typer.echo(f"embedding model {model['id']} (hash {model['hash']}); versions on disk "
                   f"{info['versions_on_disk']}; erasures logged {info['erasures_logged']}")
        for s in info["shards"]:
            size = (s.get("index_bytes") or 0) + (s.get("meta_bytes") or 0)
            typer.echo(f"  shard {s['shard']}: {s['count']} vectors, {s['index_kind']}, "
                       f"{size / 1e6:.2f} MB")

    @index_app.command("search", help=SEARCH_HELP)
    def search(
        store: StoreOption = None,
        text: Annotated[list[str] | None, typer.Option(
            "--text", "-t", help="Query text (repeat for several).")] = None,
        vector: Annotated[str | None, typer.Option(
            "--vector", help="Query vector as comma-separated numbers.")] = None,
        vector_file: Annotated[str | None, typer.Option(
            "--vector-file", help=".npy or .json file with one vector or a (n, dim) array.")]
        = None,
        k: Annotated[int, typer.Option("--k", "-k", min=1, help="Results per query.")] = 10,
        channel: Annotated[list[str] | None, typer.Option(
            "--channel", help="Only these channels (repeatable).")] = None,
        intent: Annotated[list[str] | None, typer.Option(
            "--intent", help="Only these predicted intents (repeatable).")] = None,
        date_from: Annotated[str | None, typer.Option(
            "--date-from", help="Earliest date, inclusive (YYYY-MM-DD).")] = None,
        date_to: Annotated[str | None, typer.Option(
            "--date-to", help="Latest date, inclusive (YYYY-MM-DD).")] = None,
        model: Annotated[str | None, typer.Option(
            "--model", help="Embedding model for --text (default: the store's).")] = None,
        config: ConfigOption = None,
        json_out: JsonOption = False,
    ) -> None:
        from privacy_ray.errors import InputError
        from privacy_ray.store import SearchFilter, VectorStore

        given = sum(bool(x) for x in (text, vector, vector_file))
        if given != 1:
            msg = "give exactly one of --text, --vector or --vector-file"
            raise InputError(msg)
        settings, path = _store_path(store, config)
        st = VectorStore.open(path)
        filters = SearchFilter.of(date_from=date_from, date_to=date_to, channels=channel,
                                  intents=intent)
        encoder = None
        if text:
            from privacy_ray.model.embedder import SentenceEncoder

            name = model or st.embedding_model.id
            encoder = SentenceEncoder(name, device="cpu",
                                      max_seq_length_tokens=settings.embedding.max_seq_length_tokens)
            queries: Any = list(text)
        else:
            queries = _parse_vector(vector, vector_file)
        results = st.search(queries, k=k, filters=filters, encoder=encoder)
        labels = list(text) if text else [f"vector {i}" for i in range(len(results))]
        if json_out:
            echo_json({"store": st.uri, "store_version": st.version, "k": k,
                       "filters": filters.to_dict(),
                       "results": [{"query": q, "hits": [h.to_dict() for h in hits]}
                                   for q, hits in zip(labels, results, strict=True)]})
            return
        for q, hits in zip(labels, results, strict=True):
            typer.echo(f"{q!r}: {len(hits)} hits")
            for h in hits:
                snippet = (h.snippet or "").replace("\n", " ")[:80]
                typer.echo(f"  {h.score:.3f}  {h.conversation_id}  {h.date[:10]}  "
                           f"{h.channel or '-'}  {h.intent or '-'}  {snippet}")

    @index_app.command("erase", help=ERASE_HELP)
    def erase(
        store: StoreOption = None,
        user_id: Annotated[str | None, typer.Option(
            "--user-id", help="Erase every conversation of this user.")] = None,
        older_than: Annotated[str | None, typer.Option(
            "--older-than", help="Erase conversations older than this (365d, 52w, 12h).")]
        = None,
        config: ConfigOption = None,
        json_out: JsonOption = False,
    ) -> None:
        from privacy_ray.errors import InputError
        from privacy_ray.store import VectorStore

        if not user_id and not older_than:
            msg = "give --user-id U or --older-than DURATION (e.g. 365d)"
            raise InputError(msg)
        settings, path = _store_path(store, config)
        st = VectorStore.open(path, on_erase=erase_callbacks(settings))
        records = []
        if user_id:
            records.append(st.erase_user(user_id, commit=False))
        if older_than:
            records.append(st.apply_retention(older_than, commit=False))
        version = st.commit()
        records = [dict(r, store_version=version) for r in records]
        if json_out:
            echo_json({"store": st.uri, "store_version": version, "count": len(st),
                       "erasures": records})
            return
        for r in records:
            what = (f"user {r['user_key'][:12]}..." if r["event"] == "erase_user"
                    else f"conversations before {r['cutoff'][:10]}")
            typer.echo(f"erased {r['total']} vectors of {what} "
                       f"(per shard {r['counts']}); store version {version}, {len(st)} left")

    @index_app.command("compact", help=COMPACT_HELP)
    def compact(
        store: StoreOption = None,
        index_type: Annotated[str | None, typer.Option(
            "--index-type", help="Switch to flat, ivf or hnsw.")] = None,
        shard: Annotated[list[int] | None, typer.Option(
            "--shard", help="Only these shards (repeatable; default all).")] = None,
        config: ConfigOption = None,
        json_out: JsonOption = False,
    ) -> None:
        import time

        from privacy_ray.errors import InputError
        from privacy_ray.store import VectorStore
        from privacy_ray.store.options import INDEX_TYPES

        if index_type is not None and index_type not in INDEX_TYPES:
            msg = f"--index-type must be one of {', '.join(INDEX_TYPES)}, not {index_type!r}"
            raise InputError(msg)
        if index_type is not None and shard:
            msg = "--index-type changes every shard; drop --shard"
            raise InputError(msg)
        _, path = _store_path(store, config)
        st = VectorStore.open(path)
        t0 = time.perf_counter()
        version = st.compact(shard or None, index_type=index_type)
        info = st.stats()
        if json_out:
            echo_json({"store": st.uri, "store_version": version, "seconds":
                       round(time.perf_counter() - t0, 3), "index_type": info["index_type"],
                       "shards": info["shards"]})
            return
        kinds = ", ".join(f"{s['shard']}:{s['index_kind']}" for s in info["shards"])
        typer.echo(f"compacted {st.uri} in {time.perf_counter() - t0:.1f}s: version {version}, "
                   f"{info['count']} vectors, shards {kinds}")
