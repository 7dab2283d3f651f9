"""Request and response bodies of the HTTP API (they also make the OpenAPI page at /docs).

Static limits here are hard ceilings; the configured ones (``max_k``, ``max_text_chars``,
``max_texts_per_request``) are checked by :func:`check_limits`, which raises the same kind of
422 error as the schema does.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from privacy_ray.config import CHANNELS, LABELS

#: The same values as privacy_ray.config.CHANNELS / LABELS (one source of truth).
Channel = Literal[CHANNELS]  # type: ignore[valid-type]
Intent = Literal[LABELS]  # type: ignore[valid-type]

#: Ceilings independent of the configuration (the configured limits are at most these).
HARD_MAX_K = 1000
HARD_MAX_DIM = 4096


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchFilters(_Body):
    """Metadata filters; bounds are inclusive, a bare date as ``date_to`` covers that day."""

    date_from: dt.date | dt.datetime | None = Field(None, description="Earliest date (UTC).")
    date_to: dt.date | dt.datetime | None = Field(None, description="Latest date (UTC).")
    channels: list[Channel] | None = Field(None, max_length=len(CHANNELS))
    intents: list[Intent] | None = Field(None, max_length=len(LABELS))

    @model_validator(mode="after")
    def _order(self) -> SearchFilters:
        if self.date_from is not None and self.date_to is not None:
            a, b = _as_dt(self.date_from), _as_dt(self.date_to)
            if a > b:
                msg = "date_from is after date_to"
                raise ValueError(msg)
        return self

    def to_store(self) -> dict[str, Any] | None:
        """Plain arguments of :meth:`privacy_ray.store.SearchFilter.of` (None when empty)."""
        out: dict[str, Any] = {}
        if self.date_from is not None:
            out["date_from"] = self.date_from.isoformat()
        if self.date_to is not None:
            out["date_to"] = self.date_to.isoformat()
        if self.channels:
            out["channels"] = sorted(set(self.channels))
        if self.intents:
            out["intents"] = sorted(set(self.intents))
        return out or None


def _as_dt(value: dt.date | dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.combine(value, dt.time(), tzinfo=dt.UTC)


class SearchRequest(_Body):
    """Give ``text`` (embedded with the store's model after PII redaction) or ``vector``."""

    text: str | None = Field(None, min_length=1, description="Query text.")
    vector: list[float] | None = Field(
        None, min_length=1, max_length=HARD_MAX_DIM, description="Query vector (store dim)."
    )
    k: int = Field(10, ge=1, le=HARD_MAX_K, description="Hits to return.")
    filters: SearchFilters | None = None

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [
            {"text": "please delete my account and all my data", "k": 5,
             "filters": {"channels": ["email"], "date_from": "2026-01-01"}}]},
    )

    @model_validator(mode="after")
    def _one_query(self) -> SearchRequest:
        if (self.text is None) == (self.vector is None):
            msg = "give exactly one of text or vector"
            raise ValueError(msg)
        if self.text is not None and not self.text.strip():
            msg = "text is blank"
            raise ValueError(msg)
        return self

    @field_validator("vector")
    @classmethod
    def _finite(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and not all(math.isfinite(x) for x in v):
            msg = "vector holds NaN or infinite values"
            raise ValueError(msg)
        return v


class Hit(BaseModel):
    conversation_id: str
    score: float = Field(description="Cosine similarity (inner product of unit vectors).")
    date: str = Field(description="Conversation date, ISO 8601 UTC.")
    channel: str | None
    intent: str | None
    confidence: float | None = Field(description="Confidence of the stored intent.")
    snippet: str | None = Field(description="Redacted start of the conversation.")


class SearchResponse(BaseModel):
    store_version: int
    k: int
    took_ms: float
    hits: list[Hit]


class ClassifyRequest(_Body):
    """Give ``text`` or ``texts``."""

    text: str | None = Field(None, min_length=1)
    texts: list[str] | None = Field(None, min_length=1, max_length=1024)
    received_at: dt.datetime | None = Field(
        None, description="When the message(s) arrived; the legal deadline counts from it "
        "(default: now).")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"text": "Under GDPR Art. 15 I want a copy of my data."}]},
    )

    @model_validator(mode="after")
    def _one(self) -> ClassifyRequest:
        if (self.text is None) == (self.texts is None):
            msg = "give exactly one of text or texts"
            raise ValueError(msg)
        if any(not t.strip() for t in self.all_texts()):
            msg = "texts must not be blank"
            raise ValueError(msg)
        return self

    def all_texts(self) -> list[str]:
        return [self.text] if self.text is not None else list(self.texts or [])


class Prediction(BaseModel):
    label: str
    confidence: float
    probabilities: dict[str, float]
    abstain: bool = Field(description="Top probability below the threshold: route to a human.")
    regulation: str | None = Field(description="GDPR, CCPA or unknown (requests only).")
    due_by: str | None = Field(description="Statutory response deadline (requests only).")


class ClassifyResponse(BaseModel):
    model: dict[str, Any]
    predictions: list[Prediction]


class ErrorBody(BaseModel):
    error: str
    message: str
    detail: list[dict[str, Any]] | None = None


def limit_error(loc: list[str | int], msg: str, kind: str) -> dict[str, Any]:
    """One entry of a 422 ``detail`` list, shaped like pydantic's."""
    return {"loc": loc, "msg": msg, "type": kind}


def check_search_limits(req: SearchRequest, *, max_k: int, max_text_chars: int,
                        dim: int | None) -> list[dict[str, Any]]:
    """Problems with a search request under the configured limits (empty: fine)."""
    errors = []
    if req.k > max_k:
        errors.append(limit_error(["body", "k"], f"k must be at most {max_k}", "less_than_equal"))
    if req.text is not None and len(req.text) > max_text_chars:
        errors.append(limit_error(["body", "text"], f"text is longer than {max_text_chars} "
                                  f"characters", "string_too_long"))
    if req.vector is not None and dim is not None and len(req.vector) != dim:
        errors.append(limit_error(["body", "vector"], f"vector has {len(req.vector)} values; "
                                  f"the store holds {dim}-d vectors", "vector_dimension"))
    return errors


def check_classify_limits(req: ClassifyRequest, *, max_text_chars: int,
                          max_texts: int) -> list[dict[str, Any]]:
    errors = []
    texts = req.all_texts()
    if len(texts) > max_texts:
        errors.append(limit_error(["body", "texts"], f"at most {max_texts} texts per request",
                                  "too_long"))
    field = "text" if req.text is not None else "texts"
    for i, t in enumerate(texts):
        if len(t) > max_text_chars:
            loc: list[str | int] = ["body", field] if field == "text" else ["body", field, i]
            errors.append(limit_error(loc, f"text is longer than {max_text_chars} characters",
                                      "string_too_long"))
    return errors
