"""The privacy-intent classifier: a model bundle, its artifact format, and prediction.

A bundle holds everything fitted at training time: the TF-IDF -> TruncatedSVD projection (200-d),
the scaler of the handcrafted features, and the calibrated classifier over
``[MiniLM 384 | TF-IDF-SVD 200 | scaled features]``. It is saved with skops (no bare pickle) plus
a ``metadata.json`` that records versions and the embedding model, checked on load.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from privacy_ray.config import LABELS, REQUEST_LABELS, ClassifierConfig
from privacy_ray.errors import ModelError

ARTIFACT_FORMAT_VERSION = 1
ARTIFACT_FILES = ("projector.skops", "scaler.skops", "classifier.skops", "metadata.json")
PREDICTION_COLUMNS = ("label", "confidence", "probabilities", "abstain", "regulation", "due_by")

_GDPR_CUES = re.compile(
    r"\b(?:U\.?K\.?\s+)?GDPR\b|\bArt(?:icle|\.)\s*(?:1[2-9]|2[0-2])\b|data protection officer|"
    r"\bDPO\b|\bgeneral data protection regulation\b|\bEU\b|\bEuropean\b|\bICO\b|\bCNIL\b",
    re.IGNORECASE,
)
_CCPA_CUES = re.compile(
    r"\bCCPA\b|\bCPRA\b|\bCalifornia\b|\b1798\.\d+|do not sell|\bshine the light\b",
    re.IGNORECASE,
)


@dataclass
class ModelBundle:
    """Fitted parts plus metadata; picklable, so Ray shares one copy through the object store."""

    projector: Any  # sklearn Pipeline: TfidfVectorizer -> TruncatedSVD -> Normalizer
    scaler: Any  # StandardScaler over the handcrafted features
    classifier: Any  # calibrated sklearn classifier with predict_proba
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return list(self.metadata["labels"])

    @property
    def feature_names(self) -> list[str]:
        return list(self.metadata["feature_names"])

    @property
    def embedding_model(self) -> str:
        return str(self.metadata["embedding_model"])

    def project(self, texts: pd.Series | list[str]) -> np.ndarray:
        """TF-IDF -> SVD vectors (float32, unit norm) for already redacted texts."""
        texts = pd.Series(texts, dtype=object).fillna("").astype(str)
        return self.projector.transform(texts).astype(np.float32)

    def design_matrix(self, embeddings: np.ndarray, features: pd.DataFrame) -> np.ndarray:
        """``[584-d embedding | scaled features]``, the classifier's input."""
        feats = features.reindex(columns=self.feature_names).fillna(0.0).to_numpy(np.float64)
        scaled = np.clip(self.scaler.transform(feats), -5, 5)
        return np.hstack([embeddings.astype(np.float64), scaled])

    def predict_proba(self, embeddings: np.ndarray, features: pd.DataFrame) -> np.ndarray:
        """Probabilities in the order of :data:`privacy_ray.config.LABELS`."""
        raw = self.classifier.predict_proba(self.design_matrix(embeddings, features))
        order = [
            list(self.classifier.classes_).index(lbl) if lbl in self.classifier.classes_ else None
            for lbl in LABELS
        ]
        out = np.zeros((len(raw), len(LABELS)))
        for j, idx in enumerate(order):
            if idx is not None:
                out[:, j] = raw[:, idx]
        out /= np.maximum(out.sum(axis=1, keepdims=True), 1e-12)
        return out


# --------------------------------------------------------------------------- predictions


def infer_regulation(texts: pd.Series, default: str = "unknown") -> pd.Series:
    """GDPR or CCPA from cues in the text (articles, sections, names); ``default`` otherwise."""
    texts = texts.fillna("").astype(str)
    gdpr = texts.str.count(_GDPR_CUES)
    ccpa = texts.str.count(_CCPA_CUES)
    out = pd.Series(default, index=texts.index, dtype=object)
    out[(gdpr > 0) & (gdpr >= ccpa)] = "GDPR"
    out[(ccpa > 0) & (ccpa > gdpr)] = "CCPA"
    return out


def due_dates(
    timestamps: pd.Series,
    regulation: pd.Series,
    cfg: ClassifierConfig,
    now: pd.Timestamp | None = None,
) -> pd.Series:
    """Statutory response deadline: GDPR one month, CCPA 45 days, unknown the earlier of both."""
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    # Ray Data hands Arrow-backed timestamps to pandas; DateOffset needs numpy-backed ones.
    ts = pd.to_datetime(timestamps, utc=True, errors="coerce").astype("datetime64[ns, UTC]")
    ts = ts.fillna(now)
    gdpr = ts + pd.DateOffset(months=cfg.gdpr_response_months)
    ccpa = ts + pd.Timedelta(days=cfg.ccpa_response_days)
    out = pd.Series(pd.NaT, index=ts.index, dtype="datetime64[ns, UTC]")
    reg = regulation.reindex(ts.index)
    out[reg == "GDPR"] = gdpr[reg == "GDPR"]
    out[reg == "CCPA"] = ccpa[reg == "CCPA"]
    unknown = reg == "unknown"
    out[unknown] = np.minimum(gdpr[unknown].to_numpy(), ccpa[unknown].to_numpy())
    return out


