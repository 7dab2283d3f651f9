"""Row-level validation of raw messages: every bad row is kept, with reason codes.

The checks are vectorised pandas over one batch. Reason codes are stable strings documented in
``RAW_REASONS``; a row may carry several, separated by ``;``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pandas as pd

from privacy_ray.config import CHANNELS, LABELS
from privacy_ray.stages.base import QUARANTINE_COLUMN, Stage, add_reason

RAW_REASONS = {
    "message_id_null": "message_id is missing",
    "text_null": "text is missing",
    "text_not_string": "text is not a string (a number, a list, ...)",
    "text_invalid_utf8": "text bytes are not valid UTF-8",
    "text_empty": "text is empty or whitespace only",
    "text_too_long": "text is longer than pipeline.max_text_chars",
    "timestamp_unparseable": "timestamp cannot be parsed as a date-time",
    "timestamp_future": "timestamp lies more than a day in the future",
    "timestamp_too_old": "timestamp lies before the plausible range",
    "channel_unknown": "channel is not one of chat, email, ticket, social",
    "label_unknown": "label is not in the taxonomy",
    "duplicate_message_id": "message_id already seen in this run",
    "json_malformed": "the input line is not valid JSON",
    "json_not_object": "the input line is JSON but not an object",
    "invalid_utf8": "the input line is not valid UTF-8",
}
EARLIEST_TIMESTAMP = pd.Timestamp("2000-01-01", tz="UTC")


def _as_text(value: object) -> object:
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value


def _str_or_none(values: pd.Series) -> pd.Series:
    """Strings, with None for missing values: one Arrow type per column (never NaN floats)."""
    return pd.Series([None if pd.isna(v) else str(v) for v in values], index=values.index,
                     dtype=object)


def validate_raw_batch(
    batch: pd.DataFrame, max_text_chars: int, now: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Type the record columns and set reason codes on rows that fail a raw check."""
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    batch = batch.copy()
    if QUARANTINE_COLUMN not in batch.columns:
        batch[QUARANTINE_COLUMN] = pd.Series([None] * len(batch), index=batch.index, dtype=object)
    ids = batch["message_id"]
    add_reason(batch, ids.isna(), "message_id_null")
    batch["message_id"] = _str_or_none(ids)

    text = batch["text"].map(_as_text)
    is_null = text.isna()
    is_bytes = text.map(lambda v: isinstance(v, bytes | bytearray))
    is_str = text.map(lambda v: isinstance(v, str))
    add_reason(batch, is_null, "text_null")
    add_reason(batch, is_bytes, "text_invalid_utf8")
    add_reason(batch, ~is_null & ~is_bytes & ~is_str, "text_not_string")
    as_str = text.where(is_str, "")
    add_reason(batch, is_str & (as_str.str.strip() == ""), "text_empty")
    add_reason(batch, is_str & (as_str.str.len() > max_text_chars), "text_too_long")
    batch["text"] = text.where(is_str, text.map(lambda v: None if v is None else repr(v)[:200]))

    raw_ts = batch["timestamp"]
    parsed = pd.to_datetime(raw_ts, utc=True, errors="coerce", format="mixed")
    has_ts = raw_ts.notna()
    add_reason(batch, has_ts & parsed.isna(), "timestamp_unparseable")
    add_reason(batch, parsed > now + pd.Timedelta(days=1), "timestamp_future")
    add_reason(batch, parsed < EARLIEST_TIMESTAMP, "timestamp_too_old")
    batch["timestamp"] = parsed

    channel = batch["channel"]
    add_reason(batch, channel.notna() & ~channel.isin(CHANNELS), "channel_unknown")
    label = batch["label"]
    add_reason(batch, label.notna() & ~label.isin(LABELS), "label_unknown")

    dup = batch["message_id"].notna() & batch["message_id"].duplicated(keep="first")
    add_reason(batch, dup, "duplicate_message_id")
    for col in ("conversation_id", "user_id", "channel", "label"):
        batch[col] = _str_or_none(batch[col])
    return batch


class ValidateRaw(Stage):
    """Required columns, types, text bounds, timestamps, channels, labels, duplicate ids.

    Rows failing a check are quarantined with reason codes; the batch is also validated
    against the raw Great Expectations suite (``gx``), whose results add up over batches.
    """

    name = "validate_raw"
    inputs = ("message_id", "text", "timestamp", "channel", "label")
    outputs = ()
    stateful: ClassVar[bool] = False

    def __init__(self, max_text_chars: int, gx: Any = None) -> None:
        self.max_text_chars = max_text_chars
        self.gx = gx
        self._sums: dict[str, float] = {}

    def process(self, batch: pd.DataFrame) -> pd.DataFrame:
        self._sums = self.gx.validate(batch) if self.gx is not None else {}
        return validate_raw_batch(batch, self.max_text_chars)

    def batch_sums(self) -> dict[str, float]:
        return self._sums
