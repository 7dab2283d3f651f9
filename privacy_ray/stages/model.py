"""Model stages: the 584-d embedding and the classifier, each an actor pool.

Both receive the fitted :class:`~privacy_ray.model.classifier.ModelBundle` as an object-store
reference (one copy per node, never refitted); the embedder loads MiniLM once per actor, with
torch threads set to the actor's CPUs so two actors do not fight over two cores.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from privacy_ray.config import ClassifierConfig, EmbeddingConfig
from privacy_ray.model.classifier import PREDICTION_COLUMNS, ModelBundle, predict_frame
from privacy_ray.model.embedder import SentenceEncoder, embedding_quality
from privacy_ray.stages.base import Stage

EMBEDDING_COLUMN = "embedding"


def _resolve(bundle: Any) -> ModelBundle:
    """The bundle itself, or fetched from the object store when given as an ObjectRef."""
    if isinstance(bundle, ModelBundle):
        return bundle
    import ray

    return ray.get(bundle)


class Embed(Stage):
    """``embedding``: ``[MiniLM 384 | TF-IDF-SVD 200]`` as float32, of the redacted text."""

    name = "embed"
    inputs = ("text",)
    outputs = (EMBEDDING_COLUMN,)
    stateful: ClassVar[bool] = True

    def __init__(self, cfg: EmbeddingConfig, bundle: Any, threads: int = 1) -> None:
        self.cfg = cfg
        self._bundle_ref = bundle
        self.torch_threads = max(1, int(threads))
        self.bundle: ModelBundle | None = None
        self.encoder: SentenceEncoder | None = None
        self._last_quality: dict[str, float] = {}

    def setup(self) -> None:
        self.bundle = _resolve(self._bundle_ref)
        self.encoder = SentenceEncoder.from_config(self.cfg, torch_threads=self.torch_threads)
        self.encoder.load()

    def process(self, batch: pd.DataFrame) -> pd.DataFrame:
        if self.encoder is None:
            self.setup()
        texts = batch["text"].fillna("").astype(str)
        vectors = np.hstack([self.encoder.encode(texts.tolist()), self.bundle.project(texts)])
        vectors = vectors.astype(np.float32, copy=False)
        batch = batch.copy()
        batch[EMBEDDING_COLUMN] = list(vectors)
        self._last_quality = embedding_quality(vectors)
        return batch

    def batch_sums(self) -> dict[str, float]:
        q = self._last_quality
        if not q:
            return {}
        return {
            "embedding_rows": q["rows"],
            "embedding_non_finite": q["non_finite"],
            "embedding_zero_norm": q["zero_norm"],
            "embedding_norm_sum": q["mean_norm"] * q["rows"],
            "embedding_cosine_sum": q["mean_pairwise_cosine"],
            "embedding_batches": 1,
        }


class Classify(Stage):
    """Label, confidence, probabilities, abstain, regulation and due date per message."""

    name = "classify"
    outputs = PREDICTION_COLUMNS
    stateful: ClassVar[bool] = True

    def __init__(self, cfg: ClassifierConfig, bundle: Any) -> None:
        self.cfg = cfg
        self._bundle_ref = bundle
        self.bundle: ModelBundle | None = None
        self.inputs = ("text", EMBEDDING_COLUMN)  # type: ignore[misc]

    def setup(self) -> None:
        self.bundle = _resolve(self._bundle_ref)

    def process(self, batch: pd.DataFrame) -> pd.DataFrame:
        if self.bundle is None:
            self.setup()
        emb = np.stack(batch[EMBEDDING_COLUMN].to_numpy()) if len(batch) else np.zeros((0, 584))
        ts = batch["timestamp"] if "timestamp" in batch.columns else None
        preds = predict_frame(self.bundle, emb, batch, batch["text"], ts, self.cfg)
        if "label" in batch.columns:
            batch = batch.rename(columns={"label": "label_true"})
        return pd.concat([batch, preds], axis=1)
