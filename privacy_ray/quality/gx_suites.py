"""Great Expectations suites for the raw and derived layers, validated batch by batch.

The suites are defined here in code, as plain data (:class:`SuiteSpec`), and turned into real
``gx.ExpectationSuite`` objects where they run: inside the Ray stages, on each pandas batch,
through an ephemeral GX context with a pandas data source. The context and the compiled suites
are built once per worker process (a module-level cache): importing GX takes seconds, a
validation tens of milliseconds, and GX's cost is per expectation rather than per row, so
larger batches make it cheaper.

:meth:`GxBatchValidator.validate` returns flat numeric sums (``gx.<suite>.<key>.evaluated``,
``.unexpected``, ``.missing``, ...) that add up across batches through ``Stage.batch_sums``;
:func:`summarize` turns the run's totals into per-expectation pass rates.

A few expectations look at helper columns the validator computes from the batch first (their
names start with ``_``; each expectation's ``meta.helper`` says how it is computed): the parsed
UTC timestamp and, per embedding, its dimension, non-finite count, norm and cosine to the
batch centroid. :func:`export_suites` writes the suites as GX JSON.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from privacy_ray.config import CHANNELS, LABELS

if TYPE_CHECKING:  # pragma: no cover
    import great_expectations as gx

    from privacy_ray.quality import QualityConfig

#: Prefix of every sum key: ``gx.<suite>.<expectation key>.<metric>``.
SUM_PREFIX = "gx"
#: Counted per row (column map expectations) or once per batch (table or aggregate ones).
ROW, BATCH = "row", "batch"
METRICS = ("evaluated", "unexpected", "missing", "errors", "failed_batches", "observed")
RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0}
#: Record columns every raw batch must have (DESIGN.md); ``label`` is optional.
REQUIRED_RAW_COLUMNS = ("message_id", "conversation_id", "user_id", "channel", "timestamp",
                        "text")
TIMESTAMP_HELPER = "_timestamp_utc"
EMBEDDING_COLUMN = "embedding"
EMB_DIM, EMB_NON_FINITE, EMB_NORM, EMB_CENTROID_COS = (
    "_embedding_dim", "_embedding_non_finite", "_embedding_norm", "_embedding_centroid_cosine")
_ID_NAMESPACE = uuid.UUID("5b0f54c2-8d1e-4f51-9a55-7d0c1b6f2e10")


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation: a stable ``key`` for sums and reports, a GX type and its kwargs."""

    key: str
    type: str  # GX snake-case name, e.g. expect_column_values_to_be_between
    kwargs: Mapping[str, Any]
    description: str
    level: str = ROW
    #: Its null count measures the coverage of a feature (share of non-null values).
    coverage: bool = False
    #: Not counted in batches with fewer non-null values in its column (batch-level statistics).
    min_rows: int = 0
    helper: str | None = None

    @property
    def column(self) -> str | None:
        return self.kwargs.get("column")

    @property
    def class_name(self) -> str:
        return "".join(part.capitalize() for part in self.type.split("_"))


@dataclass(frozen=True)
class SuiteSpec:
    """A suite as data: cheap to build and to pickle into Ray workers, compiled to GX there."""

    name: str
    expectations: tuple[ExpectationSpec, ...]
    #: Columns left absent when a batch lacks them (their expectations then count as errors);
    #: other referenced columns are added as all-null so they count as missing values.
    required: tuple[str, ...] = ()
    embedding_dim: int | None = None
    parse_timestamp: bool = False

    @functools.cached_property
    def fingerprint(self) -> str:
        """Identifies the compiled suite in the per-process cache (computed once)."""
        doc = json.dumps(
            [self.name, [(e.key, e.type, dict(e.kwargs), e.level, e.min_rows)
                         for e in self.expectations], self.required, self.embedding_dim,
             self.parse_timestamp], sort_keys=True, default=str)
        return hashlib.sha256(doc.encode()).hexdigest()[:16]

    def columns(self) -> list[str]:
        cols = [e.column for e in self.expectations if e.column]
        return list(dict.fromkeys(cols))

    def by_key(self) -> dict[str, ExpectationSpec]:
        return {e.key: e for e in self.expectations}


# --------------------------------------------------------------------------- suites as data


