"""Training and evaluation of the privacy-intent classifier.

Training sees text exactly as the pipeline does: normalised, features computed on the original,
then PII redacted before TF-IDF and MiniLM. Model families are compared on *held-out template
families* (whole paraphrase families unseen in training), never on random rows of the same
templates, and the best by macro-F1 is refitted on all data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from privacy_ray.config import LABELS
from privacy_ray.errors import InputError
from privacy_ray.model.classifier import ModelBundle, load_bundle, save_bundle
from privacy_ray.model.embedder import ENCODING_VERSION, SentenceEncoder, model_fingerprint

if TYPE_CHECKING:  # pragma: no cover
    from privacy_ray.config import Settings

log = logging.getLogger(__name__)
MODEL_FAMILIES = ("logreg", "linear_svm", "mlp")


def prepare_texts(texts: pd.Series) -> tuple[pd.DataFrame, pd.Series]:
    """Handcrafted features on the normalised original, and the redacted text."""
    from privacy_ray.text import compute_features, make_redactor, normalize_texts

    norm = normalize_texts(texts.fillna("").astype(str).reset_index(drop=True))
    feats = compute_features(norm)
    redacted = make_redactor("regex").redact_texts(norm)
    return feats, redacted


def _make_projector(svd_dim: int, seed: int):
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer

    return make_pipeline(
        TfidfVectorizer(
            sublinear_tf=True,
            ngram_range=(1, 2),
            min_df=2,
            max_features=30_000,
            strip_accents="unicode",
            lowercase=True,
        ),
        TruncatedSVD(n_components=svd_dim, random_state=seed),
        Normalizer(copy=False),
    )


def _make_classifier(family: str, seed: int):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.svm import LinearSVC

    if family == "logreg":
        return LogisticRegression(C=4.0, max_iter=3000, class_weight="balanced")
    if family == "linear_svm":
        return CalibratedClassifierCV(
            LinearSVC(C=0.5, class_weight="balanced"), cv=3, method="sigmoid"
        )
    if family == "mlp":
        return MLPClassifier(
            hidden_layer_sizes=(256,),
            alpha=1e-3,
            max_iter=200,
            early_stopping=True,
            random_state=seed,
        )
    msg = f"unknown model family {family!r}; choose one of {', '.join(MODEL_FAMILIES)}"
    raise ValueError(msg)


def metrics(y_true: list[str] | np.ndarray, y_pred: list[str] | np.ndarray) -> dict[str, Any]:
    """Accuracy, macro-F1, per-label precision/recall/F1/support and the confusion matrix."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    p, r, f, s = precision_recall_fscore_support(
        y_true, y_pred, labels=list(LABELS), zero_division=0
    )
    present = [i for i, lbl in enumerate(LABELS) if s[i] > 0]
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "macro_f1": float(np.mean(f[present])) if present else 0.0,
        "per_label": {
            lbl: {
                "precision": float(p[i]),
                "recall": float(r[i]),
                "f1": float(f[i]),
                "support": int(s[i]),
            }
            for i, lbl in enumerate(LABELS)
        },
        "confusion_matrix": {
            "labels": list(LABELS),
            "matrix": confusion_matrix(y_true, y_pred, labels=list(LABELS)).tolist(),
        },
    }


def _held_out_split(df: pd.DataFrame, seed: int, share: float = 0.25) -> np.ndarray:
    """Boolean mask of held-out rows: whole template families when known, else random rows."""
    rng = np.random.default_rng(seed)
    if "template_family" in df.columns and df["template_family"].notna().all():
        families = np.array(sorted(df["template_family"].unique()))
        chosen = {fam for fam in families if rng.random() < share}
        # keep at least one family per label in training and in the held-out part
        for label in LABELS:
            fams = sorted(df.loc[df["label"] == label, "template_family"].unique())
            if len(fams) >= 2:
                if all(f in chosen for f in fams):
                    chosen.discard(fams[0])
                if not any(f in chosen for f in fams):
                    chosen.add(fams[int(rng.integers(len(fams)))])
        return df["template_family"].isin(chosen).to_numpy()
    return rng.random(len(df)) < share


