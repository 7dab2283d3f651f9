"""Text stages: normalise, compute handcrafted features, redact PII.

Thin wrappers: the logic lives in :mod:`privacy_ray.text`, as plain functions over a Series.
Features are computed on the unredacted text (PII counts need it); redaction then replaces
``text`` in place, so nothing downstream (embedding, outputs, logs) sees raw PII.
"""

from __future__ import annotations

import pandas as pd

from privacy_ray.stages.base import Stage


class Normalize(Stage):
    """Unicode NFC, control characters stripped, whitespace collapsed."""

    name = "normalize"
    inputs = ("text",)
    outputs = ("text",)

    def process(self, batch: pd.DataFrame) -> pd.DataFrame:
        from privacy_ray.text import normalize_texts

        batch = batch.copy()
        batch["text"] = normalize_texts(batch["text"])
        return batch


class Features(Stage):
    """The handcrafted features of the catalogue (``f_*`` columns)."""

    name = "features"
    inputs = ("text",)

    def output_columns(self) -> tuple[str, ...]:
        from privacy_ray.text import feature_names

        return tuple(feature_names())

    def process(self, batch: pd.DataFrame) -> pd.DataFrame:
        from privacy_ray.text import compute_features

        feats = compute_features(batch["text"])
        return pd.concat([batch, feats.set_index(batch.index)], axis=1)


class Redact(Stage):
    """Replace PII in ``text`` by typed placeholders; optionally keep the original aside."""

    name = "redact"
    inputs = ("text",)
    outputs = ("text",)

    def __init__(self, engine: str = "regex", keep_original_text: bool = False) -> None:
        self.engine = engine
        self.keep_original_text = keep_original_text
        self._redactor = None

    def output_columns(self) -> tuple[str, ...]:
        return ("text", "original_text") if self.keep_original_text else ("text",)

    def process(self, batch: pd.DataFrame) -> pd.DataFrame:
        from privacy_ray.text import make_redactor

        if self._redactor is None:
            self._redactor = make_redactor(self.engine)
        batch = batch.copy()
        if self.keep_original_text:
            batch["original_text"] = batch["text"]
        batch["text"] = self._redactor.redact_texts(batch["text"])
        return batch