def _exp(key: str, gx_type: str, description: str, **kwargs: Any) -> ExpectationSpec:
    extra = {k: kwargs.pop(k) for k in ("level", "coverage", "min_rows", "helper") if k in kwargs}
    return ExpectationSpec(key, gx_type, kwargs, description, **extra)


def raw_suite_spec(
    max_text_chars: int = 20_000,
    min_text_chars: int = 1,
    earliest_timestamp: str = "2000-01-01T00:00:00+00:00",
    max_future_days: float = 1.0,
    now: pd.Timestamp | None = None,
) -> SuiteSpec:
    """The raw layer: columns and types, ids, text bounds, channel, timestamps, labels.

    Meant for the batch as it enters ``validate_raw`` (types as delivered by the source); the
    timestamp is parsed into a helper column first. The latest plausible timestamp is fixed
    when the spec is built (now + ``max_future_days``, rounded up to the hour).
    """
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    latest = (now + pd.Timedelta(days=max_future_days)).ceil("h")
    earliest = pd.Timestamp(earliest_timestamp)
    earliest = earliest.tz_localize("UTC") if earliest.tzinfo is None else earliest.tz_convert(
        "UTC")
    helper = "pd.to_datetime(timestamp, utc=True, errors='coerce', format='mixed')"
    exps = (
        _exp("required_columns", "expect_table_columns_to_match_set",
             "the batch has every record column", column_set=list(REQUIRED_RAW_COLUMNS),
             exact_match=False, level=BATCH),
        _exp("message_id_not_null", "expect_column_values_to_not_be_null",
             "message_id is present", column="message_id"),
        _exp("message_id_is_string", "expect_column_values_to_be_of_type",
             "message_id is a string", column="message_id", type_="str"),
        _exp("message_id_unique", "expect_column_values_to_be_unique",
             "no duplicate message_id within a batch", column="message_id"),
        _exp("conversation_id_not_null", "expect_column_values_to_not_be_null",
             "conversation_id is present", column="conversation_id"),
        _exp("user_id_not_null", "expect_column_values_to_not_be_null",
             "user_id is present", column="user_id"),
        _exp("text_not_null", "expect_column_values_to_not_be_null", "text is present",
             column="text"),
        _exp("text_is_string", "expect_column_values_to_be_of_type", "text is a string",
             column="text", type_="str"),
        _exp("text_length", "expect_column_value_lengths_to_be_between",
             f"text has {min_text_chars} to {max_text_chars} characters", column="text",
             min_value=min_text_chars, max_value=max_text_chars),
        _exp("text_not_blank", "expect_column_values_to_not_match_regex",
             "text is not empty or whitespace only", column="text", regex=r"^\s*$"),
        _exp("channel_known", "expect_column_values_to_be_in_set",
             f"channel is one of {', '.join(CHANNELS)}", column="channel",
             value_set=list(CHANNELS)),
        _exp("timestamp_parseable", "expect_column_values_to_not_be_null",
             "timestamp is present and parses as a date-time", column=TIMESTAMP_HELPER,
             helper=helper),
        _exp("timestamp_in_range", "expect_column_values_to_be_between",
             f"timestamp lies between {earliest.isoformat()} and {latest.isoformat()}",
             column=TIMESTAMP_HELPER, min_value=earliest.isoformat(),
             max_value=latest.isoformat(), helper=helper),
        _exp("label_in_taxonomy", "expect_column_values_to_be_in_set",
             "label, when present, is in the taxonomy", column="label", value_set=list(LABELS)),
    )
    return SuiteSpec("raw", exps, required=REQUIRED_RAW_COLUMNS, parse_timestamp=True)


def _field(record: Any, name: str) -> Any:
    return record.get(name) if isinstance(record, Mapping) else getattr(record, name, None)


