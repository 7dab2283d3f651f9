"""Data quality: GX suites per layer, sums across batches, score, run-level gates, drift,
the report (JSON + HTML) and ``privacy-ray report``. Tiny hand-made batches, no Ray."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from privacy_ray.errors import InputError, QualityGateError
from privacy_ray.quality import DEFAULT_ON_FAIL, QualityConfig
from privacy_ray.quality.drift import (
    categorical_psi,
    drift_report,
    label_psi,
    load_feature_samples,
    load_reference,
    psi,
)
from privacy_ray.quality.gx_suites import (
    GxBatchValidator,
    derived_suite_spec,
    export_suites,
    raw_suite_spec,
    summarize,
)
from privacy_ray.quality.report import (
    REPORT_HTML,
    REPORT_JSON,
    build_report,
    quarantine_examples_from_run,
    render_html,
    write_report,
)
from privacy_ray.quality.score import (
    CheckResult,
    assess_run,
    gate_error,
    quality_score,
    run_level_checks,
)
from privacy_ray.runs import RunFolder
from privacy_ray.stages.base import StageStats

NOW = pd.Timestamp("2026-03-01", tz="UTC")
CATALOGUE = [
    {"name": "f_count", "min": 0, "max": None},
    {"name": "f_ratio", "min": 0.0, "max": 1.0},
    {"name": "f_polarity", "min": -1.0, "max": 1.0},
]
DIM = 8


@pytest.fixture(scope="module")
def raw_validator() -> GxBatchValidator:
    return GxBatchValidator.raw(QualityConfig(), max_text_chars=100, now=NOW)


@pytest.fixture(scope="module")
def derived_validator() -> GxBatchValidator:
    cfg = QualityConfig(embedding_dim=DIM, collapse_min_rows=4)
    return GxBatchValidator.derived(CATALOGUE, cfg)


def raw_batch() -> pd.DataFrame:
    return pd.DataFrame({
        "message_id": ["m1", "m2", "m3", "m4"],
        "conversation_id": ["c1", "c1", "c2", "c3"],
        "user_id": ["u1", "u1", "u2", "u3"],
        "channel": ["chat", "email", "ticket", "social"],
        "timestamp": ["2026-01-05T10:00:00Z", "2026-01-06T11:00:00+01:00", "2026-02-01 08:00",
                      "2026-02-20T00:00:00Z"],
        "text": ["Please delete my account", "What data do you hold?", "Order 123 is late",
                 "Unsubscribe me"],
        "label": ["deletion_request", None, "none", "opt_out"],
    })


def unit_vectors(n: int, seed: int = 0) -> list[np.ndarray]:
    v = np.random.default_rng(seed).normal(size=(n, DIM))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return list(v.astype(np.float32))


def derived_batch(n: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({
        "f_count": rng.integers(0, 50, n).astype(np.int64),
        "f_ratio": rng.random(n),
        "f_polarity": rng.uniform(-1, 1, n),
        "embedding": unit_vectors(n),
    })


def failing(validator: GxBatchValidator, sums: dict[str, float]) -> dict[str, int]:
    return {r["key"]: r["unexpected"] for r in validator.summarize(sums)
            if r["unexpected"] or r["errors"]}


# --------------------------------------------------------------------------- raw layer


def test_raw_suite_passes_a_clean_batch(raw_validator):
    rows = raw_validator.summarize(raw_validator.validate(raw_batch()))
    assert {r["key"] for r in rows} == {e.key for e in raw_validator.spec.expectations}
    assert all(r["success"] and r["unexpected"] == 0 for r in rows)
    by_key = {r["key"]: r for r in rows}
    assert by_key["text_length"]["evaluated"] == 4
    assert by_key["required_columns"]["evaluated"] == 1  # batch-level: counts batches
    assert by_key["label_in_taxonomy"]["missing"] == 1  # absent labels are allowed


@pytest.mark.parametrize(("column", "value", "expected"), [
    ("message_id", None, {"message_id_not_null": 1}),
    ("message_id", "m2", {"message_id_unique": 2}),
    ("conversation_id", None, {"conversation_id_not_null": 1}),
    ("user_id", None, {"user_id_not_null": 1}),
    ("text", None, {"text_not_null": 1}),
    ("text", b"raw bytes", {"text_is_string": 1}),
    ("text", 5, {"text_is_string": 1}),
    ("text", "   ", {"text_not_blank": 1}),
    ("text", "", {"text_length": 1, "text_not_blank": 1}),
    ("text", "x" * 101, {"text_length": 1}),
    ("channel", "fax", {"channel_known": 1}),
    ("timestamp", "not a date", {"timestamp_parseable": 1}),
    ("timestamp", "1990-01-01T00:00:00Z", {"timestamp_in_range": 1}),
    ("timestamp", "2030-01-01T00:00:00Z", {"timestamp_in_range": 1}),
    ("label", "bogus", {"label_in_taxonomy": 1}),
])
def test_raw_suite_flags_each_problem(raw_validator, column, value, expected):
    batch = raw_batch()
    batch[column] = batch[column].astype(object)
    batch.at[0, column] = value
    assert failing(raw_validator, raw_validator.validate(batch)) == expected


def test_raw_suite_accepts_typed_batches(raw_validator):
    batch = raw_batch()
    batch["timestamp"] = pd.to_datetime(batch["timestamp"], utc=True, format="mixed")
    assert failing(raw_validator, raw_validator.validate(batch)) == {}


def test_missing_required_column_fails_the_whole_batch(raw_validator):
    sums = raw_validator.validate(raw_batch().drop(columns=["channel"]))
    rows = {r["key"]: r for r in raw_validator.summarize(sums)}
    assert rows["required_columns"]["unexpected"] == 1
    assert rows["channel_known"]["errors"] == 1
    assert rows["channel_known"]["unexpected"] == 4
    assert rows["channel_known"]["pass_rate"] == 0.0


def test_absent_optional_label_is_not_a_failure(raw_validator):
    sums = raw_validator.validate(raw_batch().drop(columns=["label"]))
    rows = {r["key"]: r for r in raw_validator.summarize(sums)}
    assert rows["label_in_taxonomy"]["unexpected"] == 0
    assert rows["label_in_taxonomy"]["pass_rate"] is None  # nothing to evaluate
    assert rows["required_columns"]["unexpected"] == 0


def test_sums_add_up_across_batches_like_stage_stats(raw_validator):
    bad = raw_batch()
    bad.at[1, "channel"] = "fax"
    total = StageStats(sums=raw_validator.validate(raw_batch()))
    total.add(StageStats(sums=raw_validator.validate(bad)))
    total.add(StageStats(sums=raw_validator.validate(bad.iloc[:0])))  # empty batch adds nothing
    rows = {r["key"]: r for r in raw_validator.summarize(total.sums)}
    assert total.sums["gx.raw.rows"] == 8
    assert total.sums["gx.raw.batches"] == 2
    assert rows["channel_known"]["evaluated"] == 8
    assert rows["channel_known"]["unexpected"] == 1
    assert rows["channel_known"]["failed_batches"] == 1
    assert rows["channel_known"]["pass_rate"] == pytest.approx(7 / 8)
    assert rows["required_columns"]["evaluated"] == 2
    assert total.sums["gx.raw.seconds"] > 0


def test_validator_pickles_for_ray_workers(raw_validator):
    import pickle

    raw_validator.warm_up()
    clone = pickle.loads(pickle.dumps(raw_validator))
    batch = raw_batch()
    assert clone.spec == raw_validator.spec
    assert failing(clone, clone.validate(batch)) == failing(raw_validator,
                                                            raw_validator.validate(batch))


def test_summarize_without_specs_reads_the_keys():
    sums = {"gx.raw.text_length.evaluated": 10, "gx.raw.text_length.unexpected": 2,
            "gx.raw.rows": 10, "other.key": 1}
    (row,) = summarize(sums)
    assert (row["suite"], row["key"], row["pass_rate"], row["success"]) == (
        "raw", "text_length", 0.8, False)


# --------------------------------------------------------------------------- derived layer


def test_derived_suite_passes_a_clean_batch(derived_validator):
    sums = derived_validator.validate(derived_batch())
    assert failing(derived_validator, sums) == {}
    rows = {r["key"]: r for r in derived_validator.summarize(sums)}
    assert rows["f_ratio_range"]["null_share"] == 0.0
    assert rows["embedding_not_collapsed"]["evaluated"] == 1
    assert rows["embedding_not_collapsed"]["observed_mean"] < 0.98


def test_feature_range_and_coverage(derived_validator):
    batch = derived_batch()
    batch.loc[0, "f_ratio"] = 1.5
    batch.loc[1, "f_polarity"] = -3.0
    batch["f_count"] = batch["f_count"].astype(float)
    batch.loc[[2, 3], "f_count"] = np.nan
    sums = derived_validator.validate(batch)
    assert failing(derived_validator, sums) == {"f_ratio_range": 1, "f_polarity_range": 1}
    rows = {r["key"]: r for r in derived_validator.summarize(sums)}
    assert rows["f_count_range"]["null_share"] == pytest.approx(2 / 8)
    assert rows["f_count_range"]["pass_rate"] == 1.0  # nulls are coverage, not range failures


def test_absent_feature_has_zero_coverage(derived_validator):
    rows = {r["key"]: r for r in derived_validator.summarize(
        derived_validator.validate(derived_batch().drop(columns=["f_ratio"])))}
    assert rows["f_ratio_range"]["null_share"] == 1.0


def test_embedding_checks(derived_validator):
    batch = derived_batch()
    emb = list(batch["embedding"])
    emb[0] = None
    emb[1] = np.ones(DIM + 3, dtype=np.float32)
    emb[2] = emb[2].copy()
    emb[2][0] = np.nan
    emb[3] = emb[3] * 10.0
    batch["embedding"] = emb
    assert failing(derived_validator, derived_validator.validate(batch)) == {
        "embedding_present": 1, "embedding_dim": 1, "embedding_finite": 1,
        "embedding_norm": 1}


def test_collapsed_batch_is_caught_and_small_batches_are_not_judged(derived_validator):
    batch = derived_batch(6)
    batch["embedding"] = [unit_vectors(1)[0]] * 6
    assert failing(derived_validator, derived_validator.validate(batch)) == {
        "embedding_not_collapsed": 1}
    small = batch.iloc[:3]  # below collapse_min_rows=4
    rows = {r["key"]: r for r in derived_validator.summarize(derived_validator.validate(small))}
    assert "embedding_not_collapsed" not in rows


def test_derived_suite_without_embedding():
    spec = derived_suite_spec(CATALOGUE, embedding_dim=None)
    assert [e.key for e in spec.expectations] == ["f_count_range", "f_ratio_range",
                                                 "f_polarity_range"]


def test_export_suites_writes_loadable_stable_gx_json(tmp_path):
    import great_expectations as gx

    specs = [raw_suite_spec(now=NOW), derived_suite_spec(CATALOGUE, embedding_dim=DIM)]
    paths = export_suites(tmp_path / "a", specs)
    again = export_suites(tmp_path / "b", specs)
    assert [p.rsplit("/", 1)[1] for p in paths] == ["raw.json", "derived.json"]
    for first, second, spec in zip(paths, again, specs, strict=True):
        text = Path(first).read_text(encoding="utf-8")
        assert text == Path(second).read_text(encoding="utf-8")
        doc = json.loads(text)
        suite = gx.ExpectationSuite(**doc)
        assert suite.name == spec.name
        assert len(suite.expectations) == len(spec.expectations)
        assert [e["meta"]["key"] for e in doc["expectations"]] == [e.key for e in
                                                                    spec.expectations]


# --------------------------------------------------------------------------- score and gates


def expectation(key: str, rate: float | None, suite: str = "raw", **extra) -> dict:
    return {"suite": suite, "key": key, "pass_rate": rate, "evaluated": 10,
            "unexpected": 0 if rate in (None, 1.0) else 1, **extra}


def test_quality_score_formula():
    counts = {"records_in": 100, "records_quarantined": 10}
    exps = [expectation("a", 1.0), expectation("b", 0.5), expectation("c", None)]
    # V = 0.9, E = 0.75 (c has no pass rate), C = 0.9
    assert quality_score(counts, exps, {"f_a": 1.0, "f_b": 0.8}) == pytest.approx(
        100 * (0.5 * 0.9 + 0.3 * 0.75 + 0.2 * 0.9))
    assert quality_score({"records_in": 0, "records_quarantined": 0}, [], {}) == 100.0
    assert quality_score(counts, exps, {}) < quality_score(
        {"records_in": 100, "records_quarantined": 0}, exps, {})


def checks_by_name(summary: dict, cfg: QualityConfig | None = None) -> dict[str, CheckResult]:
    return {c.name: c for c in run_level_checks(summary, cfg or QualityConfig())}


@pytest.mark.parametrize(("quarantined", "status"), [(4, "pass"), (5, "pass"), (6, "fail")])
def test_quarantine_share_threshold_both_ways(quarantined, status):
    check = checks_by_name({"records_in": 100, "records_quarantined": quarantined})[
        "quarantine_share"]
    assert check.status == status
    assert check.value == pytest.approx(quarantined / 100)
    assert check.threshold == 0.05


@pytest.mark.parametrize(("coverage", "status"), [(0.995, "pass"), (0.98, "fail")])
def test_coverage_threshold_both_ways(coverage, status):
    check = checks_by_name({"records_in": 10, "records_quarantined": 0,
                            "feature_coverage": {"f_a": 1.0, "f_b": coverage}})[
        "feature_coverage"]
    assert check.status == status
    assert "f_b" in check.message


def test_on_fail_warn_turns_a_failure_into_a_warning():
    cfg = QualityConfig(on_fail={"quarantine_share": "warn"})
    assert cfg.on_fail["feature_coverage"] == DEFAULT_ON_FAIL["feature_coverage"]
    checks = run_level_checks({"records_in": 10, "records_quarantined": 5}, cfg)
    share = next(c for c in checks if c.name == "quarantine_share")
    assert (share.passed, share.status, share.blocking) == (False, "warn", False)
    assert gate_error(checks, "r1", "/runs/r1") is None


def test_gate_error_is_one_line_with_exit_code_3():
    checks = run_level_checks({"records_in": 10, "records_quarantined": 5,
                               "feature_coverage": {"f_a": 0.5}}, QualityConfig())
    err = gate_error(checks, "r1", "/runs/r1")
    assert isinstance(err, QualityGateError)
    assert err.exit_code == 3
    text = str(err)
    assert "\n" not in text
    assert text.startswith("run r1 failed the quality gate: quarantine_share")
    assert "+1 more" in text and "marked incomplete" in text


def test_unknown_on_fail_check_is_rejected():
    with pytest.raises(ValueError, match="unknown check"):
        QualityConfig(on_fail={"no_such_check": "warn"})
    with pytest.raises(ValueError):
        QualityConfig(no_such_field=1)


def test_expectation_collapse_drift_and_score_checks():
    cfg = QualityConfig(min_quality_score=90)
    summary = {
        "records_in": 10, "records_quarantined": 0,
        "expectations": [expectation("a", 0.9), expectation(
            "embedding_not_collapsed", 0.5, suite="derived", unexpected=1, evaluated=2)],
        "drift": {"label_psi": 0.4, "feature_psi": {"f_a": 0.05, "f_b": 0.3}},
        "quality_score": 85.0,
    }
    checks = checks_by_name(summary, cfg)
    assert checks["expectation_pass_rate"].status == "warn"
    assert "derived.embedding_not_collapsed" in checks["expectation_pass_rate"].message
    assert checks["collapsed_batches"].status == "fail"
    assert checks["label_drift"].status == "warn"
    assert checks["feature_drift"].status == "warn" and "f_b" in checks["feature_drift"].message
    assert checks["quality_score"].status == "warn"
    fine = checks_by_name({**summary, "drift": {"label_psi": 0.01, "feature_psi": {"f_a": 0.0}},
                           "quality_score": 95.0}, cfg)
    assert fine["label_drift"].status == fine["feature_drift"].status == "pass"
    assert fine["quality_score"].status == "pass"


def test_checks_without_data_are_skipped():
    checks = checks_by_name({"records_in": 0, "records_quarantined": 0})
    assert checks["quarantine_share"].status == "pass"
    for name in ("feature_coverage", "expectation_pass_rate", "collapsed_batches",
                 "label_drift", "feature_drift", "quality_score"):
        assert checks[name].status == "skipped", name
    broken = checks_by_name({"records_in": 1, "records_quarantined": 0,
                             "drift": {"error": "no summary.json"}})
    assert broken["label_drift"].status == "warn"


# --------------------------------------------------------------------------- drift


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, 5000)
    assert psi(ref, rng.normal(0, 1, 5000)) < 0.02
    assert psi(ref, rng.normal(1.5, 1, 5000)) > 0.25
    assert math.isnan(psi(ref, []))
    assert math.isnan(psi([np.nan], ref))


def test_psi_of_discrete_features_and_labels():
    ref = [0] * 90 + [1] * 10
    assert psi(ref, ref) == pytest.approx(0.0)
    assert psi(ref, [0] * 50 + [1] * 50) > 0.25
    assert label_psi({"none": 50, "opt_out": 50}, {"none": 50, "opt_out": 50}) == pytest.approx(0)
    assert categorical_psi({"none": 90, "opt_out": 10}, {"none": 10, "access_request": 90}) > 1
    assert math.isnan(categorical_psi({}, {"none": 1}))


def test_drift_report_lists_features_it_could_not_compare():
    rep = drift_report({"none": 5}, {"f_a": [1, 2, 3]}, {"none": 5}, {"f_a": [1, 2, 3]},
                       ["f_a", "f_missing"], reference="ref")
    assert rep["label_psi"] == pytest.approx(0.0)
    assert rep["feature_psi"] == {"f_a": pytest.approx(0.0)}
    assert rep["features_not_compared"] == ["f_missing"]


# --------------------------------------------------------------------------- run folders


def make_run(tmp_path, quarantined: int = 2, name: str = "run1") -> tuple[RunFolder, dict]:
    """A run folder with messages/, quarantine/ and summary.json, as the pipeline writes it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = RunFolder.create(str(tmp_path / "out"), run_id=name)
    rng = np.random.default_rng(2)
    n = 40
    (tmp_path / "out" / "runs" / name / "messages" / "date=2026-01-05").mkdir(parents=True)
    pq.write_table(pa.table({
        "message_id": [f"m{i}" for i in range(n)],
        "f_count": rng.integers(0, 30, n),
        "f_ratio": rng.random(n),
        "label": ["none"] * 30 + ["opt_out"] * 10,
    }), tmp_path / "out" / "runs" / name / "messages" / "date=2026-01-05" / "part-a.parquet")
    (tmp_path / "out" / "runs" / name / "quarantine").mkdir()
    reasons = ["text_empty", "channel_unknown;timestamp_unparseable"] * quarantined
    pq.write_table(pa.table({
        "message_id": [f"q{i}" for i in range(quarantined)],
        "text": ["mail me at jane.doe@example.com <script>alert(1)</script>"] * quarantined,
        "quarantine_reason": reasons[:quarantined],
    }), tmp_path / "out" / "runs" / name / "quarantine" / "part-a.parquet")
    summary = {"run_id": name, "run_dir": folder.uri, "complete": True,
               "records_in": n + quarantined, "records_out": n,
               "records_quarantined": quarantined,
               "quarantine_reasons": {"text_empty": 1, "channel_unknown": 1,
                                      "timestamp_unparseable": 1} if quarantined else {},
               "labels": {"none": 30, "opt_out": 10}}
    folder.write_json("summary.json", summary)
    return folder, summary


