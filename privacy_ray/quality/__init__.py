"""Data quality: GX suites per batch, run-level gates, a 0-100 score, drift and the run report.

The row-level checks (reason codes, quarantine) live in :mod:`privacy_ray.stages.validate` and
:mod:`privacy_ray.stages.quality`; this package adds what needs a view over the whole run:

* :mod:`privacy_ray.quality.gx_suites` - Great Expectations suites defined in code, validated on
  every batch inside the Ray stages, results added up across batches;
* :mod:`privacy_ray.quality.score` - run-level checks (``on_fail: fail | warn``) and the score;
* :mod:`privacy_ray.quality.drift` - PSI of labels and key features against a reference run;
* :mod:`privacy_ray.quality.report` - ``quality_report.json`` and a self-contained HTML page.

This module stays import-light (pydantic only): the config imports it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

OnFail = Literal["fail", "warn"]

#: Run-level checks and what happens when each does not pass, unless configured otherwise.
DEFAULT_ON_FAIL: dict[str, OnFail] = {
    "quarantine_share": "fail",
    "feature_coverage": "fail",
    "expectation_pass_rate": "warn",
    "collapsed_batches": "fail",
    "label_drift": "warn",
    "feature_drift": "warn",
    "quality_score": "warn",
}

#: Features compared with the reference run when ``drift_features`` is left empty.
DEFAULT_DRIFT_FEATURES: tuple[str, ...] = (
    "f_char_count",
    "f_token_count",
    "f_kw_rights_verbs",
    "f_kw_data_nouns",
    "f_kw_regulation",
    "f_pii_total",
    "f_polarity",
)


class QualityConfig(BaseModel):
    """Thresholds of the validation layers and of the run-level gates (``Settings.quality``)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enabled: bool = Field(True, description="Run the GX suites and the run-level checks.")
    # ---- raw layer (GX suite; the row-level reason codes use pipeline.max_text_chars)
    min_text_chars: int = Field(1, ge=0, description="Shortest acceptable text, in characters.")
    earliest_timestamp: str = Field(
        "2000-01-01T00:00:00+00:00", description="Timestamps before this are implausible."
    )
    max_future_days: float = Field(
        1.0, ge=0, description="Timestamps more than this many days after now are implausible."
    )
    # ---- derived layer (GX suite)
    embedding_dim: int | None = Field(
        584, ge=1, description="Expected embedding dimension; empty: no embedding expectations."
    )
    embedding_norm_min: float = Field(0.5, ge=0, description="Smallest healthy embedding norm.")
    embedding_norm_max: float = Field(2.0, gt=0, description="Largest healthy embedding norm.")
    max_centroid_cosine: float = Field(
        0.98, gt=0, le=1,
        description="A batch whose mean cosine to its own centroid exceeds this has collapsed "
        "(every vector points the same way).",
    )
    collapse_min_rows: int = Field(
        16, ge=2, description="Batches with fewer embedded rows are not checked for collapse."
    )
    # ---- run-level gates
    max_quarantine_share: float = Field(
        0.05, ge=0, le=1, description="Largest acceptable share of quarantined input rows."
    )
    min_feature_coverage: float = Field(
        0.99, ge=0, le=1, description="Smallest acceptable share of non-null values per feature."
    )
    min_expectation_pass_rate: float = Field(
        0.95, ge=0, le=1, description="Smallest acceptable pass rate of any GX expectation."
    )
    max_collapsed_batches: int = Field(0, ge=0, description="Collapsed embedding batches allowed.")
    min_quality_score: float = Field(
        80.0, ge=0, le=100, description="Smallest acceptable data quality score (0-100)."
    )
    # ---- drift against a reference run
    reference_run: str | None = Field(
        None, description="Run folder to compare label and feature distributions with (PSI); "
        "empty: no drift checks."
    )
    drift_features: list[str] = Field(
        default_factory=lambda: list(DEFAULT_DRIFT_FEATURES),
        description="Key features compared with the reference run.",
    )
    psi_bins: int = Field(10, ge=2, le=100, description="Quantile bins of the feature PSI.")
    max_label_psi: float = Field(0.25, ge=0, description="Largest acceptable label PSI.")
    max_feature_psi: float = Field(0.25, ge=0, description="Largest acceptable feature PSI.")
    on_fail: dict[str, OnFail] = Field(
        default_factory=lambda: dict(DEFAULT_ON_FAIL),
        description="Per run-level check: fail (exit 3, outputs marked incomplete) or warn.",
    )
    # ---- report
    examples_per_reason: int = Field(
        3, ge=0, le=20, description="Redacted quarantine examples per reason in the report."
    )
    sample_rows: int = Field(
        5000, ge=100, description="Rows sampled for feature plots and as the drift reference."
    )

    @field_validator("on_fail")
    @classmethod
    def _known_checks(cls, value: dict[str, OnFail]) -> dict[str, OnFail]:
        unknown = sorted(set(value) - set(DEFAULT_ON_FAIL))
        if unknown:
            msg = (f"unknown check(s) {', '.join(unknown)} in quality.on_fail; known checks: "
                   f"{', '.join(DEFAULT_ON_FAIL)}")
            raise ValueError(msg)
        return {**DEFAULT_ON_FAIL, **value}


__all__ = ["DEFAULT_DRIFT_FEATURES", "DEFAULT_ON_FAIL", "OnFail", "QualityConfig"]