def derived_suite_spec(
    feature_catalogue: Sequence[Any],
    embedding_dim: int | None = 584,
    norm_bounds: tuple[float, float] = (0.5, 2.0),
    max_centroid_cosine: float = 0.98,
    collapse_min_rows: int = 16,
) -> SuiteSpec:
    """The derived layer: feature ranges and coverage, embedding dimension, finiteness, norms
    and batch collapse.

    ``feature_catalogue`` holds records with ``name``, ``min`` and ``max`` (dicts from
    ``privacy_ray.text.catalogue_records()`` or ``FeatureSpec`` objects); ``embedding_dim=None``
    leaves the embedding out (a pipeline without an embed stage).
    """
    exps: list[ExpectationSpec] = []
    for record in feature_catalogue:
        name, lo, hi = _field(record, "name"), _field(record, "min"), _field(record, "max")
        bounds = {k: float(v) if isinstance(v, float) else v
                  for k, v in (("min_value", lo), ("max_value", hi)) if v is not None}
        if bounds:
            span = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
            exps.append(_exp(f"{name}_range", "expect_column_values_to_be_between",
                             f"{name} lies in {span}", column=name, coverage=True, **bounds))
        else:
            exps.append(_exp(f"{name}_not_null", "expect_column_values_to_not_be_null",
                             f"{name} is computed", column=name, coverage=True))
    if embedding_dim is not None:
        lo, hi = norm_bounds
        how = "computed by GxBatchValidator from the embedding column"
        exps += [
            _exp("embedding_present", "expect_column_values_to_not_be_null",
                 "the row has an embedding", column=EMB_DIM, helper=f"length; {how}"),
            _exp("embedding_dim", "expect_column_values_to_be_between",
                 f"the embedding has {embedding_dim} dimensions", column=EMB_DIM,
                 min_value=embedding_dim, max_value=embedding_dim, helper=f"length; {how}"),
            _exp("embedding_finite", "expect_column_values_to_be_between",
                 "the embedding has no NaN or infinite values", column=EMB_NON_FINITE,
                 min_value=0, max_value=0, helper=f"non-finite values; {how}"),
            _exp("embedding_norm", "expect_column_values_to_be_between",
                 f"the embedding norm lies in [{lo}, {hi}]", column=EMB_NORM, min_value=lo,
                 max_value=hi, helper=f"L2 norm; {how}"),
            _exp("embedding_not_collapsed", "expect_column_mean_to_be_between",
                 f"the batch's mean cosine to its centroid is at most {max_centroid_cosine} "
                 "(vectors do not all point the same way)", column=EMB_CENTROID_COS,
                 max_value=max_centroid_cosine, level=BATCH, min_rows=collapse_min_rows,
                 helper=f"cosine of each unit vector to the batch centroid; {how}"),
        ]
    return SuiteSpec("derived", tuple(exps), embedding_dim=embedding_dim)


def default_catalogue() -> list[dict[str, object]]:
    """The feature catalogue of :mod:`privacy_ray.text`."""
    from privacy_ray.text import catalogue_records

    return catalogue_records()


# --------------------------------------------------------------------------- GX objects


def build_gx_suite(spec: SuiteSpec) -> gx.ExpectationSuite:
    """A real ``gx.ExpectationSuite`` for ``spec``, with ids derived from the spec (stable)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=spec.name, meta={"generated_by": "privacy_ray.quality"})
    for e in spec.expectations:
        meta: dict[str, Any] = {"key": e.key, "description": e.description, "level": e.level}
        if e.helper:
            meta["helper"] = e.helper
        if e.min_rows:
            meta["min_rows"] = e.min_rows
        suite.add_expectation(getattr(gxe, e.class_name)(**dict(e.kwargs), meta=meta))
    for exp, e in zip(suite.expectations, spec.expectations, strict=True):
        exp.id = str(uuid.uuid5(_ID_NAMESPACE, f"{spec.name}/{e.key}"))
    suite.id = str(uuid.uuid5(_ID_NAMESPACE, spec.name))
    return suite


def raw_suite(**params: Any) -> gx.ExpectationSuite:
    """The raw-layer suite as GX objects (parameters: see :func:`raw_suite_spec`)."""
    return build_gx_suite(raw_suite_spec(**params))


def derived_suite(feature_catalogue: Sequence[Any] | None = None,
                  **params: Any) -> gx.ExpectationSuite:
    """The derived-layer suite as GX objects (parameters: see :func:`derived_suite_spec`)."""
    catalogue = default_catalogue() if feature_catalogue is None else feature_catalogue
    return build_gx_suite(derived_suite_spec(catalogue, **params))


def suite_json(spec: SuiteSpec) -> str:
    """The suite as GX JSON (``ExpectationSuite.to_json_dict``), sorted keys."""
    return json.dumps(build_gx_suite(spec).to_json_dict(), indent=2, sort_keys=True) + "\n"


def export_suites(directory: str | Path, specs: Sequence[SuiteSpec] | None = None) -> list[str]:
    """Write each suite as ``<directory>/<name>.json`` (GX JSON); local or ``s3://``."""
    from privacy_ray.runs import filesystem_for, join

    specs = list(specs) if specs is not None else [
        raw_suite_spec(), derived_suite_spec(default_catalogue())]
    fs, root = filesystem_for(str(directory))
    fs.create_dir(root, recursive=True)
    written = []
    for spec in specs:
        with fs.open_output_stream(join(root, f"{spec.name}.json")) as out:
            out.write(suite_json(spec).encode("utf-8"))
        written.append(join(str(directory), f"{spec.name}.json"))
    return written