def test_quarantine_examples_are_redacted_per_reason(tmp_path):
    folder, _ = make_run(tmp_path, quarantined=4)
    examples = quarantine_examples_from_run(folder.uri, per_reason=1)
    assert set(examples) == {"text_empty", "channel_unknown", "timestamp_unparseable"}
    assert all(len(v) == 1 for v in examples.values())
    text = examples["text_empty"][0]["text"]
    assert "jane.doe@example.com" not in text
    assert len(text) <= 200


def test_feature_samples_and_reference_from_a_run(tmp_path):
    folder, _ = make_run(tmp_path)
    samples = load_feature_samples(folder.uri, ["f_count", "f_ratio", "f_absent"], max_rows=10)
    assert set(samples) == {"f_count", "f_ratio"}
    assert len(samples["f_count"]) == 10
    labels, ref = load_reference(folder.uri, ["f_ratio"])
    assert labels == {"none": 30.0, "opt_out": 10.0}
    assert len(ref["f_ratio"]) == 40
    with pytest.raises(InputError, match="summary.json"):
        load_reference(str(tmp_path / "nowhere"), ["f_ratio"])


def report_inputs():
    summary = {"run_id": "r<1>", "run_dir": "/x", "records_in": 10, "records_out": 8,
               "records_quarantined": 2, "quality_score": 91.5,
               "quarantine_reasons": {"text_empty": 2}, "labels": {"none": 8},
               "feature_coverage": {"f_ratio": 1.0}, "drift": None}
    exps = [expectation("text_length", 0.8, description="text <b>bounds</b>",
                        expectation_type="expect_column_value_lengths_to_be_between",
                        success=False)]
    checks = run_level_checks(summary, QualityConfig())
    examples = {"text_empty": [{"message_id": "q1", "text": "<script>alert(1)</script>"}]}
    samples = {"f_ratio": list(np.linspace(0, 1, 50)), "f_flag": [0, 1, 1, 0]}
    return summary, exps, checks, examples, samples


