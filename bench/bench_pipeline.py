"""One pipeline measurement per process: the units ``bench/run.py`` is built from.

Each subcommand measures one thing in a fresh process (a fresh embedded Ray where Ray is
involved) and writes its figures as JSON, so measurements never share a Ray session, a warm
model or a heap:

    python bench/bench_pipeline.py model --out /tmp/m.json
    python bench/bench_pipeline.py pipeline --n 2000 --cpus 2 --model-dir DIR --out /tmp/p.json \\
        --save-texts /tmp/texts.parquet --ray-stats
    python bench/bench_pipeline.py pipeline --n 20000 --quality off \\
        --stages validate_raw,normalize,features,redact --out /tmp/t.json
    python bench/bench_pipeline.py encode --texts /tmp/texts.parquet --sample 3000 \\
        --threads all,1 --out /tmp/e.json
    python bench/bench_pipeline.py loop --n 20000 --stages validate_raw,normalize,features,redact \\
        --procs 2 --out /tmp/l2.json
    python bench/bench_pipeline.py loop --n 20000 --stages validate_raw,normalize,features,redact \\
        --out /tmp/l.json

``pipeline`` runs :func:`privacy_ray.pipelines.main.run_pipeline` on generated messages with
the committed ``config.yaml`` plus the given overrides, while a thread samples the memory and
CPU time of every process of the Ray session (driver, raylet, GCS, workers).
``encode`` is the bare-encoder baseline: ``SentenceTransformer.encode`` on a random sample of
the redacted texts a pipeline run wrote, at several batch sizes (the fastest counts). ``loop``
is the no-Ray baseline: the same generator, stage objects and sink function called in a plain
pandas loop in this one process.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_USAGE_STATS_ENABLED": "0",
}.items():
    os.environ.setdefault(_key, _value)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import BENCH_CACHE, ProcessTreeMonitor, load_average, log  # noqa: E402

TEXT_STAGES = ("validate_raw", "normalize", "features", "redact")
MODEL_STAGES = ("embed", "classify")
BENCH_MODEL_MESSAGES = 2000


def _settings(overrides: dict[str, Any]):
    """The committed config.yaml plus ``overrides``; the caller's environment is ignored so a
    stray ``PRIVACY_RAY_*`` variable cannot change what is measured."""
    from privacy_ray.config import load_config

    return load_config(path=str(ROOT / "config.yaml"), overrides=overrides, environ={})


def _set_overrides(items: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` options as config overrides (VALUE parsed as YAML)."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def _write(out: Path, result: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, sort_keys=True, default=str) + "\n", "utf-8")


# --------------------------------------------------------------------------- model


def bench_model_dir() -> Path:
    """Where the benchmark's small classifier lives: keyed by the embedding model's weights so
    a different model never reuses it."""
    from privacy_ray.model.embedder import model_fingerprint

    return BENCH_CACHE / f"pipeline-model-{model_fingerprint('all-MiniLM-L6-v2')}"


def cmd_model(args: argparse.Namespace) -> dict[str, Any]:
    """Train (once) a logistic-regression bundle on 2,000 generated messages.

    The default model (``ensure_model``) trains every family on 12,000 messages, about four
    minutes here; the pipeline's throughput depends on the embedding, the TF-IDF-SVD projector
    (same dimension) and one classifier call per batch, not on how well the classifier was fit.
    """
    target = Path(args.dir) if args.dir else bench_model_dir()
    started = time.perf_counter()
    trained = False
    if not (target / "metadata.json").is_file():
        from privacy_ray.model.classifier import save_bundle
        from privacy_ray.model.training import train
        from privacy_ray.synth import generate_messages

        log(f"training the benchmark classifier once into {target} ...")
        settings = _settings({}).settings
        bundle, _ = train(
            generate_messages(BENCH_MODEL_MESSAGES, seed=7), settings, families=("logreg",)
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        save_bundle(bundle, tmp)
        tmp.rename(target)
        trained = True
    return {
        "model_dir": str(target),
        "trained_now": trained,
        "training_messages": BENCH_MODEL_MESSAGES,
        "family": "logreg",
        "seconds": round(time.perf_counter() - started, 1),
    }


# --------------------------------------------------------------------------- pipeline


def _stage_table(result: Any) -> dict[str, dict[str, Any]]:
    out = {}
    for name, st in result.stages.items():
        out[name] = {
            "seconds": round(st.seconds, 3),
            "rows_in": st.rows_in,
            "batches": st.batches,
            "quarantined": st.quarantined,
            "records_per_s_in_stage": round(st.rows_in / st.seconds, 1) if st.seconds else None,
            "span_seconds": round(st.span_seconds, 3),
        }
        if name == "embed" and st.sums.get("embedding_rows"):
            out[name]["embedding_rows"] = int(st.sums["embedding_rows"])
    return out


def _save_texts(run_dir: str, dest: Path) -> int:
    """The redacted ``text`` column of a run's output, for the encoder baseline."""
    import pyarrow as pa
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    table = pads.dataset(f"{run_dir}/messages", format="parquet", partitioning="hive").to_table(
        columns=["text"]
    )
    dest.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"text": table.column("text")}), dest)
    return table.num_rows