class _Compiled:
    def __init__(self, batch_definition: Any, suite: Any, by_id: dict[str, ExpectationSpec]):
        self.batch_definition = batch_definition
        self.suite = suite
        self.by_id = by_id


_LOCK = threading.Lock()
_VALIDATE_LOCK = threading.Lock()
_CONTEXT: dict[str, Any] = {}
_COMPILED: dict[str, _Compiled] = {}


def _batch_definition() -> Any:
    """One ephemeral context per process, with a pandas data source for in-memory batches."""
    if "batch_definition" not in _CONTEXT:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False,
                                                             metric_calculations=False)
        source = context.data_sources.add_pandas("privacy_ray_batches")
        asset = source.add_dataframe_asset("batch")
        _CONTEXT["context"] = context
        _CONTEXT["batch_definition"] = asset.add_batch_definition_whole_dataframe("whole")
    return _CONTEXT["batch_definition"]


def _compiled(spec: SuiteSpec) -> _Compiled:
    key = spec.fingerprint
    with _LOCK:
        if key not in _COMPILED:
            bd = _batch_definition()
            suite = build_gx_suite(spec)
            by_id = {exp.id: e for exp, e in zip(suite.expectations, spec.expectations,
                                                  strict=True)}
            _COMPILED[key] = _Compiled(bd, suite, by_id)
        return _COMPILED[key]


# --------------------------------------------------------------------------- per batch


def embedding_helper_columns(values: pd.Series) -> dict[str, np.ndarray]:
    """Per-row dimension, non-finite count, norm and cosine to the batch centroid.

    Missing embeddings get NaN everywhere; a wrong dimension NaN for the vector statistics;
    vectors with a non-finite value NaN for norm and cosine.
    """
    n = len(values)
    out = {name: np.full(n, np.nan) for name in (EMB_DIM, EMB_NON_FINITE, EMB_NORM,
                                                 EMB_CENTROID_COS)}
    arr = values.to_numpy(dtype=object)
    lengths = np.fromiter(
        (len(v) if v is not None and hasattr(v, "__len__") and not isinstance(v, str) else -1
         for v in arr), dtype=np.int64, count=n)
    present = lengths >= 0
    out[EMB_DIM][present] = lengths[present]
    if not present.any():
        return out
    # The modal length is the batch's dimension; other lengths fail the dimension expectation.
    dim = np.bincount(lengths[present]).argmax()
    same = np.flatnonzero(lengths == dim)
    if dim == 0:
        return out
    mat = np.stack(arr[same]).astype(np.float64, copy=False)
    finite = np.isfinite(mat)
    non_finite = (~finite).sum(axis=1)
    out[EMB_NON_FINITE][same] = non_finite
    ok = non_finite == 0
    rows = same[ok]
    clean = mat[ok]
    norms = np.linalg.norm(clean, axis=1)
    out[EMB_NORM][rows] = norms
    unit = clean / np.maximum(norms, 1e-12)[:, None]
    if len(unit):
        centroid = unit.mean(axis=0)
        centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
        out[EMB_CENTROID_COS][rows] = unit @ centroid
    return out


def _raised(exception_info: Any) -> bool:
    if not isinstance(exception_info, Mapping):
        return False
    if "raised_exception" in exception_info:
        return bool(exception_info["raised_exception"])
    return any(isinstance(v, Mapping) and v.get("raised_exception")
               for v in exception_info.values())


