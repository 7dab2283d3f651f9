"""The benchmark harness: every figure against a baseline measured in the same run.

    make bench          # .venv/bin/python bench/run.py          (20k messages, 3 repetitions)
    make bench-quick    # .venv/bin/python bench/run.py --quick  (2k messages, 1 repetition)
    .venv/bin/python bench/run.py --quick --only pipeline,memory --out-dir /tmp/bench

Each measurement runs in its own process (``bench/bench_pipeline.py``, ``bench_store.py``,
``bench_redaction.py``, ``bench_serve.py``), so no two share a Ray session, a warm model or a
heap. Repetitions are interleaved with their baseline (pipeline, encoder, pipeline, encoder,
...) so a change in the machine's load hits both sides. Figures are medians; nothing here
asserts a timing. The results go to ``bench/results/<date>-<host>.json`` (``-quick`` in quick
mode) plus a Markdown table next to it; ``bench/README.md`` says what each figure means.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    RESULTS_DIR,
    ROOT,
    git_info,
    host_slug,
    load_average,
    log,
    machine_info,
    median,
    overhead_pct,
    ratio,
    rounded,
    run_json,
    usable_cores,
    utc_now,
    versions,
)

PY = sys.executable
BENCH = ROOT / "bench"
TEXT_STAGES = ("validate_raw", "normalize", "features", "redact")
SECTIONS = ("pipeline", "text", "validation", "memory", "redaction", "store", "serve", "onnx")
TARGETS: dict[str, tuple[str, float]] = {
    "pipeline_vs_encode_ratio": (">=", 0.8),
    "embed_stage_vs_encode_ratio": (">=", 0.9),
    "features_redaction_ray_overhead_warm_all_cores_pct": ("<=", 25.0),
    "validation_overhead_pct": ("<=", 10.0),
    "validation_overhead_full_pipeline_pct": ("<=", 10.0),
    "memory_growth_ratio": ("<=", 1.25),
    "ann_recall_at_10": (">=", 0.95),
    "serve_qps_ratio": (">=", 0.5),
    "serve_p99_ms": ("<=", 150.0),
    "onnx_int8_speedup": (">=", 2.0),
    "onnx_cosine_min": (">=", 0.98),
    "onnx_macro_f1_drop": ("<=", 0.01),
}


@dataclass
class Plan:
    """Sizes and repetitions of one harness run."""

    quick: bool
    reps: int
    n_pipeline: int
    n_text: int
    memory_sizes: tuple[int, int]
    encode_sample: int
    cpus: int
    sections: tuple[str, ...]
    timeout_s: dict[str, float] = field(default_factory=dict)

    @classmethod
    def make(cls, quick: bool, reps: int | None, sections: tuple[str, ...]) -> Plan:
        cpus = usable_cores()
        if quick:
            return cls(True, reps or 1, 2_000, 2_000, (5_000, 50_000), 500, cpus, sections,
                       {"pipeline": 900, "bench": 600})
        return cls(False, reps or 3, 20_000, 20_000, (20_000, 200_000), 2_000, cpus, sections,
                   {"pipeline": 3600, "bench": 1800})


class Harness:
    """Runs the plan's measurements as subprocesses and keeps every result and failure."""

    def __init__(self, plan: Plan, work: Path) -> None:
        self.plan = plan
        self.work = work
        self.runs: list[dict[str, Any]] = []
        self._count = 0

    def call(self, label: str, args: list[str], timeout_s: float) -> dict[str, Any] | None:
        self._count += 1
        out = self.work / f"{self._count:03d}-{label.replace(' ', '_')}.json"
        if out.is_file():  # --resume: this measurement finished in an earlier, stopped run
            try:
                result = json.loads(out.read_text(encoding="utf-8"))
            except ValueError:
                out.unlink()
            else:
                log(f"{label}: reused {out.name}")
                self.runs.append({"label": label, "reused": out.name,
                                  "load_average_after": result.get("load_average_after")})
                return result
        log(f"{label} ...")
        result, facts = run_json([*args, "--out", str(out)], out, timeout_s, label)
        self.runs.append(facts)
        if result is None:
            log(f"  FAILED: {facts.get('error')}; " + " | ".join(facts.get("stderr_tail", [])[-3:]))
        else:
            log(f"  done in {facts['wall_s']}s (load {facts['load_average_after']})")
        return result

    def pipeline(self, label: str, n: int, **opts: Any) -> dict[str, Any] | None:
        args = [PY, str(BENCH / "bench_pipeline.py"), "pipeline", "--n", str(n)]
        for key, value in opts.items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                args.append(flag)
            elif value not in (None, False):
                args += [flag, str(value)]
        return self.call(label, args, self.plan.timeout_s["pipeline"])


# --------------------------------------------------------------------------- measurements