def _warm_up(resolved: Any, n: int) -> float:
    """Run the same pipeline on ``n`` messages first, on the same Ray: the measured run then
    finds its workers started and their modules imported, as the no-Ray loop (timed after its
    imports) does. Returns the warm-up's seconds, Ray's start included."""
    from privacy_ray.pipelines.main import run_pipeline

    started = time.perf_counter()
    settings = resolved.settings
    warm_pipeline = settings.pipeline.model_copy(update={"n_messages": n})
    run_pipeline(resolved.model_copy(update={
        "settings": settings.model_copy(update={"pipeline": warm_pipeline})}))
    return round(time.perf_counter() - started, 3)


def cmd_pipeline(args: argparse.Namespace) -> dict[str, Any]:
    import ray

    from privacy_ray.pipelines.main import run_pipeline

    stages = args.stages.split(",") if args.stages else None
    output_dir = Path(args.output_dir or tempfile.mkdtemp(prefix="bench-pipeline-"))
    overrides: dict[str, Any] = {
        "pipeline.n_messages": args.n,
        "pipeline.output_dir": str(output_dir),
        "pipeline.stages": stages,
        "quality.enabled": {"on": True, "off": False}.get(args.quality),
        "runtime.ray_num_cpus": args.cpus,
        "classifier.model_dir": args.model_dir,
    }
    resolved = _settings({**overrides, **_set_overrides(args.set)})
    settings = resolved.settings
    monitor = ProcessTreeMonitor(interval_s=args.interval_s).start()
    marks: dict[str, float] = {}
    import privacy_ray.engine as engine

    real_init_ray = engine.init_ray

    def timed_init_ray(*a: Any, **kw: Any) -> dict[str, Any]:
        # run_pipeline starts its clock right after init_ray returns: mark the same moment.
        info = real_init_ray(*a, **kw)
        monitor.sample()
        marks["ray_up"] = time.perf_counter()
        marks["cpu_at_ray_up"] = monitor.cpu_seconds()
        return info

    engine.init_ray = timed_init_ray
    load_before = load_average()
    started = time.perf_counter()
    try:
        warmup_s = _warm_up(resolved, args.warmup) if args.warmup else None
        result = run_pipeline(resolved)
        ended = time.perf_counter()
        monitor.sample()
        cpu_total = monitor.cpu_seconds()
        cluster = ray.cluster_resources()
        embed_threads = (settings.embedding.torch_threads
                         or engine.actor_threads(settings.resources_for("embed")))
        if args.timeline:
            ray.timeline(filename=str(args.timeline))
    finally:
        engine.init_ray = real_init_ray
        ray.shutdown()
        mem = monitor.stop()
    summary = result.to_summary()
    ray_up = marks.get("ray_up", started)
    e2e_s = ended - ray_up
    out: dict[str, Any] = {
        "n_messages": args.n,
        "stages_configured": settings.pipeline.stages,
        "quality_enabled": settings.quality.enabled,
        "ray_num_cpus": settings.runtime.ray_num_cpus,
        "ray_cluster_cpus": cluster.get("CPU"),
        "object_store_memory_mb": round(cluster.get("object_store_memory", 0) / 2**20),
        "complete": result.complete,
        "reconciled": summary["reconciled"],
        "records_in": result.rows_in,
        "records_out": result.rows_out,
        "records_quarantined": result.rows_quarantined,
        "pipeline_s": round(result.seconds, 3),
        "e2e_s": round(e2e_s, 3),
        "startup_s": round(ray_up - started, 3),
        "warmup_messages": args.warmup or 0,
        "warmup_s": warmup_s,
        "wall_s": round(ended - started, 3),
        "records_per_s": round(result.rows_in / e2e_s, 2) if e2e_s > 0 else None,
        "records_per_s_pipeline_only": round(result.records_per_second, 2),
        "cpu_seconds_run": round(cpu_total - marks.get("cpu_at_ray_up", 0.0), 2),
        "stages": _stage_table(result),
        "embedding_quality": summary.get("embedding_quality"),
        "quality_score": summary.get("quality_score"),
        "memory": mem,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "embed_torch_threads": embed_threads,
        "resources": {
            name: settings.resources_for(name).model_dump()
            for name in ("read", *settings.pipeline.stages, "write")
        },
        "embedding_batch_size": settings.embedding.cpu_batch_size,
        "timing_note": "e2e_s: from init_ray returning (where RunResult's clock starts; the "
        "model bundle is loaded before) to run_pipeline returning, so it adds the quality "
        "report, lineage and summary to pipeline_s (RunResult.seconds: source to sink)",
    }
    if args.ray_stats:
        stats_path = Path(result.run_dir) / "stats.json"
        if stats_path.is_file():
            out["ray_data_stats"] = json.loads(stats_path.read_text("utf-8")).get(
                "ray_data_stats", ""
            )
    if args.save_texts:
        out["saved_texts"] = _save_texts(result.run_dir, Path(args.save_texts))
    if not args.keep_output:
        shutil.rmtree(output_dir, ignore_errors=True)
    return out