def _sum_key(suite: str, key: str, metric: str) -> str:
    return f"{SUM_PREFIX}.{suite}.{key}.{metric}"


class GxBatchValidator:
    """Validates pandas batches against one suite; cheap to pickle, GX is loaded on first use.

    Build it on the driver (``GxBatchValidator.raw(cfg)``), hand it to a stage, call
    :meth:`validate` per batch and return the dict from ``Stage.batch_sums``.
    """

    def __init__(self, spec: SuiteSpec) -> None:
        self.spec = spec

    @classmethod
    def raw(cls, cfg: QualityConfig | None = None, max_text_chars: int = 20_000,
            now: pd.Timestamp | None = None) -> GxBatchValidator:
        from privacy_ray.quality import QualityConfig

        cfg = cfg or QualityConfig()
        return cls(raw_suite_spec(max_text_chars, cfg.min_text_chars, cfg.earliest_timestamp,
                                  cfg.max_future_days, now=now))

    @classmethod
    def derived(cls, feature_catalogue: Sequence[Any] | None = None,
                cfg: QualityConfig | None = None) -> GxBatchValidator:
        from privacy_ray.quality import QualityConfig

        cfg = cfg or QualityConfig()
        catalogue = default_catalogue() if feature_catalogue is None else feature_catalogue
        return cls(derived_suite_spec(
            catalogue, cfg.embedding_dim, (cfg.embedding_norm_min, cfg.embedding_norm_max),
            cfg.max_centroid_cosine, cfg.collapse_min_rows))

    @property
    def name(self) -> str:
        return self.spec.name

    def warm_up(self) -> None:
        """Import GX and compile the suite now (seconds, once per process), e.g. from
        ``Stage.setup`` so the first batch is not the slow one."""
        _compiled(self.spec)

    def frame(self, batch: pd.DataFrame) -> pd.DataFrame:
        """The columns the suite looks at, plus helper columns; absent optional ones all-null.

        Absent required columns stay absent, so the columns expectation and every expectation
        on them fail for the whole batch.
        """
        n = len(batch)
        cols: dict[str, Any] = {}
        wanted = list(dict.fromkeys([*self.spec.required, *self.spec.columns()]))
        for col in wanted:
            if col.startswith("_"):
                continue
            if col in batch.columns:
                cols[col] = batch[col].reset_index(drop=True)
            elif col not in self.spec.required:
                cols[col] = pd.Series([None] * n, dtype=object)
        if self.spec.parse_timestamp and "timestamp" in batch.columns:
            ts = batch["timestamp"].reset_index(drop=True)
            if isinstance(ts.dtype, pd.DatetimeTZDtype):
                cols[TIMESTAMP_HELPER] = ts.dt.tz_convert("UTC")
            else:
                cols[TIMESTAMP_HELPER] = pd.to_datetime(ts, utc=True, errors="coerce",
                                                        format="mixed")
        if self.spec.embedding_dim is not None:
            values = (batch[EMBEDDING_COLUMN] if EMBEDDING_COLUMN in batch.columns
                      else pd.Series([None] * n, dtype=object))
            cols.update(embedding_helper_columns(values))
        return pd.DataFrame(cols, index=pd.RangeIndex(n))

    def validate(self, batch: pd.DataFrame) -> dict[str, float]:
        """Validate one batch; flat sums that add up across batches (see :data:`METRICS`)."""
        n = len(batch)
        if not n:
            return {}
        started = time.perf_counter()
        frame = self.frame(batch)
        compiled = _compiled(self.spec)
        with _VALIDATE_LOCK:  # one context per process: threaded actors take turns
            gx_batch = compiled.batch_definition.get_batch(batch_parameters={"dataframe": frame})
            result = gx_batch.validate(compiled.suite, result_format=RESULT_FORMAT)
        name = self.spec.name
        sums: dict[str, float] = {f"{SUM_PREFIX}.{name}.rows": float(n),
                                  f"{SUM_PREFIX}.{name}.batches": 1.0}
        for res in result.results:
            spec = compiled.by_id[res.expectation_config.id]
            for metric, value in self._counts(spec, res, frame, n).items():
                sums[_sum_key(name, spec.key, metric)] = float(value)
        sums[f"{SUM_PREFIX}.{name}.seconds"] = time.perf_counter() - started
        return sums

    @staticmethod
    def _counts(spec: ExpectationSpec, res: Any, frame: pd.DataFrame, n: int) -> dict[str, float]:
        if spec.min_rows and spec.column in frame.columns and int(
                frame[spec.column].notna().sum()) < spec.min_rows:
            return {}
        result = res.result or {}
        success = bool(res.success)
        units = n if spec.level == ROW else 1
        if _raised(res.exception_info):
            return {"evaluated": units, "unexpected": units, "errors": 1, "failed_batches": 1}
        counts: dict[str, float] = {"failed_batches": 0 if success else 1}
        if spec.level == ROW and result.get("element_count") is not None:
            counts["evaluated"] = result["element_count"]
            counts["unexpected"] = result.get("unexpected_count") or 0
            counts["missing"] = result.get("missing_count") or 0
        else:  # column-type or aggregate result: the whole batch passes or fails
            counts["evaluated"] = units
            counts["unexpected"] = 0 if success else units
            observed = result.get("observed_value")
            if spec.level == BATCH and isinstance(observed, int | float) and np.isfinite(
                    observed):
                counts["observed"] = float(observed)
        return counts

    def summarize(self, sums: Mapping[str, float]) -> list[dict[str, Any]]:
        """Per-expectation totals and pass rates of this suite over the run."""
        return summarize(sums, [self.spec])


