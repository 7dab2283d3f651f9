"""Search filters, hits, and the merge of per-shard top-k lists into one global top-k."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from privacy_ray.store.records import bound_to_us


@dataclass(frozen=True)
class SearchFilter:
    """Metadata filters applied before ranking. Bounds are inclusive; a bare date as
    ``date_to`` covers that whole day (UTC). Empty tuples or ``None`` mean "any"."""

    date_from: Any = None
    date_to: Any = None
    channels: tuple[str, ...] | None = None
    intents: tuple[str, ...] | None = None

    @classmethod
    def of(
        cls,
        *,
        date_from: Any = None,
        date_to: Any = None,
        channels: Iterable[str] | str | None = None,
        intents: Iterable[str] | str | None = None,
    ) -> SearchFilter:
        def tup(x: Iterable[str] | str | None) -> tuple[str, ...] | None:
            if x is None:
                return None
            return (x,) if isinstance(x, str) else tuple(x) or None

        return cls(date_from, date_to, tup(channels), tup(intents))

    def is_empty(self) -> bool:
        return (self.date_from is None and self.date_to is None and not self.channels
                and not self.intents)

    def mask(self, meta: Mapping[str, np.ndarray]) -> np.ndarray:
        """Rows of ``meta`` that pass the filter."""
        n = len(meta["date_us"])
        keep = np.ones(n, dtype=bool)
        if self.date_from is not None:
            keep &= meta["date_us"] >= bound_to_us(self.date_from, end=False)
        if self.date_to is not None:
            keep &= meta["date_us"] <= bound_to_us(self.date_to, end=True)
        if self.channels:
            keep &= np.isin(meta["channel"], np.asarray(self.channels, dtype=object))
        if self.intents:
            keep &= np.isin(meta["intent"], np.asarray(self.intents, dtype=object))
        return keep

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One result: the conversation, its similarity score, and its stored metadata."""

    conversation_id: str
    score: float
    shard: int
    user_key: str
    date: str
    channel: str | None
    intent: str | None
    confidence: float | None
    snippet: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def merge_topk(
    per_shard: list[tuple[np.ndarray, np.ndarray]], k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge per-shard ``(scores, positions)`` of shape (nq, k_s) into the global top-k.

    Returns ``(scores, shard_numbers, positions)`` of shape (nq, k); empty slots have shard -1.
    Ties keep shard order (stable sort), so the merge is deterministic.
    """
    scores = np.concatenate([d for d, _ in per_shard], axis=1)
    pos = np.concatenate([i for _, i in per_shard], axis=1)
    shard = np.concatenate(
        [np.full(i.shape, s, dtype=np.int32) for s, (_, i) in enumerate(per_shard)], axis=1)
    scores = np.where(pos < 0, -np.inf, scores)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    rows = np.arange(len(scores))[:, None]
    top_scores, top_pos, top_shard = scores[rows, order], pos[rows, order], shard[rows, order]
    top_shard = np.where(top_pos < 0, -1, top_shard)
    return top_scores, top_shard, top_pos