# --------------------------------------------------------------------------- encode


def cmd_encode(args: argparse.Namespace) -> dict[str, Any]:
    """Bare ``SentenceTransformer.encode`` on a random sample of the pipeline's redacted texts.

    The baseline is the library call itself (one call over the whole sample: it sorts every text
    by length, so its batches pad little), at each of ``--batch-sizes``; the best is the figure
    the pipeline is compared with, so no batch size is chosen to flatter the pipeline.
    """
    import numpy as np
    import pyarrow.parquet as pq
    import torch

    from privacy_ray.model.embedder import SentenceEncoder

    texts = pq.read_table(args.texts, columns=["text"]).column("text").to_pylist()
    texts = [t or "" for t in texts]
    if args.sample and args.sample < len(texts):
        rng = np.random.default_rng(args.seed)
        picked = rng.choice(len(texts), size=args.sample, replace=False)
        sample = [texts[i] for i in picked]
    else:
        sample = texts
    cfg = _settings({}).settings.embedding
    default_threads = torch.get_num_threads()
    model = SentenceEncoder.from_config(cfg).model.module  # the SentenceTransformer itself
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    runs = {}
    for spec in args.threads.split(","):
        threads = default_threads if spec == "all" else int(spec)
        torch.set_num_threads(threads)
        by_batch: dict[str, dict[str, Any]] = {}
        for batch_size in batch_sizes:
            model.encode(sample[:32], batch_size=batch_size)  # warm-up: allocations, kernels
            t0 = time.perf_counter()
            c0 = time.process_time()
            vectors = model.encode(
                sample, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
            )
            wall = time.perf_counter() - t0
            by_batch[str(batch_size)] = {
                "seconds": round(wall, 3),
                "cpu_seconds": round(time.process_time() - c0, 2),
                "records_per_s": round(len(sample) / wall, 2),
            }
        best = max(by_batch, key=lambda b: by_batch[b]["records_per_s"])
        runs[spec] = {
            "torch_threads": torch.get_num_threads(),
            "texts": len(sample),
            "records_per_s": by_batch[best]["records_per_s"],
            "best_batch_size": int(best),
            "by_batch_size": by_batch,
            "dim": int(vectors.shape[1]),
        }
        log(f"encode threads={spec}: {runs[spec]['records_per_s']} texts/s (batch {best})")
    return {
        "texts_available": len(texts),
        "sample": len(sample),
        "mean_chars": round(float(np.mean([len(t) for t in sample])), 1),
        "batch_sizes": batch_sizes,
        "max_seq_length": int(model.max_seq_length),
        "torch_default_threads": default_threads,
        "runs": runs,
        "load_average_after": load_average(),
    }


# --------------------------------------------------------------------------- loop


def _generator_options(settings: Any) -> dict[str, Any]:
    """The generator options ``run_pipeline`` hands the synthetic source."""
    gen = settings.generator
    if hasattr(gen, "generator_kwargs"):
        return gen.generator_kwargs()
    return {
        "label_mix": gen.label_mix,
        "start_date": gen.start_date,
        "days": gen.days,
        "n_users": gen.n_users,
        "typo_rate": gen.typo_rate,
    }


