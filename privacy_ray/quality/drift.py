"""Distribution drift against a reference run: the population stability index (PSI).

PSI compares the share of values in each bin: ``sum((cur - ref) * ln(cur / ref))``. Bins come
from the reference (quantiles for continuous features, one bin per value when it has few
distinct values, one per category for labels); empty bins get a small floor so the log stays
finite. Common reading: below 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a large one.

A run's reference data are its ``summary.json`` (label counts) and the feature samples kept in
its ``quality_report.json`` (or, for runs without one, a sample of its ``messages/`` Parquet).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from privacy_ray.errors import InputError

#: Floor for empty bins: keeps ln(cur / ref) finite without dominating the sum.
EPSILON = 1e-4


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    shares = counts / total if total else np.zeros_like(counts, dtype=np.float64)
    return np.maximum(shares, EPSILON)


def _psi_shares(ref: np.ndarray, cur: np.ndarray) -> float:
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def bin_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Inner bin edges from the reference: value midpoints when it has at most ``bins``
    distinct values, otherwise its quantiles (deduplicated)."""
    distinct = np.unique(reference)
    if len(distinct) <= bins:
        return (distinct[:-1] + distinct[1:]) / 2
    return np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))


def psi(reference: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray,
        bins: int = 10) -> float:
    """PSI of a numeric feature; NaN when either side has no finite value."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if not len(ref) or not len(cur):
        return math.nan
    edges = bin_edges(ref, bins)
    n_bins = len(edges) + 1
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=n_bins)
    cur_counts = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=n_bins)
    return _psi_shares(_shares(ref_counts.astype(np.float64)),
                       _shares(cur_counts.astype(np.float64)))


def categorical_psi(reference: Mapping[str, float], current: Mapping[str, float]) -> float:
    """PSI of two category -> count mappings (categories missing on one side count as 0)."""
    cats = sorted(set(reference) | set(current))
    if not cats or not sum(reference.values()) or not sum(current.values()):
        return math.nan
    ref = np.array([float(reference.get(c, 0)) for c in cats])
    cur = np.array([float(current.get(c, 0)) for c in cats])
    return _psi_shares(_shares(ref), _shares(cur))


def label_psi(reference_labels: Mapping[str, float], current_labels: Mapping[str, float]) -> float:
    """PSI of the label distribution (counts per label) between two runs."""
    return categorical_psi(reference_labels, current_labels)


def drift_report(
    current_labels: Mapping[str, float],
    current_samples: Mapping[str, Sequence[float]],
    reference_labels: Mapping[str, float],
    reference_samples: Mapping[str, Sequence[float]],
    features: Sequence[str],
    bins: int = 10,
    reference: str | None = None,
) -> dict[str, Any]:
    """Label PSI and per-feature PSI; features missing on either side are listed, not scored."""
    label = label_psi(reference_labels, current_labels)
    feature_psi: dict[str, float] = {}
    missing = []
    for name in features:
        if name not in current_samples or name not in reference_samples:
            missing.append(name)
            continue
        value = psi(reference_samples[name], current_samples[name], bins)
        if math.isnan(value):
            missing.append(name)
        else:
            feature_psi[name] = round(value, 6)
    return {
        "reference": reference,
        "label_psi": None if math.isnan(label) else round(label, 6),
        "feature_psi": feature_psi,
        "features_not_compared": missing,
        "bins": bins,
    }


# --------------------------------------------------------------------------- run folders


def _read_json(uri: str) -> Any:
    from privacy_ray.runs import filesystem_for

    fs, path = filesystem_for(uri)
    with fs.open_input_stream(path) as stream:
        return json.loads(stream.read().decode("utf-8"))


def _exists(uri: str) -> bool:
    from privacy_ray.runs import filesystem_for

    fs, path = filesystem_for(uri)
    return fs.get_file_info(path).type.name in ("File", "Directory")


def load_feature_samples(run_uri: str, columns: Sequence[str], max_rows: int = 5000,
                         seed: int = 0, subdir: str = "messages") -> dict[str, list[float]]:
    """A reproducible random sample (at most ``max_rows`` rows) of numeric columns of a run's
    output Parquet; columns the output lacks are left out."""
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    from privacy_ray.runs import filesystem_for, join

    fs, root = filesystem_for(run_uri)
    path = join(root, subdir)
    if fs.get_file_info(path).type.name != "Directory":
        return {}
    dataset = pads.dataset(path, filesystem=fs, format="parquet", partitioning="hive")
    present = [c for c in columns if c in dataset.schema.names]
    if not present:
        return {}
    # File by file, footers included: Dataset.count_rows() / take() keep every file's footer
    # cached, about 600 MB in the driver for a 200k-message run's 2,250 date-partitioned files.
    files = dataset.files
    counts = [pq.read_metadata(f, filesystem=fs).num_rows for f in files]
    n = sum(counts)
    idx = (np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))
           if n > max_rows else None)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in present}
    offset = 0
    for file, rows in zip(files, counts, strict=True):
        lo, hi = np.searchsorted(idx, [offset, offset + rows]) if idx is not None else (0, rows)
        if hi > lo:
            # ParquetFile, not pq.read_table: that builds a one-file dataset per call, which
            # took twice as long over a 20k-message run's ~340 small files
            table = pq.ParquetFile(file, filesystem=fs).read(columns=present)
            if idx is not None:
                table = table.take(idx[lo:hi] - offset)
            for name in present:
                parts[name].append(table.column(name).to_numpy(zero_copy_only=False))
        offset += rows
    out = {}
    for name in present:
        values = (np.concatenate(parts[name]) if parts[name] else np.zeros(0)).astype(np.float64)
        out[name] = values[np.isfinite(values)].tolist()
    return out


def load_reference(run_uri: str, features: Sequence[str],
                   max_rows: int = 5000) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Label counts and feature samples of a finished reference run."""
    from privacy_ray.runs import join

    summary_uri = join(run_uri, "summary.json")
    if not _exists(summary_uri):
        msg = (f"reference run {run_uri} has no summary.json; set quality.reference_run to the "
               "folder of a finished run (output/runs/RUN_ID)")
        raise InputError(msg)
    labels = {str(k): float(v) for k, v in (_read_json(summary_uri).get("labels") or {}).items()}
    samples: dict[str, list[float]] = {}
    report_uri = join(run_uri, "quality_report.json")
    if _exists(report_uri):
        kept = _read_json(report_uri).get("feature_samples") or {}
        samples = {k: list(v) for k, v in kept.items() if k in features}
    missing = [f for f in features if f not in samples]
    if missing:
        samples.update(load_feature_samples(run_uri, missing, max_rows))
    return labels, samples