def test_report_renders_self_contained_html_and_json(tmp_path):
    folder = RunFolder.create(str(tmp_path / "out"), run_id="r1")
    json_uri, html_uri = write_report(folder, *report_inputs())
    assert json_uri.endswith(REPORT_JSON) and html_uri.endswith(REPORT_HTML)
    report = json.loads(Path(json_uri).read_text(encoding="utf-8"))
    assert report["quality_score"] == 91.5
    assert report["gate"] == "failed"  # 20 % quarantined > 5 %
    assert report["quarantine"]["reasons"] == {"text_empty": 2}
    assert report["quarantine"]["descriptions"]["text_empty"]
    assert report["features"]["f_flag"]["histogram"]["values"] == [0.0, 1.0]
    assert len(report["feature_samples"]["f_ratio"]) == 50
    page = Path(html_uri).read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    for needle in ("91.5", "text_length", "80.00%", "text_empty", "quarantine_share",
                   "histogram of f_ratio", "<svg"):
        assert needle in page, needle
    assert "<script" not in page  # example text and descriptions are escaped
    assert "&lt;script&gt;" in page and "&lt;b&gt;" in page and "r&lt;1&gt;" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing external


def test_render_html_handles_an_empty_report():
    page = render_html(build_report({"run_id": "r"}, [], [], {}, {}))
    assert "No GX expectation was evaluated" in page
    assert "No row was quarantined" in page