class _LoopPart:
    """One process's share of the no-Ray baseline: generator chunks ``part``, ``part + procs``,
    ... of ``read.batch_size`` rows -> stages (same objects, same batch sizes) ->
    ``write_batch`` once ``write.batch_size`` rows have gathered, one batch after another.
    Built (imports, stages, run folder) before the clock starts, as Ray's workers are warm."""

    def __init__(self, n: int, stages: str, sets: list[str], part: int = 0,
                 procs: int = 1) -> None:
        from privacy_ray.pipelines.main import build_stages
        from privacy_ray.runs import RunFolder
        from privacy_ray.sources import _generate_chunk, even_chunk_rows

        stages_cfg = stages.split(",")
        if any(s in MODEL_STAGES for s in stages_cfg):
            msg = ("the loop baseline covers the text stages only; drop embed/classify from "
                   "--stages")
            raise SystemExit(msg)
        self.settings = _settings({"pipeline.stages": stages_cfg, "pipeline.n_messages": n,
                                   "quality.enabled": False, **_set_overrides(sets)}).settings
        self.stages = build_stages(self.settings)
        chunk_rows = even_chunk_rows(n, self.settings.resources_for("read").batch_size)
        self.chunk_kwargs: dict[str, Any] = {
            "seed": self.settings.pipeline.seed,
            "chunk_rows": chunk_rows,
            "n_total": n,
            "options": _generator_options(self.settings),
        }
        if "kind" in inspect.signature(_generate_chunk).parameters:
            self.chunk_kwargs["kind"] = "messages"
        self.chunks = list(range(part, max(1, -(-n // chunk_rows)), procs))
        self.output_dir = Path(tempfile.mkdtemp(prefix="bench-loop-"))
        self.folder = RunFolder.create(str(self.output_dir))

    def run(self) -> dict[str, Any]:
        """Process this part's chunks; wall and CPU seconds, counts, seconds per step."""
        import pandas as pd

        from privacy_ray.pipelines.sink import write_batch
        from privacy_ray.sources import _generate_chunk
        from privacy_ray.stages.base import apply_stage

        settings = self.settings
        write_rows = settings.resources_for("write").batch_size
        seconds = {"generate": 0.0, **{s.name: 0.0 for s in self.stages}, "write": 0.0}
        rows_out = quarantined = 0
        pending: list[pd.DataFrame] = []  # processed rows waiting for a full write batch

        def write(frames: list[pd.DataFrame]) -> None:
            nonlocal rows_out, quarantined
            t0 = time.perf_counter()
            counts = write_batch(
                pd.concat(frames, ignore_index=True),
                run_uri=self.folder.uri,
                partition_by_date=settings.pipeline.partition_by_date,
                keep_original_text=settings.pipeline.keep_original_text,
            )
            rows_out += int(counts["rows_out"].sum())
            quarantined += int(counts["rows_quarantined"].sum())
            seconds["write"] += time.perf_counter() - t0

        t_start = time.perf_counter()
        c_start = time.process_time()
        for chunk in self.chunks:
            t0 = time.perf_counter()
            df = _generate_chunk({"id": [chunk]}, **self.chunk_kwargs)
            seconds["generate"] += time.perf_counter() - t0
            for stage in self.stages:
                t0 = time.perf_counter()
                size = settings.resources_for(stage.name).batch_size
                parts = [apply_stage(stage, df.iloc[i : i + size])[0]
                         for i in range(0, len(df), size)]
                df = pd.concat(parts, ignore_index=True)
                seconds[stage.name] += time.perf_counter() - t0
            pending.append(df)
            if sum(len(f) for f in pending) >= write_rows:  # Ray Data bundles blocks the same way
                write(pending)
                pending = []
        if pending:
            write(pending)
        ended = time.perf_counter()
        shutil.rmtree(self.output_dir, ignore_errors=True)
        return {
            "started": t_start,
            "ended": ended,
            "cpu_seconds": time.process_time() - c_start,
            "records_out": rows_out,
            "records_quarantined": quarantined,
            "seconds_by_step": seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }


def _loop_child(n: int, stages: str, sets: list[str], part: int, procs: int,
                barrier: Any, results: Any) -> None:
    """A spawned process of ``loop --procs``: set up, wait for every process, run its part."""
    loop = _LoopPart(n, stages, sets, part, procs)
    barrier.wait()
    results.put(loop.run())


def cmd_loop(args: argparse.Namespace) -> dict[str, Any]:
    """The no-Ray baseline, in one process or, with ``--procs P``, in P processes side by
    side, each over every P-th chunk: the rate per core with every core busy, as Ray's are.

    The P processes are started and set up first, then released together; the wall time runs
    from the release to the last one's end."""
    procs = max(1, args.procs)
    if procs == 1:
        parts = [_LoopPart(args.n, args.stages, args.set).run()]
        released = parts[0]["started"]
    else:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        barrier, results = ctx.Barrier(procs + 1), ctx.Queue()
        children = [ctx.Process(target=_loop_child,
                                args=(args.n, args.stages, args.set, part, procs, barrier,
                                      results))
                    for part in range(procs)]
        for child in children:
            child.start()
        barrier.wait()
        released = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes
        parts = [results.get(timeout=3600) for _ in children]
        for child in children:
            child.join()
    wall = max(p["ended"] for p in parts) - released
    steps = parts[0]["seconds_by_step"]
    return {
        "n_messages": args.n,
        "stages_configured": args.stages.split(","),
        "processes": procs,
        "records_out": sum(p["records_out"] for p in parts),
        "records_quarantined": sum(p["records_quarantined"] for p in parts),
        "wall_s": round(wall, 3),
        "cpu_seconds": round(sum(p["cpu_seconds"] for p in parts), 2),
        "records_per_s": round(args.n / wall, 2),
        "records_per_s_per_core": round(args.n / wall / procs, 2),
        "seconds_by_step": {k: round(sum(p["seconds_by_step"][k] for p in parts), 3)
                            for k in steps},
        "peak_rss_mb": round(max(p["peak_rss_mb"] for p in parts), 1),
        "load_average_after": load_average(),
    }


# --------------------------------------------------------------------------- CLI


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)

    m = sub.add_parser("model", help="train the benchmark's small classifier once")
    m.add_argument("--dir", default=None, help="model directory (default: in the bench cache)")
    m.add_argument("--out", required=True, type=Path)

    p = sub.add_parser("pipeline", help="run_pipeline on generated messages, monitored")
    p.add_argument("--n", type=int, required=True, help="generated messages")
    p.add_argument("--stages", default=None, help="comma-separated stages (default: config)")
    p.add_argument("--quality", choices=("on", "off"), default=None, help="quality.enabled")
    p.add_argument("--cpus", type=int, default=None, help="runtime.ray_num_cpus")
    p.add_argument("--model-dir", default=None, help="classifier.model_dir for model stages")
    p.add_argument("--output-dir", default=None, help="run folders (default: a temp dir)")
    p.add_argument("--keep-output", action="store_true", help="keep the run folder")
    p.add_argument("--save-texts", default=None, help="write the output texts here (Parquet)")
    p.add_argument("--ray-stats", action="store_true", help="include Ray Data's stats string")
    p.add_argument("--timeline", default=None, type=Path,
                   help="write Ray's task timeline here (Chrome trace JSON, chrome://tracing)")
    p.add_argument("--warmup", type=int, default=0, metavar="N",
                   help="first run the same pipeline on N messages on the same Ray, so the "
                   "measured run finds warm workers (its figures exclude the warm-up)")
    p.add_argument("--interval-s", type=float, default=0.5,
                   help="memory sampling interval (each sample costs the driver CPU time)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (YAML value), e.g. "
                   "pipeline.resources.features.num_cpus=1; repeatable")
    p.add_argument("--out", required=True, type=Path)

    e = sub.add_parser("encode", help="bare SentenceTransformer.encode on saved texts")
    e.add_argument("--texts", required=True, help="Parquet file with a text column")
    e.add_argument("--sample", type=int, default=0, help="random sample size (0: all texts)")
    e.add_argument("--threads", default="all", help="comma-separated torch thread counts or all")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--batch-sizes", default="8,16,32,64",
                   help="comma-separated encode batch sizes; the fastest is the baseline")
    e.add_argument("--out", required=True, type=Path)

    lp = sub.add_parser("loop", help="the text stages in a plain pandas loop, no Ray")
    lp.add_argument("--n", type=int, required=True)
    lp.add_argument("--stages", default=",".join(TEXT_STAGES))
    lp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="config override, as for pipeline (repeatable)")
    lp.add_argument("--procs", type=int, default=1,
                    help="run the loop in this many processes side by side, each over every "
                    "P-th chunk (the per-core rate with every core busy)")
    lp.add_argument("--out", required=True, type=Path)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "n", 1) < 1:
        raise SystemExit("--n must be at least 1")
    handler = {
        "model": cmd_model,
        "pipeline": cmd_pipeline,
        "encode": cmd_encode,
        "loop": cmd_loop,
    }[args.command]
    result = handler(args)
    _write(args.out, result)
    log(f"{args.command}: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