def summarize(sums: Mapping[str, float],
              specs: Sequence[SuiteSpec] | None = None) -> list[dict[str, Any]]:
    """Per-expectation results from summed batch results, in suite order.

    ``pass_rate`` is the share of evaluated non-null values (rows, or batches for batch-level
    expectations) that met the expectation: GX ignores nulls except in not-null expectations.
    ``null_share`` is the share of null values (feature coverage = 1 - null_share). Without
    ``specs`` the rows carry only what the keys say.
    """
    totals: dict[tuple[str, str], dict[str, float]] = {}
    for key, value in sums.items():
        parts = key.split(".")
        if len(parts) != 4 or parts[0] != SUM_PREFIX or parts[3] not in METRICS:
            continue
        totals.setdefault((parts[1], parts[2]), {})[parts[3]] = float(value)
    known = {(s.name, e.key): (s, e) for s in (specs or ()) for e in s.expectations}
    order = [k for k in known if k in totals] + sorted(k for k in totals if k not in known)
    rows = []
    for suite_name, key in order:
        t = totals[(suite_name, key)]
        evaluated, unexpected = t.get("evaluated", 0.0), t.get("unexpected", 0.0)
        missing = t.get("missing", 0.0)
        spec = known.get((suite_name, key), (None, None))[1]
        non_null = evaluated - missing
        row: dict[str, Any] = {
            "suite": suite_name,
            "key": key,
            "expectation_type": spec.type if spec else None,
            "column": spec.column if spec else None,
            "description": spec.description if spec else "",
            "level": spec.level if spec else ROW,
            "kwargs": {k: v for k, v in spec.kwargs.items() if k != "column"} if spec else {},
            "evaluated": int(evaluated),
            "unexpected": int(unexpected),
            "missing": int(missing),
            "errors": int(t.get("errors", 0)),
            "failed_batches": int(t.get("failed_batches", 0)),
            "pass_rate": round(1 - unexpected / non_null, 6) if non_null > 0 else None,
            "success": unexpected == 0 and t.get("errors", 0) == 0,
        }
        if spec is not None and spec.coverage:
            nulls = unexpected if spec.type == "expect_column_values_to_not_be_null" else missing
            row["null_share"] = round(nulls / evaluated, 6) if evaluated else None
        if "observed" in t and evaluated:
            row["observed_mean"] = round(t["observed"] / evaluated, 6)
        rows.append(row)
    return rows


def gx_seconds(sums: Mapping[str, float]) -> dict[str, float]:
    """Seconds spent inside GX per suite (summed over batches and workers)."""
    out = {}
    for key, value in sums.items():
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == SUM_PREFIX and parts[2] == "seconds":
            out[parts[1]] = round(float(value), 3)
    return out
