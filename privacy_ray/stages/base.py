"""Stages: domain logic over one pandas batch, free of Ray.

A stage declares the columns it needs and the columns it adds, so a pipeline can check the wiring
before anything runs. Stateless stages run as Ray tasks; stages with a :meth:`Stage.setup` (a
model, an index) run as actor pools. ``privacy_ray.engine`` is the only place that turns a stage
into ``map_batches``.

Row-level failures never drop a row: a stage sets ``quarantine_reason`` on it and later stages
see only the good rows (:func:`apply_stage`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

QUARANTINE_COLUMN = "quarantine_reason"
#: A quarantined row's values before the stage that rejected it, as JSON.
RECORD_COLUMN = "quarantine_record"
#: Separates several reason codes on one row, e.g. ``text_empty;timestamp_unparseable``.
REASON_SEPARATOR = ";"


@dataclass
class StageStats:
    """Counts and wall time of one stage over one or more batches."""

    rows_in: int = 0
    rows_out: int = 0
    quarantined: int = 0
    batches: int = 0
    #: Wall seconds inside the stage, summed over batches (and so over parallel workers).
    seconds: float = 0.0
    #: Stage-specific sums (e.g. embedding norms), combined by addition across batches.
    sums: dict[str, float] = field(default_factory=dict)
    #: Epoch seconds when the stage's first batch started and its last batch ended: with
    #: several workers in parallel, rows / span is the stage's throughput, rows / seconds the
    #: rate of one worker.
    first_started: float | None = None
    last_ended: float | None = None

    @property
    def span_seconds(self) -> float:
        if self.first_started is None or self.last_ended is None:
            return 0.0
        return max(0.0, self.last_ended - self.first_started)

    def add(self, other: StageStats) -> None:
        for key, value in other.sums.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.rows_in += other.rows_in
        self.rows_out += other.rows_out
        self.quarantined += other.quarantined
        self.batches += other.batches
        self.seconds += other.seconds
        if other.first_started is not None:
            self.first_started = min(self.first_started or other.first_started,
                                     other.first_started)
        if other.last_ended is not None:
            self.last_ended = max(self.last_ended or other.last_ended, other.last_ended)


class Stage:
    """Base class. Subclasses set ``name``, ``inputs``, ``outputs`` and implement ``process``.

    ``process`` receives only rows not yet quarantined and returns a frame with the same rows in
    the same order (it may set ``quarantine_reason`` on some of them).
    """

    name: ClassVar[str] = "stage"
    inputs: ClassVar[tuple[str, ...]] = ()
    outputs: ClassVar[tuple[str, ...]] = ()
    #: Output columns that are only known at run time (e.g. one per feature) are listed by
    #: overriding :meth:`output_columns`.
    stateful: ClassVar[bool] = False

    def output_columns(self) -> tuple[str, ...]:
        return self.outputs

    def batch_sums(self) -> dict[str, float]:
        """Stage-specific sums over the last processed batch, added up across batches."""
        return {}

    def setup(self) -> None:
        """Load heavy state (models, indexes). Called once per actor, never at pickling time."""

    def process(self, batch: pd.DataFrame) -> pd.DataFrame:  # pragma: no cover - interface
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def add_reason(batch: pd.DataFrame, mask: pd.Series, reason: str) -> None:
    """Append ``reason`` to ``quarantine_reason`` of the rows where ``mask`` is true, in place."""
    if not mask.any():
        return
    if QUARANTINE_COLUMN not in batch.columns:
        batch[QUARANTINE_COLUMN] = pd.Series([None] * len(batch), index=batch.index, dtype=object)
    current = batch.loc[mask, QUARANTINE_COLUMN]
    batch.loc[mask, QUARANTINE_COLUMN] = [
        reason if not isinstance(c, str) or not c else f"{c}{REASON_SEPARATOR}{reason}"
        for c in current
    ]


def quarantined_mask(batch: pd.DataFrame) -> pd.Series:
    if QUARANTINE_COLUMN not in batch.columns:
        return pd.Series(False, index=batch.index)
    col = batch[QUARANTINE_COLUMN]
    return col.notna() & (col.astype(str) != "")


def _jsonable(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _record_json(rows: pd.DataFrame) -> list[str]:
    """Each row's original values as JSON (kept for the quarantine and its auditors)."""
    cols = [c for c in rows.columns if c not in (QUARANTINE_COLUMN, RECORD_COLUMN)]
    return [json.dumps({c: _jsonable(v) for c, v in zip(cols, values, strict=True)})
            for values in rows[cols].itertuples(index=False, name=None)]


