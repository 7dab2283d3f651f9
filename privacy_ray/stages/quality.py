"""Row-level validation of derived columns: finite features, embedding dimension and norms.

Run-level quality (coverage, drift, collapse across a batch) is computed from the stats these
checks and the embed stage report.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from privacy_ray.stages.base import Stage, add_reason

EXPECTED_EMBEDDING_DIM = 584
#: Each half of the 584-d vector is unit norm, so a healthy vector's norm is about sqrt(2).
EMBEDDING_NORM_BOUNDS = (0.5, 2.0)

DERIVED_REASONS = {
    "feature_non_finite": "a handcrafted feature is NaN or infinite",
    "embedding_missing": "the embedding is missing",
    "embedding_wrong_dim": "the embedding does not have 584 dimensions",
    "embedding_non_finite": "the embedding has NaN or infinite values",
    "embedding_norm_out_of_bounds": "the embedding norm lies outside the expected range",
}


def validate_derived_batch(batch: pd.DataFrame, dim: int = EXPECTED_EMBEDDING_DIM) -> pd.DataFrame:
    """Set reason codes on rows whose features or embedding are unusable."""
    batch = batch.copy()
    feats = [c for c in batch.columns if c.startswith("f_")]
    if feats:
        values = batch[feats].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
        add_reason(
            batch,
            pd.Series(~np.isfinite(values).all(axis=1), index=batch.index),
            "feature_non_finite",
        )
    if "embedding" in batch.columns:
        emb = batch["embedding"]
        missing = emb.map(lambda v: v is None or (isinstance(v, float) and np.isnan(v)))
        add_reason(batch, missing, "embedding_missing")
        lengths = emb.map(lambda v: len(v) if hasattr(v, "__len__") else -1)
        wrong = ~missing & (lengths != dim)
        add_reason(batch, wrong, "embedding_wrong_dim")
        ok = ~missing & ~wrong
        if ok.any():
            mat = np.stack(emb[ok].to_numpy()).astype(np.float64)
            finite = np.isfinite(mat).all(axis=1)
            norms = np.linalg.norm(np.where(np.isfinite(mat), mat, 0), axis=1)
            lo, hi = EMBEDDING_NORM_BOUNDS
            idx = emb[ok].index
            add_reason(
                batch,
                pd.Series(~finite, index=idx).reindex(batch.index, fill_value=False),
                "embedding_non_finite",
            )
            out = finite & ((norms < lo) | (norms > hi))
            add_reason(
                batch,
                pd.Series(out, index=idx).reindex(batch.index, fill_value=False),
                "embedding_norm_out_of_bounds",
            )
    return batch


class ValidateDerived(Stage):
    """Quarantine rows whose features or embedding are unusable downstream, and validate the
    batch against the derived Great Expectations suite (ranges, coverage, norms, collapse)."""

    name = "validate_derived"

    def __init__(self, gx: Any = None, embedding_dim: int | None = EXPECTED_EMBEDDING_DIM) -> None:
        self.gx = gx
        self.embedding_dim = embedding_dim
        self._sums: dict[str, float] = {}

    def process(self, batch: pd.DataFrame) -> pd.DataFrame:
        self._sums = self.gx.validate(batch) if self.gx is not None else {}
        return validate_derived_batch(batch, self.embedding_dim or EXPECTED_EMBEDDING_DIM)

    def batch_sums(self) -> dict[str, float]:
        return self._sums
