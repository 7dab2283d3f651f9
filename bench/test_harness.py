"""Unit tests of the benchmark harness's own logic (no Ray, no model; a few seconds).

    .venv/bin/python -m pytest bench/test_harness.py -q
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as harness  # noqa: E402
from common import ProcessTreeMonitor, median, overhead_pct, ratio  # noqa: E402


def _pipeline_run(n: int, seconds: float, cpu: float, e2e: float | None = None) -> dict:
    return {
        "n_messages": n,
        "records_in": n,
        "pipeline_s": seconds,
        "e2e_s": e2e if e2e is not None else seconds,
        "records_per_s": n / (e2e if e2e is not None else seconds),
        "cpu_seconds_run": cpu,
        "stages": {s: {"seconds": 1.0, "rows_in": n} for s in harness.TEXT_STAGES},
        "memory": {"peak_rss_mb": 1000.0, "peak_rss_mb_by_role": {}, "max_processes": 9},
    }


def _plan(**kw) -> harness.Plan:
    plan = harness.Plan.make(quick=True, reps=None, sections=harness.SECTIONS)
    plan.cpus = 2
    for key, value in kw.items():
        setattr(plan, key, value)
    return plan


def test_statistics_helpers_skip_missing_values():
    assert median([3.0, None, 1.0, 2.0]) == 2.0
    assert median([None]) is None
    assert ratio(1.0, 0.0) is None
    assert ratio(None, 2.0) is None
    assert overhead_pct(12.0, 10.0) == pytest.approx(20.0)


def test_summary_keeps_unmeasured_figures_null():
    summary = harness.build_summary({"store": {"ann_recall_at_10": 0.97}})
    for key in ("pipeline_vs_encode_ratio", "memory_growth_ratio", "onnx_int8_speedup",
                "onnx_cosine_min", "serve_qps_ratio", "serve_p99_ms",
                "features_redaction_ray_overhead_pct", "embed_stage_vs_encode_ratio",
                "features_redaction_ray_overhead_warm_all_cores_pct",
                "validation_overhead_pct", "onnx_macro_f1_drop"):
        assert key in summary
        assert summary[key] is None
    assert summary["ann_recall_at_10"] == 0.97
    assert harness.meets("ann_recall_at_10", 0.97) is True
    assert harness.meets("serve_p99_ms", 151.0) is False
    assert harness.meets("onnx_int8_speedup", None) is None
    assert harness.meets("onnx_cosine_min", 0.979) is False
    onnx = harness.build_summary({"onnx": {"onnx_int8_speedup": 2.4, "onnx_cosine_min": 0.982,
                                           "macro_f1_torch": 0.775, "macro_f1_onnx": 0.7663}})
    assert (onnx["onnx_int8_speedup"], onnx["onnx_cosine_min"]) == (2.4, 0.982)
    assert onnx["onnx_macro_f1_drop"] == 0.0087 and harness.meets("onnx_macro_f1_drop", 0.0087)


def test_text_summary_overhead_is_extra_core_seconds_per_record():
    h = harness.Harness(_plan(n_text=1000), Path("."))
    runs = harness.TextRuns(
        # Ray on 2 cores: 1000 records in 2 s = 250 records/s per core
        ray_off=[_pipeline_run(1000, 2.0, cpu=4.0)] * 3,
        # Ray on 1 core: 1000 records in 4 s
        ray_one=[_pipeline_run(1000, 4.0, cpu=4.0)] * 3,
        # Ray on 2 cores after a warm-up: 1000 records in 1.6 s = 312.5 records/s per core
        ray_warm=[_pipeline_run(1000, 1.6, cpu=3.2)] * 3,
        loops=[{"n_messages": 1000, "records_per_s": 400.0, "cpu_seconds": 2.5,
                "seconds_by_step": {"generate": 1.0}, "wall_s": 2.5, "peak_rss_mb": 1,
                "load_average_after": None}] * 3,
        # the loop in one process per core: 320 records/s per core with both cores busy
        loops_parallel=[{"n_messages": 1000, "processes": 2, "records_per_s_per_core": 320.0,
                         "wall_s": 1.5625, "cpu_seconds": 3.0, "peak_rss_mb": 1,
                         "load_average_after": None}] * 3,
    )
    text, scaling = harness.summarize_text(h, runs)
    assert text["ray_records_per_s_per_core"] == 250.0
    assert text["features_redaction_ray_overhead_pct"] == pytest.approx(60.0)  # 400/250 - 1
    assert text["ray_cpu_overhead_pct"] == pytest.approx(60.0)  # (1000/2.5) / (1000/4) - 1
    assert text["features_redaction_ray_overhead_warm_pct"] == pytest.approx(28.0)  # 400/312.5
    assert text["features_redaction_ray_overhead_all_cores_pct"] == pytest.approx(28.0)  # 320/250
    assert text["features_redaction_ray_overhead_warm_all_cores_pct"] == pytest.approx(2.4)
    assert text["ray_start_up_seconds"] == pytest.approx(0.4)  # 2.0 - 1.6
    summary = harness.build_summary({"features_redaction": text})
    assert summary["features_redaction_ray_overhead_warm_pct"] == pytest.approx(28.0)
    assert summary["features_redaction_ray_overhead_warm_all_cores_pct"] == pytest.approx(2.4)
    assert harness.meets("features_redaction_ray_overhead_warm_all_cores_pct", 2.4) is True
    assert harness.meets("features_redaction_ray_overhead_warm_all_cores_pct", 25.1) is False
    # sizing takes the steady-state rate: a run's start-up is paid once, not per record
    sizing = harness.build_sizing({"features_redaction": text}, cpus=2)
    assert sizing["records_per_s_per_core"]["text_stages"] == pytest.approx(312.5)
    assert scaling["speedup"] == pytest.approx(2.0)
    assert scaling["efficiency"] == pytest.approx(1.0)


def test_validation_and_memory_reuse_the_shared_runs():
    plan = _plan(n_text=1000, n_pipeline=1000, memory_sizes=(1000, 10_000))
    h = harness.Harness(plan, Path("."))
    on = [_pipeline_run(1000, 2.0, 4.0, e2e=3.0)] * 3
    runs = harness.TextRuns(ray_on=on, ray_off=[_pipeline_run(1000, 2.0, 4.0, e2e=2.5)] * 3)
    v = harness.summarize_validation(h, runs, full_pipeline_e2e_s=10.5)
    assert v["added_seconds"] == pytest.approx(0.5)
    assert v["validation_overhead_pct"] == pytest.approx(20.0)
    assert v["full_pipeline_overhead_pct_estimate"] == pytest.approx(5.0)

    large = _pipeline_run(10_000, 20.0, 40.0)
    large["memory"] = dict(large["memory"], peak_rss_mb=1100.0)
    calls = []

    def fake_pipeline(label, n, **opts):
        calls.append(n)
        return large

    h.pipeline = fake_pipeline  # only the large size needs a new run
    mem = harness.measure_memory(h, runs)
    assert calls == [10_000]
    assert mem["memory_growth_ratio"] == pytest.approx(1.1)


def test_markdown_renders_a_partial_result():
    measurements = {"store": {"ann_recall_at_10": 0.99, "result": {"big": 1}}}
    result = {
        "summary": harness.build_summary(measurements),
        "machine": {"hostname": "h", "usable_cores": 2, "cpu_model": "cpu", "memory_gb": 4,
                    "load_average_before": [1, 1, 1], "load_average_after": [1, 1, 1]},
        "date": "2026-01-01", "mode": "quick", "command": "make bench-quick", "total_s": 1.0,
        "git": {"commit": "abc", "dirty": False}, "versions": {"ray": "2.60.0"},
        "measurements": measurements, "sizing": harness.build_sizing(measurements, 2),
        "runs": [{"label": "serve bench", "error": "exit status 1"}],
    }
    text = harness.markdown(result)
    assert "| ann_recall_at_10 | 0.99 | >= 0.95 | yes |" in text
    assert "| pipeline_vs_encode_ratio | n/a |" in text
    assert "serve bench: exit status 1" in text
    assert "big" not in text


def test_sections_are_checked():
    assert harness.parse_sections("store,serve", None) == ("store", "serve")
    assert "memory" not in harness.parse_sections(None, "memory")
    with pytest.raises(SystemExit, match="unknown section"):
        harness.parse_sections("bogus", None)


def test_monitor_sums_memory_of_child_processes():
    code = "import time; x = bytearray(60 * 2**20); x[::4096] = b'1' * len(x[::4096]); " \
           "time.sleep(3)"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        monitor = ProcessTreeMonitor(interval_s=0.05).start()
        time.sleep(1.5)
        report = monitor.stop()
    finally:
        child.kill()
        child.wait()
    assert report["max_processes"] >= 2
    assert report["peak_rss_mb_by_role"]["other"] >= 60  # the child, beside the driver
    assert report["peak_rss_mb"] >= report["peak_rss_mb_by_role"]["driver"] + 60


def test_resume_reuses_finished_measurements(tmp_path):
    h = harness.Harness(_plan(), tmp_path)
    (tmp_path / "001-text_loop.json").write_text('{"records_per_s": 5.0}', encoding="utf-8")
    # a command that would fail if it ran: the finished measurement must be reused instead
    assert h.call("text loop", [sys.executable, "-c", "raise SystemExit(3)"], 30) == {
        "records_per_s": 5.0}
    assert h.runs[-1]["reused"] == "001-text_loop.json"
    assert h.call("second", [sys.executable, "-c", "raise SystemExit(3)"], 30) is None
    assert h.runs[-1]["returncode"] == 3


def test_loop_baseline_splits_the_chunks_over_processes(tmp_path):
    """``loop --procs 2``: each process takes every other chunk; together they process every
    message once (the all-cores baseline of the Ray overhead figures)."""
    out = {}
    for procs in (1, 2):
        path = tmp_path / f"loop{procs}.json"
        subprocess.run([sys.executable, str(Path(harness.BENCH) / "bench_pipeline.py"), "loop",
                        "--n", "300", "--procs", str(procs), "--set",
                        "pipeline.resources.read.batch_size=100", "--out", str(path)],
                       check=True, capture_output=True, timeout=300)
        out[procs] = json.loads(path.read_text())
    for procs, result in out.items():
        assert result["processes"] == procs
        assert result["records_out"] + result["records_quarantined"] == 300
        assert result["records_per_s_per_core"] == pytest.approx(
            300 / result["wall_s"] / procs, rel=0.01)
    assert out[1]["records_out"] == out[2]["records_out"]  # same messages, split differently
