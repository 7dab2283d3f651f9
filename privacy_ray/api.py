"""The Python API for notebooks: classify, embed, train and evaluate without Ray.

The same functions back the CLI's ``classify``, ``train`` and ``evaluate`` commands, and the
Serve app's classifier, so a notebook result equals the service's.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from privacy_ray.config import Settings, load_config
from privacy_ray.model.classifier import ModelBundle, load_bundle, predict_frame, save_bundle
from privacy_ray.model.embedder import SentenceEncoder


def _settings(settings: Settings | None) -> Settings:
    return settings if settings is not None else load_config().settings


class Classifier:
    """A loaded model plus its encoder. ``Classifier().classify(["delete my data"])``."""

    def __init__(self, model_dir: str | Path | None = None, settings: Settings | None = None):
        self.settings = _settings(settings)
        if model_dir is not None:
            self.model_dir = Path(model_dir).expanduser()
        else:
            from privacy_ray.model.training import ensure_model

            self.model_dir = ensure_model(self.settings)
        self.bundle: ModelBundle = load_bundle(self.model_dir, self.settings.embedding.model)

    @cached_property
    def encoder(self) -> SentenceEncoder:
        return SentenceEncoder.from_config(self.settings.embedding).load()

    def _prepare(self, texts: pd.Series) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
        from privacy_ray.model.training import embed_texts, prepare_texts

        feats, redacted = prepare_texts(texts)
        return feats, redacted, embed_texts(self.bundle, self.encoder, redacted)

    def embed(self, texts: list[str] | pd.Series) -> np.ndarray:
        """The 584-d vectors of ``texts`` (redacted first), float32."""
        _, _, vectors = self._prepare(pd.Series(list(texts), dtype=object))
        return vectors

    def classify(
        self, data: list[str] | pd.Series | pd.DataFrame, timestamps: pd.Series | None = None
    ) -> pd.DataFrame:
        """One row per text: redacted text, label, confidence, probabilities, abstain, ..."""
        if isinstance(data, pd.DataFrame):
            texts = data["text"].reset_index(drop=True)
            if timestamps is None and "timestamp" in data.columns:
                timestamps = data["timestamp"].reset_index(drop=True)
        else:
            texts = pd.Series(
                list(data) if not isinstance(data, pd.Series) else data.tolist(), dtype=object
            )
        feats, redacted, vectors = self._prepare(texts)
        preds = predict_frame(
            self.bundle, vectors, feats, redacted, timestamps, self.settings.classifier
        )
        preds.insert(0, "text", redacted.to_numpy())
        preds["probabilities"] = [
            dict(zip(self.bundle.labels, map(float, p), strict=True))
            for p in preds["probabilities"]
        ]
        return preds


def load_model(model_dir: str | Path | None = None, settings: Settings | None = None) -> Classifier:
    """A :class:`Classifier` for ``model_dir`` (default: the default model, built if needed)."""
    return Classifier(model_dir, settings)


def classify(
    texts: list[str] | pd.Series | pd.DataFrame,
    model_dir: str | None = None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Classify texts (or a DataFrame with ``text``) with the given or default model."""
    return Classifier(model_dir, settings).classify(texts)


def embed(
    texts: list[str], model_dir: str | None = None, settings: Settings | None = None
) -> np.ndarray:
    """584-d vectors of texts with the given or default model's projection."""
    return Classifier(model_dir, settings).embed(texts)


def train_model(
    data: pd.DataFrame, out_dir: str | Path, settings: Settings | None = None, seed: int = 42
) -> dict[str, Any]:
    """Train on labelled ``data`` (text, label), save to ``out_dir``; returns the report."""
    from privacy_ray.model.training import train

    bundle, report = train(data, _settings(settings), seed=seed)
    save_bundle(bundle, out_dir)
    return report


def evaluate_model(
    data: pd.DataFrame, model_dir: str | Path | None = None, settings: Settings | None = None
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-label scores and confusion matrix on labelled ``data``."""
    from privacy_ray.model.training import evaluate

    clf = Classifier(model_dir, settings)
    return evaluate(clf.bundle, data, clf.encoder, clf.settings.classifier.abstain_threshold)
