"""Stable integer ids and shard routing for conversations.

Python's ``hash()`` is salted per process, so ids and shards come from BLAKE2b instead: the same
conversation id maps to the same int64 id and the same shard on every machine and in every run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

_ID_PERSON = b"privacy-ray-cid"
_MASK_63 = (1 << 63) - 1
#: Name of the hash scheme, recorded in the manifest so a future change is detectable.
SHARD_HASH = "blake2b64-mod-v1"


def conversation_int_id(conversation_id: str) -> int:
    """A non-negative int64 id for ``conversation_id`` (the FAISS id of its vector)."""
    digest = hashlib.blake2b(
        conversation_id.encode("utf-8"), digest_size=8, person=_ID_PERSON
    ).digest()
    return int.from_bytes(digest, "little") & _MASK_63


def conversation_int_ids(conversation_ids: Iterable[str]) -> np.ndarray:
    """Vectorised :func:`conversation_int_id` (int64 array)."""
    blake = hashlib.blake2b
    vals = [
        int.from_bytes(blake(c.encode("utf-8"), digest_size=8, person=_ID_PERSON).digest(),
                       "little") & _MASK_63
        for c in conversation_ids
    ]
    return np.asarray(vals, dtype=np.int64)


def shard_of_ids(int_ids: np.ndarray, num_shards: int) -> np.ndarray:
    """Shard numbers for int ids from :func:`conversation_int_ids`."""
    return (np.asarray(int_ids, dtype=np.int64) % num_shards).astype(np.int32)


def shard_of(conversation_id: str, num_shards: int) -> int:
    """The shard that holds ``conversation_id``: stable hash mod ``num_shards``."""
    return conversation_int_id(conversation_id) % num_shards