def _keep_raw(rows: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    """Set ``quarantine_record`` from ``raw`` where a quarantined row has none yet."""
    rows = rows.copy()
    if RECORD_COLUMN not in rows.columns:
        rows[RECORD_COLUMN] = pd.Series([None] * len(rows), index=rows.index, dtype=object)
    missing = rows[RECORD_COLUMN].isna().to_numpy()
    if missing.any():
        rows.loc[missing, RECORD_COLUMN] = _record_json(raw.loc[missing])
    return rows


def _one_type_per_column(df: pd.DataFrame) -> pd.DataFrame:
    """Make every column storable as one Arrow type after good and quarantined rows meet.

    Text columns become objects with None for missing values (mixed string dtypes leave NaN or
    pd.NA among strings). Vector columns (embeddings, probabilities) get zero vectors on the
    quarantined rows, which never reach the outputs: a tensor column cannot hold nulls.
    """
    for col in df.columns:
        dtype = df[col].dtype
        if not (pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)):
            continue
        values = df[col].astype(object)
        missing = values.isna().to_numpy()
        present = values[~missing]
        if len(present) and isinstance(present.iloc[0], np.ndarray):
            zero = np.zeros_like(present.iloc[0])
            df[col] = [zero if m else v for v, m in zip(values, missing, strict=True)]
        else:
            df[col] = values.where(~missing, None)
    return df


def apply_stage(stage: Stage, batch: pd.DataFrame) -> tuple[pd.DataFrame, StageStats]:
    """Run ``stage`` on the good rows of ``batch``; quarantined rows pass through.

    A row that a stage quarantines keeps its values as they were before that stage, as JSON in
    ``quarantine_record``; in the typed columns the stage produced, quarantined rows hold nulls,
    so every column keeps one type (Ray Data stores batches as Arrow).
    """
    started = time.perf_counter()
    started_at = time.time()
    batch = batch.reset_index(drop=True)
    if QUARANTINE_COLUMN not in batch.columns:
        batch[QUARANTINE_COLUMN] = pd.Series([None] * len(batch), dtype=object)
    bad = quarantined_mask(batch)
    good = batch.loc[~bad].reset_index(drop=True)
    processed = stage.process(good) if len(good) else good
    if len(processed) != len(good):
        msg = f"stage {stage.name} returned {len(processed)} rows for {len(good)}: rows were lost"
        raise RuntimeError(msg)
    processed = processed.reset_index(drop=True)
    newly_bad = quarantined_mask(processed) if len(processed) else pd.Series(dtype=bool)
    if newly_bad.any():
        flagged = newly_bad.to_numpy()
        kept = _keep_raw(processed.loc[flagged], good.loc[flagged])
        if RECORD_COLUMN not in processed.columns:
            processed[RECORD_COLUMN] = pd.Series([None] * len(processed), dtype=object)
        processed.loc[flagged, RECORD_COLUMN] = kept[RECORD_COLUMN].to_numpy()
    if bad.any():
        passed = _keep_raw(batch.loc[bad], batch.loc[bad]).reset_index(drop=True)
        for col in processed.columns:
            dtype = processed[col].dtype
            if (col in passed.columns and col not in (QUARANTINE_COLUMN, RECORD_COLUMN)
                    and not pd.api.types.is_object_dtype(dtype)
                    and not pd.api.types.is_string_dtype(dtype)):
                passed[col] = pd.Series([None] * len(passed), dtype=dtype)
        out = _one_type_per_column(pd.concat([processed, passed], ignore_index=True, sort=False))
    else:
        out = processed
    stats = StageStats(
        rows_in=len(batch),
        rows_out=len(out),
        quarantined=int(newly_bad.sum()),
        batches=1,
        seconds=time.perf_counter() - started,
        sums=stage.batch_sums() if len(good) else {},
        first_started=started_at,
        last_ended=time.time(),
    )
    return out, stats


def check_wiring(stages: Sequence[Stage], available: Sequence[str]) -> list[str]:
    """Problems in a stage list: a stage needing a column no earlier stage or the source adds."""
    have = set(available) | {QUARANTINE_COLUMN}
    problems = []
    for stage in stages:
        missing = [c for c in stage.inputs if c not in have]
        if missing:
            problems.append(
                f"stage '{stage.name}' needs column(s) {', '.join(missing)} that no earlier stage "
                "provides; reorder pipeline.stages"
            )
        have.update(stage.output_columns())
    return problems