def _fit(
    encoded: np.ndarray,
    feats: pd.DataFrame,
    texts: pd.Series,
    labels: np.ndarray,
    family: str,
    svd_dim: int,
    seed: int,
    metadata: dict[str, Any],
) -> ModelBundle:
    from sklearn.preprocessing import StandardScaler

    projector = _make_projector(min(svd_dim, max(2, len(texts) // 4)), seed).fit(texts)
    scaler = StandardScaler().fit(feats.to_numpy(np.float64))
    bundle = ModelBundle(projector=projector, scaler=scaler, classifier=None, metadata=metadata)
    x = bundle.design_matrix(np.hstack([encoded, bundle.project(texts)]), feats)
    bundle.classifier = _make_classifier(family, seed).fit(x, labels)
    return bundle


def train(
    data: pd.DataFrame,
    settings: Settings,
    families: tuple[str, ...] = MODEL_FAMILIES,
    seed: int = 42,
    encoder: SentenceEncoder | None = None,
) -> tuple[ModelBundle, dict[str, Any]]:
    """Fit every family on the training part, score on held-out families, refit the best."""
    missing = [c for c in ("text", "label") if c not in data.columns]
    if missing:
        msg = f"training data has no column(s) {', '.join(missing)}; it needs text and label"
        raise InputError(msg)
    unknown = sorted(set(data["label"].dropna()) - set(LABELS))
    if unknown:
        msg = f"training data has labels outside the taxonomy: {', '.join(unknown)}"
        raise InputError(msg)
    data = data.dropna(subset=["text", "label"]).reset_index(drop=True)
    started = time.perf_counter()
    feats, texts = prepare_texts(data["text"])
    encoder = encoder or SentenceEncoder.from_config(settings.embedding).load()
    encoded = encoder.encode(texts.tolist())
    encode_s = time.perf_counter() - started
    labels = data["label"].to_numpy()
    held = _held_out_split(data, seed)
    meta_base = {
        "labels": list(LABELS),
        "feature_names": list(feats.columns),
        "embedding_model": settings.embedding.model,
        "embedding_model_hash": model_fingerprint(settings.embedding.model),
        "embedding_dim": int(encoded.shape[1]),
        "svd_dim": settings.embedding.svd_dim,
        "long_text_policy": settings.embedding.long_text_policy,
        "data_sha256": hashlib.sha256(
            pd.util.hash_pandas_object(data[["text", "label"]], index=False).values.tobytes()
        ).hexdigest(),
        "n_train": int((~held).sum()),
        "n_heldout": int(held.sum()),
        "split": "template_family" if "template_family" in data.columns else "random",
        "seed": seed,
    }
    scores: dict[str, Any] = {}
    for family in families:
        t0 = time.perf_counter()
        try:
            bundle = _fit(encoded[~held], feats[~held], texts[~held], labels[~held], family,
                          settings.embedding.svd_dim, seed, meta_base)
        except ValueError as e:  # e.g. too few examples of a label for the family's CV
            log.warning("model family %s skipped: %s", family, str(e).splitlines()[0])
            continue
        pred = _predict_labels(bundle, encoded[held], feats[held], texts[held])
        scores[family] = metrics(labels[held], pred)
        scores[family]["fit_seconds"] = round(time.perf_counter() - t0, 2)
        log.info("family %s: held-out macro-F1 %.3f", family, scores[family]["macro_f1"])
    if not scores:
        msg = (f"no model family could be fitted on {len(data)} rows; give every label at least "
               "a few dozen examples (or more generated messages with --n)")
        raise InputError(msg)
    families = tuple(f for f in families if f in scores)
    best = max(families, key=lambda f: scores[f]["macro_f1"])
    metadata = dict(
        meta_base,
        family=best,
        n_train=len(data),
        heldout_metrics={
            f: {k: scores[f][k] for k in ("macro_f1", "accuracy", "fit_seconds")} for f in families
        },
        heldout_per_label=scores[best]["per_label"],
    )
    final = _fit(encoded, feats, texts, labels, best, settings.embedding.svd_dim, seed, metadata)
    report = {
        "best_family": best,
        "families": scores,
        "encode_seconds": round(encode_s, 2),
        "n": len(data),
    }
    return final, report


def _predict_labels(
    bundle: ModelBundle, encoded: np.ndarray, feats: pd.DataFrame, texts: pd.Series
) -> np.ndarray:
    emb = np.hstack([encoded, bundle.project(texts)])
    return np.asarray(LABELS, dtype=object)[bundle.predict_proba(emb, feats).argmax(axis=1)]


def embed_texts(bundle: ModelBundle, encoder: SentenceEncoder, texts: pd.Series) -> np.ndarray:
    """The 584-d vectors ``[MiniLM 384 | TF-IDF-SVD 200]`` of redacted texts."""
    return np.hstack([encoder.encode(texts.tolist()), bundle.project(texts)]).astype(np.float32)


def evaluate(bundle: ModelBundle, data: pd.DataFrame, encoder: SentenceEncoder,
             abstain_threshold: float = 0.5) -> dict[str, Any]:
    """Metrics of ``bundle`` on labelled ``data`` (text, label).

    Besides the usual scores: the abstain rate at ``abstain_threshold`` and the precision on
    request labels among the predictions that were not abstained (what reaches a deadline
    workflow without a human look).
    """
    from privacy_ray.config import REQUEST_LABELS

    feats, texts = prepare_texts(data["text"])
    emb = np.hstack([encoder.encode(texts.tolist()), bundle.project(texts)])
    proba = bundle.predict_proba(emb, feats)
    pred = np.asarray(LABELS, dtype=object)[proba.argmax(axis=1)]
    truth = data["label"].astype(str).to_numpy()
    result = metrics(truth, pred)
    kept = proba.max(axis=1) >= abstain_threshold
    requested = kept & np.isin(pred, REQUEST_LABELS)
    result["abstain_threshold"] = abstain_threshold
    result["abstain_rate"] = float(1 - kept.mean()) if len(kept) else 0.0
    result["request_precision_non_abstained"] = (
        float((pred[requested] == truth[requested]).mean()) if requested.any() else None)
    return result


# --------------------------------------------------------------------------- default model

#: Seed of the generated messages the default model is trained on (fixed: reproducible).
DEFAULT_MODEL_SEED = 20260101


def default_model_key(settings: Settings) -> str:
    from privacy_ray import __version__

    parts = {
        "version": __version__,
        "n": settings.classifier.training_messages,
        "model": settings.embedding.model,
        "hash": model_fingerprint(settings.embedding.model),
        "svd": settings.embedding.svd_dim,
        "policy": settings.embedding.long_text_policy,
        "encoding": ENCODING_VERSION,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def default_model_dir(settings: Settings) -> Path:
    return (
        Path(settings.classifier.cache_dir).expanduser() / f"default-{default_model_key(settings)}"
    )


def ensure_model(settings: Settings, progress=None) -> Path:
    """The configured model directory, or the default model, trained on first use and cached."""
    if settings.classifier.model_dir:
        return Path(settings.classifier.model_dir).expanduser()
    target = default_model_dir(settings)
    if (target / "metadata.json").is_file():
        return target
    from privacy_ray.synth import generate_messages

    if progress:
        progress(
            f"training the default model once into {target} "
            f"({settings.classifier.training_messages} generated messages)"
        )
    data = generate_messages(settings.classifier.training_messages, seed=DEFAULT_MODEL_SEED)
    bundle, _ = train(data, settings)
    tmp = target.with_name(target.name + ".tmp")
    save_bundle(bundle, tmp)
    tmp.rename(target)
    return target


def load_default(settings: Settings, progress=None) -> ModelBundle:
    return load_bundle(ensure_model(settings, progress), settings.embedding.model)
