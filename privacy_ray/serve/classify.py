"""Classification split around the sentence encoder, so the Serve classifier can borrow the
embedder deployment's model instead of loading its own.

``prepare`` and ``finish`` are exactly the steps of :meth:`privacy_ray.api.Classifier.classify`
before and after MiniLM (normalise, features, redact | TF-IDF-SVD projection, calibrated
classifier, abstain, regulation, deadline), so the service answers what a notebook answers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from privacy_ray.config import ClassifierConfig
from privacy_ray.model.classifier import ModelBundle, predict_frame


def prepare(texts: list[str]) -> tuple[pd.DataFrame, pd.Series]:
    """Handcrafted features and redacted texts (what the encoder must embed)."""
    from privacy_ray.model.training import prepare_texts

    return prepare_texts(pd.Series(list(texts), dtype=object))


def finish(
    bundle: ModelBundle,
    cfg: ClassifierConfig,
    feats: pd.DataFrame,
    redacted: pd.Series,
    minilm: np.ndarray,
    received_at: list[Any] | None = None,
) -> list[dict[str, Any]]:
    """Predictions as JSON-ready dicts from the MiniLM vectors of ``redacted``;
    ``received_at`` (one per text, None: now) starts each legal deadline."""
    vectors = np.hstack([np.asarray(minilm, dtype=np.float32),
                         bundle.project(redacted)]).astype(np.float32)
    timestamps = None
    if received_at is not None and any(t is not None for t in received_at):
        timestamps = pd.Series(pd.to_datetime(list(received_at), utc=True, errors="coerce"),
                               index=redacted.index)
    preds = predict_frame(bundle, vectors, feats, redacted, timestamps, cfg)
    out = []
    for row in preds.itertuples(index=False):
        due = row.due_by
        out.append({
            "label": str(row.label),
            "confidence": float(row.confidence),
            "probabilities": dict(zip(bundle.labels, map(float, row.probabilities),
                                      strict=True)),
            "abstain": bool(row.abstain),
            "regulation": None if row.regulation is None or pd.isna(row.regulation)
            else str(row.regulation),
            "due_by": None if due is None or pd.isna(due) else pd.Timestamp(due).isoformat(),
        })
    return out


def model_info(bundle: ModelBundle, model_dir: str) -> dict[str, Any]:
    """Public identity of a classifier model (no path beyond the directory's name)."""
    from pathlib import Path

    meta = bundle.metadata
    return {"name": Path(model_dir).name, "family": meta.get("family"),
            "embedding_model": bundle.embedding_model,
            "data_sha256": (meta.get("data_sha256") or "")[:16] or None,
            "labels": bundle.labels}