def test_assess_run_writes_the_report_and_gates(tmp_path, raw_validator, derived_validator):
    folder, summary = make_run(tmp_path, quarantined=4)
    bad = raw_batch()
    bad.at[0, "channel"] = "fax"
    sums = {**raw_validator.validate(bad), **derived_validator.validate(derived_batch())}
    cfg = QualityConfig(reference_run=folder.uri, drift_features=["f_ratio", "f_count"])
    result = assess_run(summary, sums, [raw_validator.spec, derived_validator.spec], cfg, folder,
                        feature_names=["f_count", "f_ratio"])
    assert 0 < result.score <= 100
    assert result.coverage == {"f_count": 1.0, "f_ratio": 1.0, "f_polarity": 1.0}
    assert result.drift["label_psi"] == pytest.approx(0.0)
    assert set(result.drift["feature_psi"]) == {"f_ratio", "f_count"}
    assert result.gate == "failed"  # 4 of 44 rows quarantined > 5 %
    err = result.error(summary["run_id"], folder.uri)
    assert isinstance(err, QualityGateError)
    section = result.summary()
    assert section["quality"]["failed"] == ["quarantine_share"]
    assert "expectation_pass_rate" in section["quality"]["warnings"]
    assert section["quality"]["report_html"].endswith(REPORT_HTML)
    report = json.loads((tmp_path / "out" / "runs" / "run1" / REPORT_JSON).read_text())
    assert report["quarantine"]["examples"]["text_empty"][0]["message_id"].startswith("q")
    assert any(e["key"] == "channel_known" and e["unexpected"] == 1
               for e in report["expectations"])
    ok = assess_run(summary, sums, [raw_validator.spec], QualityConfig(max_quarantine_share=0.2))
    assert ok.gate == "warned" and ok.report_html is None


