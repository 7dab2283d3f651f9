"""The sharded, persistent FAISS vector store of past conversations, which can forget.

Public API::

    from privacy_ray.store import VectorStore, SearchFilter, StoreOptions

    store = VectorStore.create("output/store", dim=384, embedding_model=("all-MiniLM-L6-v2", h))
    store.upsert(df)            # conversation_id, user_id, date, channel, intent, confidence,
    store.commit()              # snippet, vector  -> a new version on disk, atomically
    hits = store.search(vectors_or_texts, k=10, filters=SearchFilter.of(channels="email"))
    store.erase_user("u-123")   # removed from every shard, old versions purged, logged

``Shard`` is the per-shard building block, usable without Ray; ``privacy_ray.store.ray_build``
builds the shards in parallel with one Ray actor per shard.
"""

from __future__ import annotations

from privacy_ray.store.ids import conversation_int_id, conversation_int_ids, shard_of
from privacy_ray.store.keys import UserKeyer
from privacy_ray.store.manifest import ERASURE_LOG, MANIFEST, read_erasure_log, read_manifest
from privacy_ray.store.options import StoreOptions
from privacy_ray.store.records import ShardRows, prepare_rows
from privacy_ray.store.search import SearchFilter, SearchHit
from privacy_ray.store.shard import Shard
from privacy_ray.store.storage import open_storage
from privacy_ray.store.vector_store import ModelRef, VectorStore, parse_duration

__all__ = [
    "ERASURE_LOG",
    "MANIFEST",
    "ModelRef",
    "SearchFilter",
    "SearchHit",
    "Shard",
    "ShardRows",
    "StoreOptions",
    "UserKeyer",
    "VectorStore",
    "conversation_int_id",
    "conversation_int_ids",
    "open_storage",
    "parse_duration",
    "prepare_rows",
    "read_erasure_log",
    "read_manifest",
    "shard_of",
]