def predict_frame(
    bundle: ModelBundle,
    embeddings: np.ndarray,
    features: pd.DataFrame,
    texts: pd.Series,
    timestamps: pd.Series | None,
    cfg: ClassifierConfig,
) -> pd.DataFrame:
    """Label, confidence, all nine probabilities, abstain, and regulation / due date."""
    index = texts.index
    if len(index) == 0:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PREDICTION_COLUMNS})
    proba = bundle.predict_proba(embeddings, features)
    top = proba.argmax(axis=1)
    labels = np.asarray(LABELS, dtype=object)[top]
    confidence = proba[np.arange(len(top)), top]
    is_request = pd.Series(labels, index=index).isin(REQUEST_LABELS)
    regulation = infer_regulation(texts, cfg.default_regulation).where(is_request, None)
    ts = timestamps if timestamps is not None else pd.Series(pd.NaT, index=index)
    due = due_dates(ts, regulation.fillna("unknown"), cfg).where(is_request, pd.NaT)
    return pd.DataFrame(
        {
            "label": labels,
            "confidence": confidence.astype(np.float64),
            "probabilities": list(proba.astype(np.float32)),
            "abstain": confidence < cfg.abstain_threshold,
            "regulation": regulation.to_numpy(),
            "due_by": due.to_numpy(),
        },
        index=index,
    )


# --------------------------------------------------------------------------- artifacts


def _versions() -> dict[str, str]:
    import sklearn
    import skops

    from privacy_ray import __version__

    return {
        "scikit-learn": sklearn.__version__,
        "skops": skops.__version__,
        "privacy-ray": __version__,
    }


def save_bundle(bundle: ModelBundle, out_dir: str | Path) -> Path:
    """Write the bundle to ``out_dir`` (skops files + metadata.json); returns the directory."""
    import skops.io as sio

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sio.dump(bundle.projector, out / "projector.skops")
    sio.dump(bundle.scaler, out / "scaler.skops")
    sio.dump(bundle.classifier, out / "classifier.skops")
    meta = dict(bundle.metadata)
    meta.setdefault("format_version", ARTIFACT_FORMAT_VERSION)
    meta["versions"] = _versions()
    (out / "metadata.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    return out


#: Types a privacy-ray artifact may contain; anything else is refused on load.
_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.")


def _load_skops(path: Path) -> Any:
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
        unexpected = [t for t in untrusted if not t.startswith(_TRUSTED_PREFIXES)]
        if unexpected:
            msg = f"model file {path} contains unexpected types {unexpected}; refusing to load it"
            raise ModelError(msg)
        return sio.load(path, trusted=untrusted)
    except ModelError:
        raise
    except Exception as e:
        msg = f"model file {path} is corrupted or unreadable ({type(e).__name__}); retrain it"
        raise ModelError(msg) from e


def load_bundle(model_dir: str | Path, embedding_model: str | None = None) -> ModelBundle:
    """Load and check a model directory: files present, versions compatible, same embedder."""
    d = Path(model_dir).expanduser()
    if not d.is_dir():
        msg = f"model directory {d} does not exist; train one with `privacy-ray train --out {d}`"
        raise ModelError(msg)
    missing = [f for f in ARTIFACT_FILES if not (d / f).is_file()]
    if missing:
        msg = f"model directory {d} is incomplete (missing {', '.join(missing)}); retrain it"
        raise ModelError(msg)
    try:
        meta = json.loads((d / "metadata.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        msg = f"model metadata {d / 'metadata.json'} is not valid JSON; retrain the model"
        raise ModelError(msg) from e
    if meta.get("format_version") != ARTIFACT_FORMAT_VERSION:
        msg = (
            f"model {d} has artifact format {meta.get('format_version')}, this privacy-ray "
            f"reads {ARTIFACT_FORMAT_VERSION}; retrain it with `privacy-ray train`"
        )
        raise ModelError(msg)
    saved = meta.get("versions", {}).get("scikit-learn", "")
    current = _versions()["scikit-learn"]
    if saved.split(".")[:2] != current.split(".")[:2]:
        msg = (
            f"model {d} was built with scikit-learn {saved}, this environment has {current}; "
            "retrain it or install the matching scikit-learn"
        )
        raise ModelError(msg)
    if embedding_model and meta.get("embedding_model") != embedding_model:
        msg = (
            f"model {d} was trained on embeddings of {meta.get('embedding_model')!r}, the "
            f"config uses {embedding_model!r}; retrain it or set embedding.model to match"
        )
        raise ModelError(msg)
    if list(meta.get("labels", [])) != list(LABELS):
        msg = f"model {d} predicts labels {meta.get('labels')}, not this taxonomy; retrain it"
        raise ModelError(msg)
    return ModelBundle(
        projector=_load_skops(d / "projector.skops"),
        scaler=_load_skops(d / "scaler.skops"),
        classifier=_load_skops(d / "classifier.skops"),
        metadata=meta,
    )
