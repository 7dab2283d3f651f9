"""Run-level quality: the 0-100 score, the gates with ``on_fail: fail | warn``, and
:func:`assess_run`, which puts suites, drift, score, checks and report together at the end of a
run.

Score (see :data:`SCORE_FORMULA`)::

    score = 100 * (0.5 * V + 0.3 * E + 0.2 * C)

* ``V`` row validity: 1 - quarantined / input rows (1 for an empty run);
* ``E`` expectation health: the mean pass rate of the GX expectations that evaluated at least
  one non-null value (each expectation weighs the same, whatever its row count);
* ``C`` feature coverage: the mean share of non-null values over the features (1 without any).

Drift is not part of the score (a shift is not a defect of the data); it has its own checks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from privacy_ray.errors import PrivacyRayError, QualityGateError

if TYPE_CHECKING:  # pragma: no cover
    from privacy_ray.quality import QualityConfig
    from privacy_ray.quality.gx_suites import SuiteSpec
    from privacy_ray.runs import RunFolder

WEIGHTS = {"row_validity": 0.5, "expectation_health": 0.3, "feature_coverage": 0.2}
SCORE_FORMULA = (
    "score = 100 * (0.5 * V + 0.3 * E + 0.2 * C); V = 1 - quarantined / input rows; "
    "E = mean pass rate of the GX expectations that evaluated a value; "
    "C = mean share of non-null values per feature"
)
COLLAPSE_KEY = "embedding_not_collapsed"


@dataclass(frozen=True)
class CheckResult:
    """One run-level check. ``skipped`` checks had nothing to measure and count as passed."""

    name: str
    passed: bool
    value: float | None
    threshold: float | None
    on_fail: str
    message: str
    skipped: bool = False

    @property
    def status(self) -> str:
        """``pass``, ``skipped``, ``warn`` (failed, on_fail warn) or ``fail``."""
        if self.skipped:
            return "skipped"
        if self.passed:
            return "pass"
        return "fail" if self.on_fail == "fail" else "warn"

    @property
    def blocking(self) -> bool:
        return self.status == "fail"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}


def _count(counts: Mapping[str, Any], *names: str) -> float:
    for name in names:
        if counts.get(name) is not None:
            return float(counts[name])
    return 0.0


def feature_coverage(expectations: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Share of non-null values per feature, from the coverage expectations' null shares."""
    return {str(e["column"]): round(1.0 - float(e["null_share"]), 6)
            for e in expectations if e.get("null_share") is not None and e.get("column")}


def score_components(counts: Mapping[str, Any], expectations: Sequence[Mapping[str, Any]],
                     coverage: Mapping[str, float]) -> dict[str, float]:
    """V, E and C of the score formula, each in [0, 1]."""
    rows_in = _count(counts, "records_in", "rows_in")
    quarantined = _count(counts, "records_quarantined", "rows_quarantined")
    validity = 1.0 - min(quarantined / rows_in, 1.0) if rows_in > 0 else 1.0
    rates = [float(e["pass_rate"]) for e in expectations if e.get("pass_rate") is not None]
    health = sum(rates) / len(rates) if rates else 1.0
    cover = sum(coverage.values()) / len(coverage) if coverage else 1.0
    return {"row_validity": validity, "expectation_health": health, "feature_coverage": cover}


def quality_score(counts: Mapping[str, Any], expectations: Sequence[Mapping[str, Any]],
                  coverage: Mapping[str, float]) -> float:
    """The run's data quality score, 0-100, one decimal (formula: :data:`SCORE_FORMULA`)."""
    parts = score_components(counts, expectations, coverage)
    return round(100.0 * sum(WEIGHTS[k] * v for k, v in parts.items()), 1)


# --------------------------------------------------------------------------- checks


def _check(name: str, cfg: QualityConfig, value: float | None, threshold: float,
           passed: bool, message: str) -> CheckResult:
    return CheckResult(name, passed, None if value is None else round(float(value), 6),
                       threshold, cfg.on_fail[name], message)


def _skip(name: str, cfg: QualityConfig, threshold: float | None, why: str) -> CheckResult:
    return CheckResult(name, True, None, threshold, cfg.on_fail[name], why, skipped=True)