# --------------------------------------------------------------------------- CLI


@pytest.fixture()
def report_app():
    import typer

    from privacy_ray.cli import report_cmd

    app = typer.Typer()
    report_cmd.register(app)

    @app.callback()
    def _root() -> None:  # keep `report` a subcommand
        """Test root."""

    return app


def test_report_command_builds_and_prints(tmp_path, report_app):
    from typer.testing import CliRunner

    folder, _ = make_run(tmp_path, quarantined=0)
    run_dir = str(tmp_path / "out" / "runs" / "run1")
    result = CliRunner().invoke(report_app, ["report", run_dir])
    assert result.exit_code == 0, result.output
    assert "quality score" in result.output
    assert f"report: {run_dir}/{REPORT_HTML}" in result.output
    assert (tmp_path / "out" / "runs" / "run1" / REPORT_HTML).is_file()
    result = CliRunner().invoke(report_app, ["report", run_dir, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["rebuilt"] is False  # the report from the first call is reused
    assert doc["summary"]["run_id"] == "run1"
    assert doc["report_html"].endswith(REPORT_HTML)
    assert {c["name"] for c in doc["checks"]} == set(DEFAULT_ON_FAIL)


def test_report_command_help_has_examples(report_app):
    from typer.testing import CliRunner

    result = CliRunner().invoke(report_app, ["report", "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output


def test_report_on_a_missing_folder_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    from privacy_ray.cli import main

    monkeypatch.setattr(sys, "argv", ["privacy-ray", "report", str(tmp_path / "nope")])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "does not exist" in err and "\n" not in err