def _compact_pipeline(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("records_in", "records_out", "records_quarantined", "complete", "e2e_s",
            "pipeline_s", "startup_s", "records_per_s", "records_per_s_pipeline_only",
            "cpu_seconds_run", "quality_score", "load_average_before", "load_average_after")
    out = {k: r.get(k) for k in keys}
    out["stage_seconds"] = {k: v["seconds"] for k, v in r.get("stages", {}).items()}
    out["peak_rss_mb"] = r.get("memory", {}).get("peak_rss_mb")
    return out


def _embed_rate(r: dict[str, Any], over: str = "span_seconds") -> float | None:
    """Embedded rows per second of the embed stage: over its span (first batch started to
    last batch ended, on any actor: the stage's throughput) or over its summed batch seconds
    (``over="seconds"``: the rate of one actor)."""
    st = r.get("stages", {}).get("embed")
    if not st or not st.get(over):
        return None
    return (st.get("embedding_rows") or st["rows_in"]) / st[over]


def measure_pipeline(h: Harness, model_dir: str | None) -> dict[str, Any]:
    """(1) the main pipeline end to end against bare encode, and (3) the embed stage alone."""
    p = h.plan
    texts = h.work / "redacted_texts.parquet"
    pipe_runs: list[dict[str, Any]] = []
    enc_runs: list[dict[str, Any]] = []
    actor_threads: int | None = None
    for rep in range(p.reps):
        r = h.pipeline(f"pipeline rep{rep + 1} n={p.n_pipeline}", p.n_pipeline, cpus=p.cpus,
                       model_dir=model_dir, ray_stats=True,
                       save_texts=texts if not texts.exists() else None)
        if r is not None:
            pipe_runs.append(r)
            emb = r.get("resources", {}).get("embed", {})
            actor_threads = r.get("embed_torch_threads") or max(1, int(emb.get("num_cpus") or 1))
        if not texts.exists():
            continue
        threads = "all" if actor_threads in (None, p.cpus) else f"all,{actor_threads}"
        e = h.call(f"encode rep{rep + 1}", [PY, str(BENCH / "bench_pipeline.py"), "encode",
                                            "--texts", str(texts), "--sample",
                                            str(p.encode_sample), "--threads", threads,
                                            "--seed", str(rep)], p.timeout_s["pipeline"])
        if e is not None:
            enc_runs.append(e)
    pipe_rps = median([r["records_per_s"] for r in pipe_runs])
    enc_all = median([e["runs"]["all"]["records_per_s"] for e in enc_runs])
    actor_key = "all" if actor_threads in (None, p.cpus) else str(actor_threads)
    enc_actor = median([e["runs"][actor_key]["records_per_s"] for e in enc_runs
                        if actor_key in e["runs"]])
    embed_rps = median([_embed_rate(r) for r in pipe_runs])
    actor_rps = median([_embed_rate(r, over="seconds") for r in pipe_runs])
    stage_names = list(pipe_runs[0]["stages"]) if pipe_runs else []
    stage_median = {s: median([r["stages"][s]["seconds"] for r in pipe_runs
                               if s in r["stages"]]) for s in stage_names}
    stage_total = sum(v for v in stage_median.values() if v) or None
    breakdown = {
        s: {"seconds": rounded(v, 2),
            "share_of_stage_time": rounded(ratio(v, stage_total), 3),
            "records_per_s_in_stage": rounded(ratio(p.n_pipeline, v), 1)}
        for s, v in stage_median.items()
    }
    median_run = None
    if pipe_runs:
        median_run = sorted(pipe_runs, key=lambda r: r["records_per_s"])[len(pipe_runs) // 2]
    first_enc = enc_runs[0] if enc_runs else {}
    return {
        "n_messages": p.n_pipeline,
        "repetitions": len(pipe_runs),
        "ray_num_cpus": p.cpus,
        "stages": pipe_runs[0]["stages_configured"] if pipe_runs else None,
        "pipeline_records_per_s": rounded(pipe_rps, 2),
        "encode_records_per_s_all_threads": rounded(enc_all, 2),
        "encode_records_per_s_actor_threads": rounded(enc_actor, 2),
        "embed_actor_torch_threads": actor_threads,
        "pipeline_vs_encode_ratio": rounded(ratio(pipe_rps, enc_all), 3),
        "pipeline_vs_encode_actor_threads_ratio": rounded(ratio(pipe_rps, enc_actor), 3),
        "embed_actors": pipe_runs[0]["resources"]["embed"]["max_actors"] if pipe_runs else None,
        "embed_stage_records_per_s": rounded(embed_rps, 2),
        "embed_stage_vs_encode_ratio": rounded(ratio(embed_rps, enc_all), 3),
        "embed_actor_records_per_s": rounded(actor_rps, 2),
        "embed_actor_vs_encode_actor_threads_ratio": rounded(ratio(actor_rps, enc_actor), 3),
        "stage_breakdown_median": breakdown,
        "encode_baseline": {
            "sample_per_rep": first_enc.get("sample"),
            "texts_available": first_enc.get("texts_available"),
            "mean_chars": first_enc.get("mean_chars"),
            "batch_sizes": first_enc.get("batch_sizes"),
            "best_batch_size": [e["runs"]["all"].get("best_batch_size") for e in enc_runs],
            "runs": [e["runs"] for e in enc_runs],
        },
        "runs": [_compact_pipeline(r) for r in pipe_runs],
        "memory_peak_rss_mb": median([r["memory"]["peak_rss_mb"] for r in pipe_runs]),
        "ray_data_stats_median_run": (median_run or {}).get("ray_data_stats"),
        "method": (
            "records/s = records in / e2e_s (init_ray returned to run_pipeline returned: "
            "source to sink, quality report, lineage; Ray start-up and loading the model "
            "bundle come before and are excluded). The baseline encodes a random sample "
            "(same size each rep, a new seed) of the redacted texts the first pipeline run "
            "wrote with bare SentenceTransformer.encode (one call: it sorts the whole sample by "
            "length) at batch sizes 8, 16, 32 and 64 after a warm-up, and keeps the fastest; "
            "'all threads' is torch's default (every core), 'actor threads' the "
            "embed actor's (embed.num_cpus). "
            "embed_stage_vs_encode_ratio divides the embed stage's throughput (rows / its span "
            "in RunResult.stages['embed']: first batch started to last batch ended on any "
            "actor; it also covers the TF-IDF-SVD projection and the embedding health sums) "
            "by the encoder at all threads. embed_actor_vs_encode_actor_threads_ratio divides "
            "one actor's rate (rows / summed batch seconds) by the encoder at the actor's "
            "threads."
        ),
    }


@dataclass
class TextRuns:
    """The text-pipeline runs that several measurements share (same config, same size)."""

    ray_off: list[dict[str, Any]] = field(default_factory=list)  # quality off, all CPUs
    ray_on: list[dict[str, Any]] = field(default_factory=list)  # quality on, all CPUs
    ray_one: list[dict[str, Any]] = field(default_factory=list)  # quality off, 1 CPU
    ray_warm: list[dict[str, Any]] = field(default_factory=list)  # quality off, after a warm-up
    loops: list[dict[str, Any]] = field(default_factory=list)  # no Ray, one process
    loops_parallel: list[dict[str, Any]] = field(default_factory=list)  # no Ray, one per core


def run_text_family(h: Harness, need: set[str]) -> TextRuns:
    """The runs of the text stages [validate_raw, normalize, features, redact] at n_text.

    One repetition is: Ray quality off, the pandas loop, the loop in one process per core,
    Ray quality off after a warm-up run on the same Ray, Ray on one CPU, Ray quality on -
    interleaved so a change in load hits every variant. Quality-off runs serve the Ray-vs-loop
    comparison, the scaling and the validation A/B; quality-on runs the validation A/B and the
    small point of the memory comparison when it has the same size.
    """
    p = h.plan
    stages = ",".join(TEXT_STAGES)
    runs = TextRuns()
    for rep in range(p.reps):
        tag = f"rep{rep + 1} n={p.n_text}"
        if need & {"text", "validation"}:
            r = h.pipeline(f"text ray cpus={p.cpus} quality=off {tag}", p.n_text, stages=stages,
                           quality="off", cpus=p.cpus)
            if r is not None:
                runs.ray_off.append(r)
        if "text" in need:
            lp = h.call(f"text loop {tag}", [PY, str(BENCH / "bench_pipeline.py"), "loop",
                                             "--n", str(p.n_text), "--stages", stages],
                        p.timeout_s["pipeline"])
            if lp is not None:
                runs.loops.append(lp)
            if p.cpus > 1:
                lpp = h.call(f"text loop procs={p.cpus} {tag}",
                             [PY, str(BENCH / "bench_pipeline.py"), "loop", "--n",
                              str(p.n_text), "--stages", stages, "--procs", str(p.cpus)],
                             p.timeout_s["pipeline"])
                if lpp is not None:
                    runs.loops_parallel.append(lpp)
            rw = h.pipeline(f"text ray warm cpus={p.cpus} quality=off {tag}", p.n_text,
                            stages=stages, quality="off", cpus=p.cpus,
                            warmup=p.n_text)
            if rw is not None:
                runs.ray_warm.append(rw)
            if p.cpus > 1:
                r1 = h.pipeline(f"text ray cpus=1 quality=off {tag}", p.n_text, stages=stages,
                                quality="off", cpus=1)
                if r1 is not None:
                    runs.ray_one.append(r1)
        if "validation" in need or ("memory" in need and p.memory_sizes[0] == p.n_text):
            r = h.pipeline(f"text ray cpus={p.cpus} quality=on {tag}", p.n_text, stages=stages,
                           quality="on", cpus=p.cpus)
            if r is not None:
                runs.ray_on.append(r)
    return runs


def _rps(runs: list[dict[str, Any]]) -> float | None:
    """Median records/s over RunResult.seconds (source to sink)."""
    return median([r["n_messages"] / r["pipeline_s"] for r in runs if r.get("pipeline_s")])


def summarize_text(h: Harness, runs: TextRuns) -> tuple[dict[str, Any], dict[str, Any]]:
    """(2) text stages through Ray vs a pandas loop, and (7) scaling with 1 and all CPUs."""
    p = h.plan
    ray_rps = _rps(runs.ray_off)
    ray_rps_1 = _rps(runs.ray_one)
    loop_rps = median([lp["records_per_s"] for lp in runs.loops])
    # with one core, the one-process loop already is "every core busy"
    loop_all_cores = (median([lp["records_per_s_per_core"] for lp in runs.loops_parallel])
                      if p.cpus > 1 else loop_rps)
    ray_per_core = ratio(ray_rps, p.cpus)
    warm_rps = _rps(runs.ray_warm)
    startup_s = None
    if runs.ray_off and runs.ray_warm:
        startup_s = (median([r["pipeline_s"] for r in runs.ray_off])
                     - median([r["pipeline_s"] for r in runs.ray_warm]))
    ray_per_cpu_s = median([r["n_messages"] / r["cpu_seconds_run"] for r in runs.ray_off
                            if r.get("cpu_seconds_run")])
    loop_per_cpu_s = median([lp["n_messages"] / lp["cpu_seconds"] for lp in runs.loops
                             if lp.get("cpu_seconds")])
    loop_steps = {k: median([lp["seconds_by_step"][k] for lp in runs.loops])
                  for k in (runs.loops[0]["seconds_by_step"] if runs.loops else {})}
    text = {
        "n_messages": p.n_text,
        "stages": list(TEXT_STAGES),
        "quality_enabled": False,
        "repetitions": min(len(runs.ray_off), len(runs.loops)),
        "ray_num_cpus": p.cpus,
        "ray_records_per_s": rounded(ray_rps, 1),
        "ray_records_per_s_per_core": rounded(ray_per_core, 1),
        "loop_records_per_s": rounded(loop_rps, 1),
        "loop_records_per_s_per_core": rounded(loop_rps, 1),
        "features_redaction_ray_overhead_pct": rounded(overhead_pct(loop_rps, ray_per_core), 1),
        "warm_ray_records_per_s": rounded(warm_rps, 1),
        "warm_ray_records_per_s_per_core": rounded(ratio(warm_rps, p.cpus), 1),
        "features_redaction_ray_overhead_warm_pct": rounded(
            overhead_pct(loop_rps, ratio(warm_rps, p.cpus)), 1),
        "loop_all_cores_records_per_s_per_core": rounded(loop_all_cores, 1),
        "features_redaction_ray_overhead_all_cores_pct": rounded(
            overhead_pct(loop_all_cores, ray_per_core), 1),
        "features_redaction_ray_overhead_warm_all_cores_pct": rounded(
            overhead_pct(loop_all_cores, ratio(warm_rps, p.cpus)), 1),
        "ray_start_up_seconds": rounded(startup_s, 2),
        "ray_records_per_cpu_second": rounded(ray_per_cpu_s, 1),
        "loop_records_per_cpu_second": rounded(loop_per_cpu_s, 1),
        "ray_cpu_overhead_pct": rounded(overhead_pct(loop_per_cpu_s, ray_per_cpu_s), 1),
        "loop_seconds_by_step_median": {k: rounded(v, 2) for k, v in loop_steps.items()},
        "ray_stage_seconds_median": {
            s: rounded(median([r["stages"][s]["seconds"] for r in runs.ray_off]), 2)
            for s in TEXT_STAGES
        } if runs.ray_off else {},
        "runs_ray": [_compact_pipeline(r) for r in runs.ray_off],
        "runs_ray_warm": [_compact_pipeline(r) for r in runs.ray_warm],
        "runs_loop": [{k: lp[k] for k in ("wall_s", "cpu_seconds", "records_per_s",
                                          "peak_rss_mb", "load_average_after")}
                      for lp in runs.loops],
        "runs_loop_all_cores": [{k: lp[k] for k in ("processes", "wall_s", "cpu_seconds",
                                                    "records_per_s_per_core", "peak_rss_mb",
                                                    "load_average_after")}
                                for lp in runs.loops_parallel],
        "method": (
            "Both sides do the same work with the same functions: generate the messages "
            "(sources._generate_chunk, same seeds and chunks), the four stages (the same Stage "
            "objects via apply_stage, same batch sizes), write Parquet with sink.write_batch. "
            "Ray: RunResult.seconds (source to sink) on an embedded Ray with ray_num_cpus "
            "cores, quality off; loop: one process, one core. Overhead % = (loop records/s "
            "per core / Ray records/s per core - 1) x 100, the extra core-seconds per record "
            "that Ray spends. ray_cpu_overhead_pct uses the CPU seconds measured over every "
            "Ray process (driver, raylet, GCS, workers) instead of cores x wall time, which a "
            "shared machine distorts less. The warm figures repeat the Ray run after a run "
            "of the same pipeline at the same size on the same Ray: every worker it uses is "
            "started and has imported Ray Data and the stages, as the loop has (its clock "
            "starts after its imports), so the difference to the cold figure is the per-run "
            "start-up and what remains is the per-record overhead. The all-cores figures "
            "compare with the loop run in one process per core, side by side, each over every "
            "n-th chunk (bench_pipeline.py loop --procs): the rate per core when every core is "
            "busy, as Ray's are, which a single process on an otherwise idle machine exceeds "
            "(shared caches and memory bandwidth, the machine's other processes on the spare "
            "core). ray_start_up_seconds = median cold minus median warm RunResult.seconds: "
            "what starting the run's workers and Ray Data's actors costs each run."
        ),
    }
    speedup = ratio(ray_rps, ray_rps_1)
    scaling = {
        "n_messages": p.n_text,
        "stages": list(TEXT_STAGES),
        "records_per_s": {"1": rounded(ray_rps_1, 1), str(p.cpus): rounded(ray_rps, 1)},
        "records_per_s_per_core": {"1": rounded(ray_rps_1, 1),
                                   str(p.cpus): rounded(ray_per_core, 1)},
        "speedup": rounded(speedup, 3),
        "efficiency": rounded(ratio(speedup, p.cpus), 3),
        "runs_1_cpu": [_compact_pipeline(r) for r in runs.ray_one],
        "method": (
            f"The text pipeline (quality off) with runtime.ray_num_cpus 1 and {p.cpus}, each "
            f"run on a fresh embedded Ray in its own process; the {p.cpus}-CPU runs are those "
            "of features_redaction. Efficiency = speedup / cores."
        ),
    }
    if p.cpus == 1:
        scaling["note"] = "this machine has one usable core: nothing to scale to"
    return text, scaling


def summarize_validation(
    h: Harness, runs: TextRuns, full_pipeline_e2e_s: float | None
) -> dict[str, Any]:
    """(4) quality.enabled on vs off on the text pipeline."""
    on, off = runs.ray_on, runs.ray_off
    on_s = median([r["e2e_s"] for r in on])
    off_s = median([r["e2e_s"] for r in off])
    added = None if on_s is None or off_s is None else on_s - off_s
    est = None
    if added is not None and full_pipeline_e2e_s and h.plan.n_text == h.plan.n_pipeline:
        est = overhead_pct(full_pipeline_e2e_s, full_pipeline_e2e_s - added)
    return {
        "n_messages": h.plan.n_text,
        "stages": list(TEXT_STAGES),
        "repetitions": min(len(on), len(off)),
        "e2e_s_quality_on": rounded(on_s, 2),
        "e2e_s_quality_off": rounded(off_s, 2),
        "added_seconds": rounded(added, 2),
        "validation_overhead_pct": rounded(overhead_pct(on_s, off_s), 1),
        "full_pipeline_overhead_pct_estimate": rounded(est, 1),
        "stage_seconds_on": {s: rounded(median([r["stages"][s]["seconds"] for r in on]), 2)
                             for s in (on[0]["stages"] if on else {})},
        "stage_seconds_off": {s: rounded(median([r["stages"][s]["seconds"] for r in off]), 2)
                              for s in (off[0]["stages"] if off else {})},
        "runs_on": [_compact_pipeline(r) for r in on],
        "method": (
            "A/B of quality.enabled on the text pipeline (no model stages, so nothing slow "
            "hides the validation work; a full-pipeline A/B would take three more embedding "
            "runs of n messages). The quality-off runs are those of features_redaction. "
            "e2e_s (init_ray returned to run_pipeline returned) covers the raw GX suite in "
            "validate_raw, the GX import and context on each worker, the run-level checks, "
            "the score and the quality report. validation_overhead_pct = (on / off - 1) x 100 "
            "on this pipeline: an upper bound for the full one. "
            "full_pipeline_overhead_pct_estimate puts the same added seconds against the full "
            "pipeline's median e2e time (pipeline_vs_encode, quality on); it leaves out the "
            "derived suite (validate_derived: feature ranges, embedding norms), which the "
            "text pipeline does not run."
        ),
    }


def measure_memory(h: Harness, runs: TextRuns) -> dict[str, Any]:
    """(5) peak RSS over all Ray processes at a small and a 10x larger input, no embedding."""
    p = h.plan
    stages = ",".join(TEXT_STAGES)
    small, large = p.memory_sizes
    peaks: dict[int, list[dict[str, Any]]] = {small: [], large: []}
    if small == p.n_text and runs.ray_on:
        peaks[small] = list(runs.ray_on)
    for n in (small, large):
        if not peaks[n]:
            r = h.pipeline(f"memory n={n}", n, stages=stages, quality="on", cpus=p.cpus)
            if r is not None:
                peaks[n].append(r)
    peak = {n: median([r["memory"]["peak_rss_mb"] for r in rs]) for n, rs in peaks.items()}

    def median_run(rs: list[dict[str, Any]]) -> dict[str, Any] | None:
        return sorted(rs, key=lambda r: r["memory"]["peak_rss_mb"])[len(rs) // 2] if rs else None

    chosen = {n: median_run(rs) for n, rs in peaks.items()}
    return {
        "sizes": [small, large],
        "stages": list(TEXT_STAGES),
        "quality_enabled": True,
        "runs_per_size": {str(n): len(rs) for n, rs in peaks.items()},
        "peak_rss_mb": {str(n): rounded(v, 1) for n, v in peak.items()},
        "peak_rss_mb_by_role": {str(n): r["memory"]["peak_rss_mb_by_role"]
                                for n, r in chosen.items() if r},
        "other_processes": sorted({name for r in chosen.values() if r
                                   for name in r["memory"].get("other_processes", [])}),
        "max_processes": {str(n): r["memory"]["max_processes"] for n, r in chosen.items() if r},
        "object_store_memory_mb": {str(n): r.get("object_store_memory_mb")
                                   for n, r in chosen.items() if r},
        "records_per_s": {str(n): r["records_per_s"] for n, r in chosen.items() if r},
        "memory_growth_ratio": rounded(ratio(peak.get(large), peak.get(small)), 3),
        "method": (
            "A thread in the driver samples every 0.2 s the RSS of the driver and all its "
            "descendants (GCS, raylet, workers, Ray's helper processes) and keeps the largest "
            "sum. Each run is on a fresh Ray; the small size reuses the quality-on text runs "
            "when it has their size (median peak). Stages: the text stages, no embed, "
            "classify or validate_derived; quality on. RSS counts shared pages once per "
            "process, so the sums are upper bounds; the ratio is what matters. The raylet's "
            "RSS includes the object-store pages it has touched (the plasma store lives in "
            "the raylet), so growth there is blocks in flight, bounded by Ray Data's "
            "object-store budget rather than by the input size."
        ),
    }


def run_redaction(h: Harness) -> dict[str, Any]:
    args = [PY, str(BENCH / "bench_redaction.py")]
    if h.plan.quick:
        args += ["--rows", "1000", "--presidio-rows", "50"]
    r = h.call("redaction bench", args, h.plan.timeout_s["bench"])
    if r is None:
        return {"error": h.runs[-1].get("error"), "stderr_tail": h.runs[-1].get("stderr_tail")}
    regex = r.get("regex", {})
    presidio = r.get("presidio", {})
    return {
        "regex_recall": regex.get("recall"),
        "regex_batch_rows_per_s": regex.get("batch_redaction", {}).get("rows_per_s"),
        "regex_batch_rows_per_cpu_s": regex.get("batch_redaction", {}).get("rows_per_cpu_s"),
        "features_plus_redaction_rows_per_s": r.get("features_plus_redaction", {}).get(
            "rows_per_s"),
        "presidio_available": presidio.get("available"),
        "presidio_recall": presidio.get("recall"),
        "speedup_regex_vs_presidio": r.get("speedup_regex_vs_presidio"),
        "result": r,
    }


def run_store(h: Harness) -> dict[str, Any]:
    args = [PY, str(BENCH / "bench_store.py")] + (["--quick"] if h.plan.quick else [])
    r = h.call("store bench", args, h.plan.timeout_s["bench"])
    if r is None:
        return {"error": h.runs[-1].get("error"), "stderr_tail": h.runs[-1].get("stderr_tail")}
    recalls = {k: r.get(k, {}).get("default", {}).get("recall_at_10") for k in ("ivf", "hnsw")}
    measured = [v for v in recalls.values() if v is not None]
    return {
        "ann_recall_at_10": min(measured) if measured else None,
        "ann_recall_at_10_by_index": recalls,
        "sharded_equals_unsharded_top10": r.get("search", {}).get(
            "sharded_equals_unsharded_top10"),
        "result": r,
        "method": "ann_recall_at_10 is the lower of the IVF and HNSW stores' recall@10 "
                  "against exact search, at the default ivf_nprobe / hnsw_ef_search.",
    }


def run_serve(h: Harness) -> dict[str, Any]:
    script = BENCH / "bench_serve.py"
    if not script.is_file():
        return {"skipped": "bench/bench_serve.py does not exist yet"}
    args = [PY, str(script)] + (["--quick"] if h.plan.quick else [])
    r = h.call("serve bench", args, h.plan.timeout_s["bench"])
    if r is None:
        return {"error": h.runs[-1].get("error"), "stderr_tail": h.runs[-1].get("stderr_tail")}
    served = r.get("service_http", {})
    return {
        "serve_qps_ratio": r.get("comparison", {}).get("qps_ratio_service_vs_baseline"),
        "serve_p99_ms": served.get("p99_ms"),
        "serve_qps": served.get("qps"),
        "serve_errors": served.get("errors"),
        "baseline_qps": r.get("baseline_in_process", {}).get("qps"),
        "result": r,
    }


def run_onnx(h: Harness) -> dict[str, Any]:
    args = [PY, str(BENCH / "bench_onnx.py")] + (["--quick"] if h.plan.quick else [])
    r = h.call("onnx bench", args, h.plan.timeout_s["bench"])
    if r is None:
        return {"error": h.runs[-1].get("error"), "stderr_tail": h.runs[-1].get("stderr_tail")}
    keys = ("onnx_int8_speedup", "onnx_cosine_min", "onnx_cosine_mean", "macro_f1_torch",
            "macro_f1_onnx", "handwritten_macro_f1_torch", "handwritten_macro_f1_onnx", "met")
    return {**{k: r.get(k) for k in keys}, "result": r}


# --------------------------------------------------------------------------- summary, sizing


def meets(name: str, value: float | None) -> bool | None:
    if value is None or name not in TARGETS:
        return None
    op, bound = TARGETS[name]
    return value >= bound if op == ">=" else value <= bound


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 4)


def build_summary(m: dict[str, Any]) -> dict[str, Any]:
    """The headline figures; None wherever a figure was not measured."""

    def get(section: str, key: str) -> Any:
        value = m.get(section) or {}
        return value.get(key) if isinstance(value, dict) else None

    return {
        "pipeline_vs_encode_ratio": get("pipeline_vs_encode", "pipeline_vs_encode_ratio"),
        "embed_stage_vs_encode_ratio": get("pipeline_vs_encode", "embed_stage_vs_encode_ratio"),
        "features_redaction_ray_overhead_pct": get("features_redaction",
                                                   "features_redaction_ray_overhead_pct"),
        "features_redaction_ray_overhead_warm_pct": get(
            "features_redaction", "features_redaction_ray_overhead_warm_pct"),
        "features_redaction_ray_overhead_all_cores_pct": get(
            "features_redaction", "features_redaction_ray_overhead_all_cores_pct"),
        "features_redaction_ray_overhead_warm_all_cores_pct": get(
            "features_redaction", "features_redaction_ray_overhead_warm_all_cores_pct"),
        "ray_start_up_seconds": get("features_redaction", "ray_start_up_seconds"),
        "validation_overhead_pct": get("validation_overhead", "validation_overhead_pct"),
        "validation_overhead_full_pipeline_pct": get("validation_overhead",
                                                     "full_pipeline_overhead_pct_estimate"),
        "memory_growth_ratio": get("memory_growth", "memory_growth_ratio"),
        "ann_recall_at_10": get("store", "ann_recall_at_10"),
        "serve_qps_ratio": get("serve", "serve_qps_ratio"),
        "serve_p99_ms": get("serve", "serve_p99_ms"),
        "onnx_int8_speedup": get("onnx", "onnx_int8_speedup"),
        "onnx_cosine_min": get("onnx", "onnx_cosine_min"),
        "onnx_macro_f1_drop": _difference(get("onnx", "macro_f1_torch"),
                                          get("onnx", "macro_f1_onnx")),
        "pipeline_records_per_s": get("pipeline_vs_encode", "pipeline_records_per_s"),
        "encode_records_per_s": get("pipeline_vs_encode", "encode_records_per_s_all_threads"),
        "scaling_efficiency": get("scaling", "efficiency"),
    }


def build_sizing(m: dict[str, Any], cpus: int) -> dict[str, Any]:
    """Per-core rates and how to project them to a cluster (used by the docs)."""
    pve = m.get("pipeline_vs_encode") or {}
    text = m.get("features_redaction") or {}
    scaling = m.get("scaling") or {}
    # one embed actor's rate over the cores its torch threads use
    embed_core = ratio(pve.get("embed_actor_records_per_s"),
                       pve.get("embed_actor_torch_threads") or 1)
    # steady state: a run's start-up (ray_start_up_seconds) is paid once, whatever its size
    text_core = text.get("warm_ray_records_per_s_per_core") or text.get(
        "ray_records_per_s_per_core")
    pipe_core = ratio(pve.get("pipeline_records_per_s"), cpus)
    cost = None
    if embed_core and text_core:
        cost = 1 / embed_core + 1 / text_core
    example = None
    if cost:
        per_hour = 1_000_000 / 3600
        example = {
            "records": 1_000_000,
            "within_s": 3600,
            "cpu_cores_needed": round(per_hour * cost / 0.8, 1),
            "assumes": "80% of the cores doing useful work (scheduling, I/O, skew)",
        }
    return {
        "records_per_s_per_core": {
            "embedding_stage_cpu": rounded(embed_core, 1),
            "text_stages": rounded(text_core, 1),
            "full_pipeline_this_machine": rounded(pipe_core, 1),
        },
        "core_seconds_per_record": rounded(cost, 5),
        "scaling_efficiency_measured": scaling.get("efficiency"),
        "example": example,
        "method": (
            "CPU workers: a record costs about 1/embed_rate + 1/text_rate core-seconds "
            "(embedding stage rate over its actor's torch threads, text stages through Ray per "
            "core with the run's workers started (the start-up, ray_start_up_seconds, is paid "
            "once per run), both measured above; classify, validation and the sink are small "
            "next to them, see the stage breakdown). Cores needed for N records in T seconds "
            "= N / T x core_seconds_per_record / utilisation; give the embed stage "
            "ceil(N / T / embed_rate) actors (embed.min_actors/max_actors, one core each) and "
            "the rest to the text stages. Check the projection against the measured scaling "
            "efficiency on one node and re-measure on the target node type (cores differ in "
            "speed); with GPU embedding actors the text stages become the bottleneck and "
            "the embed rate must be measured on the GPU node."
        ),
    }


# --------------------------------------------------------------------------- report


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 100 else f"{value:,.1f}"
    return str(value)


def markdown(result: dict[str, Any]) -> str:
    """A short human report: headline table, then the figures behind it."""
    s = result["summary"]
    mach = result["machine"]
    lines = [
        f"# privacy-ray benchmarks — {result['date']} on {mach['hostname']} ({result['mode']})",
        "",
        f"Command: `{result['command']}` · total {result['total_s']:.0f} s"
        f"{' in this invocation' if result.get('resumed_from') else ''} · commit "
        f"`{(result['git'].get('commit') or 'unknown')[:12]}`"
        f"{' (local changes)' if result['git'].get('dirty') else ''}",
        "",
        f"Machine: {mach['usable_cores']} cores ({mach['cpu_model']}), {mach['memory_gb']} GB; "
        f"load average before {mach['load_average_before']}, after "
        f"{mach['load_average_after']}.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items() if v),
        "",
        "| figure | value | target | meets |",
        "|---|---|---|---|",
    ]
    for name, value in s.items():
        op, bound = TARGETS.get(name, ("", None))
        target = f"{op} {bound:g}" if bound is not None else ""
        lines.append(f"| {name} | {_fmt(value)} | {target} | {_fmt(meets(name, value))} |")
    m = result["measurements"]
    pve = m.get("pipeline_vs_encode") or {}
    if pve:
        lines += [
            "",
            f"## Pipeline vs bare encode ({pve['n_messages']} messages, "
            f"{pve['repetitions']} reps, {pve['ray_num_cpus']} CPUs)",
            "",
            f"Pipeline {_fmt(pve['pipeline_records_per_s'])} records/s; encoder alone "
            f"{_fmt(pve['encode_records_per_s_all_threads'])} texts/s on all threads, "
            f"{_fmt(pve['encode_records_per_s_actor_threads'])} on the embed actor's "
            f"{pve['embed_actor_torch_threads']} thread(s); embed stage in the pipeline "
            f"{_fmt(pve['embed_stage_records_per_s'])} records/s over its span with "
            f"{pve.get('embed_actors')} actor(s), "
            f"{_fmt(pve.get('embed_actor_records_per_s'))} records/s per actor.",
            "",
            "| stage | seconds (median, summed over batches) | share | records/s in stage |",
            "|---|---|---|---|",
        ]
        for st, v in pve["stage_breakdown_median"].items():
            lines.append(f"| {st} | {_fmt(v['seconds'])} | {_fmt(v['share_of_stage_time'])} | "
                         f"{_fmt(v['records_per_s_in_stage'])} |")
    t = m.get("features_redaction") or {}
    if t:
        lines += [
            "",
            f"## Features + redaction: Ray vs pandas loop ({t['n_messages']} messages)",
            "",
            "| | records/s | records/s per core | records per CPU-second |",
            "|---|---|---|---|",
            f"| Ray ({t['ray_num_cpus']} CPUs) | {_fmt(t['ray_records_per_s'])} | "
            f"{_fmt(t['ray_records_per_s_per_core'])} | {_fmt(t['ray_records_per_cpu_second'])} |",
            f"| Ray, warm workers | {_fmt(t.get('warm_ray_records_per_s'))} | "
            f"{_fmt(t.get('warm_ray_records_per_s_per_core'))} | |",
            f"| loop (1 process) | {_fmt(t['loop_records_per_s'])} | "
            f"{_fmt(t['loop_records_per_s_per_core'])} | "
            f"{_fmt(t['loop_records_per_cpu_second'])} |",
            f"| loop (one process per core) | | "
            f"{_fmt(t.get('loop_all_cores_records_per_s_per_core'))} | |",
            "",
            "Ray overhead per core against the one-process loop: "
            f"{_fmt(t['features_redaction_ray_overhead_pct'])} % (by measured CPU time: "
            f"{_fmt(t['ray_cpu_overhead_pct'])} %), with warm workers "
            f"{_fmt(t.get('features_redaction_ray_overhead_warm_pct'))} %. Against the loop "
            "on every core: "
            f"{_fmt(t.get('features_redaction_ray_overhead_all_cores_pct'))} %, with warm "
            f"workers {_fmt(t.get('features_redaction_ray_overhead_warm_all_cores_pct'))} %. "
            f"Start-up per run: {_fmt(t.get('ray_start_up_seconds'))} s.",
        ]
    sc = m.get("scaling") or {}
    if sc:
        lines += ["", f"## Scaling (text pipeline, {sc['n_messages']} messages)", "",
                  f"records/s by CPUs: {sc['records_per_s']}; speedup {_fmt(sc['speedup'])}, "
                  f"efficiency {_fmt(sc['efficiency'])}."]
    v = m.get("validation_overhead") or {}
    if v:
        lines += ["", f"## Validation overhead ({v['n_messages']} messages, text stages)",
                  "", f"quality on {_fmt(v['e2e_s_quality_on'])} s, off "
                  f"{_fmt(v['e2e_s_quality_off'])} s: +{_fmt(v['added_seconds'])} s = "
                  f"{_fmt(v['validation_overhead_pct'])} %; against the full pipeline about "
                  f"{_fmt(v['full_pipeline_overhead_pct_estimate'])} %."]
    mem = m.get("memory_growth") or {}
    if mem:
        lines += ["", "## Memory (text stages, peak RSS summed over all Ray processes)", "",
                  f"peak MB by size: {mem['peak_rss_mb']}; ratio "
                  f"{_fmt(mem['memory_growth_ratio'])}."]
    for name in ("store", "redaction", "serve", "onnx"):
        sub = m.get(name) or {}
        if not sub:
            continue
        shown = {k: v for k, v in sub.items() if k not in ("result", "method", "stderr_tail")}
        lines += ["", f"## {name} bench", "", ", ".join(f"{k} {_fmt(x)}"
                                                        for k, x in shown.items())]
    sizing = result.get("sizing") or {}
    if sizing:
        lines += ["", "## Sizing", "", f"records/s per core: {sizing['records_per_s_per_core']}; "
                  f"core-seconds per record {_fmt(sizing['core_seconds_per_record'])}."]
        if sizing.get("example"):
            ex = sizing["example"]
            lines.append(f"{ex['records']:,} records within {ex['within_s']} s need about "
                         f"{ex['cpu_cores_needed']} CPU cores ({ex['assumes']}).")
    reused = [r["label"] for r in result["runs"] if r.get("reused")]
    if reused:
        lines += ["", f"Resumed run: {len(reused)} measurement(s) reused from the stopped run "
                  f"in {result.get('resumed_from')} (their time is not in the total): "
                  f"{', '.join(reused)}."]
    failed = [r for r in result["runs"] if r.get("error")]
    if failed:
        lines += ["", "## Failed measurements", ""]
        lines += [f"- {r['label']}: {r['error']}" for r in failed]
    lines += ["", "Figures are medians over the repetitions; see bench/README.md for what "
              "each one measures and the JSON next to this file for every run."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def parse_sections(only: str | None, skip: str | None) -> tuple[str, ...]:
    def split(text: str | None) -> list[str]:
        names = [s.strip() for s in (text or "").split(",") if s.strip()]
        unknown = [s for s in names if s not in SECTIONS]
        if unknown:
            raise SystemExit(f"unknown section(s) {', '.join(unknown)}; "
                             f"choose from {', '.join(SECTIONS)}")
        return names

    chosen = split(only) or list(SECTIONS)
    dropped = set(split(skip))
    return tuple(s for s in chosen if s not in dropped)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 3, quick 1)")
    ap.add_argument("--only", default=None, help=f"comma-separated sections: {','.join(SECTIONS)}")
    ap.add_argument("--skip", default=None, help="comma-separated sections to leave out")
    ap.add_argument("--n", type=int, default=None,
                    help="messages of the pipeline, text and validation runs (default 20000, "
                         "quick 2000)")
    ap.add_argument("--memory-sizes", default=None,
                    help="small,large sizes of the memory runs (default 20000,200000; quick "
                         "5000,50000)")
    ap.add_argument("--encode-sample", type=int, default=None,
                    help="texts per encoder-baseline rep (default 2000, quick 500; 0: all)")
    ap.add_argument("--out-dir", type=Path, default=RESULTS_DIR, help="where results are written")
    ap.add_argument("--keep-work", action="store_true", help="keep every raw measurement JSON")
    ap.add_argument("--render", type=Path, default=None,
                    help="only write the Markdown table again from a results JSON")
    ap.add_argument("--resume", type=Path, default=None,
                    help="work directory of a stopped run: measurements it finished are reused "
                         "(run with the same options)")
    args = ap.parse_args(argv)
    if args.reps is not None and args.reps < 1:
        ap.error("--reps must be at least 1")
    if args.render is not None:
        result = json.loads(args.render.read_text(encoding="utf-8"))
        md = args.render.with_suffix(".md")
        md.write_text(markdown(result), encoding="utf-8")
        log(f"wrote {md}")
        return 0
    plan = Plan.make(args.quick, args.reps, parse_sections(args.only, args.skip))
    if args.n is not None:
        if args.n < 1:
            ap.error("--n must be at least 1")
        plan.n_pipeline = plan.n_text = args.n
    if args.memory_sizes:
        try:
            small, large = (int(x) for x in args.memory_sizes.split(","))
        except ValueError:
            ap.error("--memory-sizes takes two sizes, e.g. 5000,50000")
        plan.memory_sizes = (small, large)
    if args.encode_sample is not None:
        plan.encode_sample = args.encode_sample
    if args.resume is not None and not args.resume.is_dir():
        ap.error(f"--resume {args.resume}: no such directory")
    work = args.resume or Path(tempfile.mkdtemp(prefix="privacy-ray-bench-"))
    h = Harness(plan, work)
    started = time.perf_counter()
    started_at = utc_now()
    load_before = load_average()
    log(f"benchmarks ({'quick' if plan.quick else 'full'}): {', '.join(plan.sections)}; "
        f"{plan.reps} rep(s); work dir {work}")
    log("if stopped, resume with: .venv/bin/python bench/run.py "
        + " ".join([a for a in (argv if argv is not None else sys.argv[1:])
                    if a != "--resume" and Path(a) != args.resume] + ["--resume", str(work)]))
    measurements: dict[str, Any] = {}
    phases: dict[str, float] = {}

    def phase(name: str, fn, *fargs):
        t0 = time.perf_counter()
        out = fn(*fargs)
        phases[name] = round(time.perf_counter() - t0, 1)
        return out

    model_dir = None
    if "pipeline" in plan.sections:
        model = h.call("benchmark classifier", [PY, str(BENCH / "bench_pipeline.py"), "model"],
                       plan.timeout_s["bench"])
        model_dir = (model or {}).get("model_dir")
        measurements["pipeline_vs_encode"] = phase("pipeline", measure_pipeline, h, model_dir)
    need = set(plan.sections) & {"text", "validation", "memory"}
    text_runs = TextRuns()
    if need:
        text_runs = phase("text_family", run_text_family, h, need)
    if "text" in plan.sections:
        text, scaling = summarize_text(h, text_runs)
        measurements["features_redaction"] = text
        measurements["scaling"] = scaling
    if "validation" in plan.sections:
        full_e2e = median([r["e2e_s"] for r in
                           (measurements.get("pipeline_vs_encode") or {}).get("runs", [])])
        measurements["validation_overhead"] = summarize_validation(h, text_runs, full_e2e)
    if "memory" in plan.sections:
        measurements["memory_growth"] = phase("memory", measure_memory, h, text_runs)
    for name, fn in (("redaction", run_redaction), ("store", run_store), ("serve", run_serve),
                     ("onnx", run_onnx)):
        if name in plan.sections:
            measurements[name] = phase(name, fn, h)
    machine = machine_info()
    machine["load_average_before"] = load_before
    machine["load_average_after"] = load_average()
    result = {
        "benchmark": "privacy-ray",
        "mode": "quick" if plan.quick else "full",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "started_at": started_at,
        "finished_at": utc_now(),
        "total_s": round(time.perf_counter() - started, 1),
        "command": " ".join([".venv/bin/python bench/run.py",
                             *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine,
        "versions": versions(),
        "git": git_info(),
        "plan": asdict(plan),
        "summary": build_summary(measurements),
        "targets": {k: f"{op} {bound:g}" for k, (op, bound) in TARGETS.items()},
        "measurements": measurements,
        "sizing": build_sizing(measurements, plan.cpus),
        "phases_s": phases,
        "resumed_from": str(args.resume) if args.resume else None,
        "runs": h.runs,
    }
    result["meets_targets"] = {k: meets(k, v) for k, v in result["summary"].items()
                               if k in TARGETS}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{result['date']}-{host_slug()}" + ("-quick" if plan.quick else "")
    json_path = args.out_dir / f"{stem}.json"
    json_path.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    (args.out_dir / f"{stem}.md").write_text(markdown(result), encoding="utf-8")
    if not args.keep_work:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    log(f"wrote {json_path} and {stem}.md in {result['total_s']:.0f}s")
    print(json.dumps(result["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