def run_level_checks(summary: Mapping[str, Any], cfg: QualityConfig) -> list[CheckResult]:
    """The run-level checks, each following ``cfg.on_fail[name]``.

    ``summary`` holds ``records_in`` and ``records_quarantined`` (the run summary), and, when
    known, ``expectations`` (:func:`privacy_ray.quality.gx_suites.summarize`),
    ``feature_coverage`` (feature -> non-null share), ``drift``
    (:func:`privacy_ray.quality.drift.drift_report`, or ``{"error": ...}``) and
    ``quality_score``.
    """
    checks = []
    rows_in = _count(summary, "records_in", "rows_in")
    quarantined = _count(summary, "records_quarantined", "rows_quarantined")
    share = quarantined / rows_in if rows_in else 0.0
    limit = cfg.max_quarantine_share
    checks.append(_check(
        "quarantine_share", cfg, share, limit, share <= limit,
        f"quarantine share {share:.2%} ({int(quarantined)} of {int(rows_in)} rows) "
        f"{'<=' if share <= limit else '>'} {limit:.2%}"))

    coverage = summary.get("feature_coverage") or {}
    if coverage:
        worst = min(coverage, key=lambda k: coverage[k])
        low = coverage[worst]
        ok = low >= cfg.min_feature_coverage
        checks.append(_check(
            "feature_coverage", cfg, low, cfg.min_feature_coverage, ok,
            f"lowest feature coverage {low:.2%} ({worst}) {'>=' if ok else '<'} "
            f"{cfg.min_feature_coverage:.2%}"))
    else:
        checks.append(_skip("feature_coverage", cfg, cfg.min_feature_coverage,
                            "no feature coverage measured (no derived suite)"))

    expectations = list(summary.get("expectations") or [])
    rated = [e for e in expectations if e.get("pass_rate") is not None]
    if rated:
        worst_e = min(rated, key=lambda e: e["pass_rate"])
        rate = float(worst_e["pass_rate"])
        ok = rate >= cfg.min_expectation_pass_rate
        checks.append(_check(
            "expectation_pass_rate", cfg, rate, cfg.min_expectation_pass_rate, ok,
            f"lowest expectation pass rate {rate:.2%} ({worst_e['suite']}.{worst_e['key']}) "
            f"{'>=' if ok else '<'} {cfg.min_expectation_pass_rate:.2%}"))
    else:
        checks.append(_skip("expectation_pass_rate", cfg, cfg.min_expectation_pass_rate,
                            "no GX expectation was evaluated"))

    collapse = [e for e in expectations if e.get("key") == COLLAPSE_KEY]
    if collapse and collapse[0]["evaluated"]:
        n = collapse[0]["unexpected"]
        ok = n <= cfg.max_collapsed_batches
        checks.append(_check(
            "collapsed_batches", cfg, n, cfg.max_collapsed_batches, ok,
            f"{n} of {collapse[0]['evaluated']} embedding batches collapsed "
            f"(limit {cfg.max_collapsed_batches})"))
    else:
        checks.append(_skip("collapsed_batches", cfg, cfg.max_collapsed_batches,
                            "no embedding batch large enough to check for collapse"))

    checks += _drift_checks(summary.get("drift"), cfg)

    score = summary.get("quality_score")
    if score is not None:
        ok = float(score) >= cfg.min_quality_score
        checks.append(_check(
            "quality_score", cfg, score, cfg.min_quality_score, ok,
            f"quality score {float(score):.1f} {'>=' if ok else '<'} {cfg.min_quality_score:g}"))
    else:
        checks.append(_skip("quality_score", cfg, cfg.min_quality_score, "no score computed"))
    return checks


def _drift_checks(drift: Mapping[str, Any] | None, cfg: QualityConfig) -> list[CheckResult]:
    if not drift:
        why = "no reference run configured (quality.reference_run)"
        return [_skip("label_drift", cfg, cfg.max_label_psi, why),
                _skip("feature_drift", cfg, cfg.max_feature_psi, why)]
    if drift.get("error"):
        why = f"reference run unusable: {drift['error']}"
        return [_check("label_drift", cfg, None, cfg.max_label_psi, False, why),
                _check("feature_drift", cfg, None, cfg.max_feature_psi, False, why)]
    out = []
    label = drift.get("label_psi")
    if label is None or (isinstance(label, float) and math.isnan(label)):
        out.append(_skip("label_drift", cfg, cfg.max_label_psi, "no labels to compare"))
    else:
        ok = label <= cfg.max_label_psi
        out.append(_check("label_drift", cfg, label, cfg.max_label_psi, ok,
                          f"label PSI {label:.3f} {'<=' if ok else '>'} {cfg.max_label_psi:g}"))
    feats = drift.get("feature_psi") or {}
    if feats:
        worst = max(feats, key=lambda k: feats[k])
        value = feats[worst]
        ok = value <= cfg.max_feature_psi
        out.append(_check("feature_drift", cfg, value, cfg.max_feature_psi, ok,
                          f"largest feature PSI {value:.3f} ({worst}) "
                          f"{'<=' if ok else '>'} {cfg.max_feature_psi:g}"))
    else:
        out.append(_skip("feature_drift", cfg, cfg.max_feature_psi, "no feature to compare"))
    return out


def gate_error(checks: Sequence[CheckResult], run_id: str,
               run_dir: str) -> QualityGateError | None:
    """The one-line error of a run whose blocking checks failed (exit code 3), or None."""
    failed = [c for c in checks if c.blocking]
    if not failed:
        return None
    more = f" (+{len(failed) - 1} more failed check(s))" if len(failed) > 1 else ""
    first = failed[0]
    msg = (f"run {run_id} failed the quality gate: {first.name}: {first.message}{more}; "
           f"outputs in {run_dir} are marked incomplete (see quality_report.html; set "
           f"quality.on_fail.{first.name}: warn to accept)")
    return QualityGateError(msg)


# --------------------------------------------------------------------------- one call


@dataclass
class QualityAssessment:
    """Everything the run-level quality step produced."""

    score: float
    components: dict[str, float]
    expectations: list[dict[str, Any]]
    coverage: dict[str, float]
    drift: dict[str, Any] | None
    checks: list[CheckResult]
    report_json: str | None = None
    report_html: str | None = None
    gx_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def gate(self) -> str:
        """``failed`` (a blocking check failed), ``warned`` or ``passed``."""
        if any(c.blocking for c in self.checks):
            return "failed"
        return "warned" if any(c.status == "warn" for c in self.checks) else "passed"

    def summary(self) -> dict[str, Any]:
        """The compact part that belongs in summary.json (and the CLI's --json)."""
        return {
            "quality_score": self.score,
            "quality": {
                "score": self.score,
                "formula": SCORE_FORMULA,
                "components": {k: round(v, 6) for k, v in self.components.items()},
                "gate": self.gate,
                "failed": [c.name for c in self.checks if c.status == "fail"],
                "warnings": [c.name for c in self.checks if c.status == "warn"],
                "checks": [c.to_dict() for c in self.checks],
                "gx_seconds": self.gx_seconds,
                "report_json": self.report_json,
                "report_html": self.report_html,
            },
        }

    def error(self, run_id: str, run_dir: str) -> QualityGateError | None:
        return gate_error(self.checks, run_id, run_dir)


def assess_run(
    run_summary: Mapping[str, Any],
    sums: Mapping[str, float],
    specs: Sequence[SuiteSpec],
    cfg: QualityConfig,
    run_folder: RunFolder | None = None,
    *,
    feature_names: Sequence[str] | None = None,
    feature_samples: Mapping[str, Sequence[float]] | None = None,
    quarantine_examples: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> QualityAssessment:
    """Summaries, drift, score and checks of a finished run; writes the report when
    ``run_folder`` is given.

    ``run_summary`` is ``RunResult.to_summary()``; ``sums`` the GX sums of the validate stages
    added together; ``specs`` the suites that produced them (``validator.spec``). Feature
    samples and quarantine examples are read from the run folder unless given.
    """
    from privacy_ray.quality import drift as drift_mod
    from privacy_ray.quality.gx_suites import gx_seconds, summarize

    expectations = summarize(sums, specs)
    coverage = feature_coverage(expectations)
    names = list(feature_names) if feature_names is not None else sorted(coverage)
    if feature_samples is None and run_folder is not None:
        feature_samples = drift_mod.load_feature_samples(run_folder.uri, names, cfg.sample_rows)
    samples = {k: list(v) for k, v in (feature_samples or {}).items()}
    drift = None
    if cfg.reference_run:
        try:
            ref_labels, ref_samples = drift_mod.load_reference(
                cfg.reference_run, cfg.drift_features, cfg.sample_rows)
            drift = drift_mod.drift_report(
                run_summary.get("labels") or {}, samples, ref_labels, ref_samples,
                cfg.drift_features, cfg.psi_bins, reference=cfg.reference_run)
        except (PrivacyRayError, OSError, ValueError) as e:
            drift = {"reference": cfg.reference_run, "error": str(e)}
    components = score_components(run_summary, expectations, coverage)
    score = quality_score(run_summary, expectations, coverage)
    facts = {**run_summary, "expectations": expectations, "feature_coverage": coverage,
             "drift": drift, "quality_score": score}
    checks = run_level_checks(facts, cfg)
    assessment = QualityAssessment(score, components, expectations, coverage, drift, checks,
                                   gx_seconds=gx_seconds(sums))
    if run_folder is not None:
        from privacy_ray.quality.report import quarantine_examples_from_run, write_report

        if quarantine_examples is None:
            quarantine_examples = quarantine_examples_from_run(run_folder.uri,
                                                               cfg.examples_per_reason)
        report_summary = {**run_summary, **assessment.summary(), "feature_coverage": coverage,
                          "drift": drift}
        assessment.report_json, assessment.report_html = write_report(
            run_folder, report_summary, expectations, checks, quarantine_examples, samples,
            keep_samples=cfg.drift_features)
    return assessment
