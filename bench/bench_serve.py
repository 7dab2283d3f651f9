"""Load test of the Serve app: a real HTTP load generator on loopback against the real app.

    python bench/bench_serve.py --out bench/results/serve.json           # 100k vectors, 60 s
    python bench/bench_serve.py --out /tmp/serve-quick.json --quick      # 20k vectors, 15 s

What it measures, in one run and one process tree:

1. Baseline: an in-process loop making the same calls the service makes per query, one query
   at a time: normalise + redact the text, encode it with MiniLM (``SentenceEncoder``), search
   the 4-shard store (``VectorStore.search``, k=10). Run with three thread settings (torch and
   FAISS defaults; FAISS on one thread; both on one thread) and the fastest one is the
   baseline, so the service is compared with the best the loop can do here.
2. Service: ``privacy-ray``'s Serve app (``build_app``, default options: ingress, embedder,
   classifier, one searcher per shard) on an embedded Ray with the machine's CPUs, driven by
   ``--clients`` concurrent HTTP/1.1 keep-alive clients (aiohttp) posting ``/search`` with a
   bearer token for ``--duration-s`` after a warm-up. Every non-200 answer or transport error
   counts as an error. Reports QPS and latency percentiles (client side, full round trip).
3. Floor: the same clients on ``GET /health`` - Serve's own HTTP path (proxy and ingress, no
   model, no shards), which every request pays.

CPU milliseconds per request are reported per component (proxy, ingress, embedder, shards,
Ray's own processes) from the processes' CPU clocks: unlike QPS and latency, they do not
depend on what else the (shared) machine is running, so runs on a busy machine stay
comparable. The load averages at start and end are recorded for the same reason.

Targets (issue): zero errors; QPS >= 0.5x the baseline loop; p99 <= 150 ms.

Data: vectors are built like ``bench/bench_store.py`` (mixtures of MiniLM embeddings of
generated messages, cached in ``~/.cache/privacy-ray/bench``). Queries are held-out generated
messages of at most 160 characters - the length of a search an agent types - never stored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("PRIVACY_RAY_HMAC_KEY", "bench-hmac-key-not-a-secret")

K = 10
SHARDS = 4
NOISE = 0.015
MAX_QUERY_CHARS = 160


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def percentiles(latencies_s: list[float]) -> dict[str, float]:
    if not latencies_s:
        return {}
    ms = np.asarray(latencies_s) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 1),
            "max_ms": round(float(ms.max()), 1), "mean_ms": round(float(ms.mean()), 1)}


# --------------------------------------------------------------------------- data


def texts_and_base(n_base: int, n_query: int, cache_dir: Path | None) -> dict[str, Any]:
    """Base messages (encoded, cached) for the stored vectors, and held-out query texts."""
    import hashlib

    from privacy_ray.model.embedder import SentenceEncoder, model_fingerprint
    from privacy_ray.synth import generate_messages

    msgs = generate_messages(int((n_base + n_query) * 3) + 200, seed=11)
    msgs = msgs.drop_duplicates("text").reset_index(drop=True)
    base = msgs.iloc[:n_base].reset_index(drop=True)
    rest = msgs.iloc[n_base:]
    queries = rest.loc[rest["text"].str.len() <= MAX_QUERY_CHARS, "text"].head(n_query).tolist()
    model = ("all-MiniLM-L6-v2", model_fingerprint("all-MiniLM-L6-v2"))
    key = hashlib.sha256("\x1f".join([*model, *base["text"]]).encode()).hexdigest()[:16]
    cached = cache_dir / f"serve-base-{key}.npy" if cache_dir else None
    if cached is not None and cached.is_file():
        emb = np.load(cached)
    else:
        enc = SentenceEncoder("all-MiniLM-L6-v2", device="cpu").load()
        emb = enc.encode(base["text"].tolist())
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            np.save(cached, emb)
    return {"base": base, "emb": emb, "queries": queries, "model": model,
            "cached": cached is not None and cached.is_file()}


def build_store(path: Path, data: dict[str, Any], n: int) -> Any:
    from privacy_ray.store import VectorStore

    rng = np.random.default_rng(0)
    emb, base = data["emb"], data["base"]
    i, j = rng.integers(0, len(emb), n), rng.integers(0, len(emb), n)
    w = rng.uniform(0.5, 1.0, (n, 1)).astype(np.float32)
    x = w * emb[i] + (1 - w) * emb[j] + NOISE * rng.standard_normal((n, emb.shape[1])).astype(
        np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    df = pd.DataFrame({
        "conversation_id": [f"conv-{k:07d}" for k in range(n)],
        "user_id": [f"user-{u}" for u in rng.integers(0, max(1, n // 3), n)],
        "date": pd.Timestamp("2024-06-01", tz="UTC") + pd.to_timedelta(
            rng.integers(0, 730, n), unit="D"),
        "channel": base["channel"].to_numpy()[i], "intent": base["label"].to_numpy()[i],
        "confidence": rng.uniform(0.3, 1.0, n).round(3),
        "snippet": base["text"].to_numpy()[i],
    })
    store = VectorStore.create(str(path), dim=emb.shape[1], embedding_model=data["model"],
                               num_shards=SHARDS)
    store.upsert(df, vectors=np.ascontiguousarray(x, dtype=np.float32))
    store.commit()
    return store


def small_model(cache: Path) -> Path:
    """A small classifier (900 messages, logreg), trained once and cached."""
    from privacy_ray.config import Settings
    from privacy_ray.model.classifier import save_bundle
    from privacy_ray.model.training import train
    from privacy_ray.synth import generate_messages

    out = cache / "serve-bench-model"
    if not (out / "metadata.json").is_file():
        log("training a small classifier for the app (once) ...")
        bundle, _ = train(generate_messages(900, seed=3), Settings(), families=("logreg",))
        save_bundle(bundle, out)
    return out


# --------------------------------------------------------------------------- baseline


def baseline_loop(store: Any, queries: list[str], seconds: float,
                  faiss_threads: int | None = None,
                  torch_threads: int | None = None) -> dict[str, Any]:
    """One query at a time, in this process: redact, encode, search (what the app does)."""
    import faiss
    import torch

    from privacy_ray.model.embedder import SentenceEncoder
    from privacy_ray.text import normalize_texts, redact_texts

    default_threads, default_torch = faiss.omp_get_max_threads(), torch.get_num_threads()
    if faiss_threads:
        faiss.omp_set_num_threads(faiss_threads)
    enc = SentenceEncoder("all-MiniLM-L6-v2", device="cpu", torch_threads=torch_threads).load()
    for q in queries[:5]:  # warm up
        store.search(enc.encode([q]), k=K)
    lat: list[float] = []
    t_end = time.perf_counter() + seconds
    n = 0
    started, cpu0 = time.perf_counter(), time.process_time()
    while time.perf_counter() < t_end:
        q = queries[n % len(queries)]
        t0 = time.perf_counter()
        cleaned = redact_texts(normalize_texts(pd.Series([q], dtype=object))).tolist()
        store.search(enc.encode(cleaned), k=K)
        lat.append(time.perf_counter() - t0)
        n += 1
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu0
    used_torch = torch.get_num_threads()
    faiss.omp_set_num_threads(default_threads)
    torch.set_num_threads(default_torch)
    return {"queries": n, "seconds": round(elapsed, 2), "qps": round(n / elapsed, 1),
            "cpu_ms_per_query": round(cpu * 1000 / max(n, 1), 1),
            "torch_threads": used_torch,
            "faiss_threads": faiss_threads or default_threads, **percentiles(lat)}


def cpu_snapshot() -> dict[int, tuple[str, float]]:
    """CPU seconds of this process and every process it started (the embedded Ray)."""
    import psutil

    me = psutil.Process()
    out = {}
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
            out[p.pid] = (" ".join(p.cmdline())[:80], t.user + t.system)
        except psutil.Error:
            continue
    return out


def _component(cmd: str, me: int, pid: int) -> str:
    if pid == me:
        return "load_generator_and_driver"
    for key in ("ingress", "embedder", "classifier", "shard-"):
        if f":{key}" in cmd:
            return "shards" if key == "shard-" else key
    if "ProxyActor" in cmd:
        return "http_proxy"
    return "ray_system"


def cpu_breakdown(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]],
                  requests: int) -> dict[str, float]:
    """CPU milliseconds per request by component: independent of other tenants' load."""
    me = os.getpid()
    out: dict[str, float] = {}
    for pid, (cmd, cpu) in after.items():
        delta = cpu - before.get(pid, (cmd, 0.0))[1]
        name = _component(cmd, me, pid)
        out[name] = out.get(name, 0.0) + delta
    per = {k: round(v * 1000 / max(requests, 1), 2) for k, v in sorted(out.items())}
    per["total_service"] = round(sum(v for k, v in per.items()
                                     if k != "load_generator_and_driver"), 2)
    return per


# --------------------------------------------------------------------------- load


class _CpuWindow:
    """Snapshots process CPU at the start and end of the measured window."""

    def start(self) -> None:
        self.before = cpu_snapshot()

    def stop(self, requests: int) -> dict[str, float]:
        return cpu_breakdown(self.before, cpu_snapshot(), requests)


async def load(url: str, token: str, queries: list[str], clients: int, warmup_s: float,
               duration_s: float, on_measure: _CpuWindow | None = None,
               get: bool = False) -> dict[str, Any]:
    """Closed loop: each client sends its next request when the previous one is answered
    (POST a search, or GET ``url`` when ``get``)."""
    import aiohttp

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    lat: list[float] = []
    errors: dict[str, int] = {}
    done = 0
    measuring = False
    stop = False

    async def client(cid: int, session: aiohttp.ClientSession) -> None:
        nonlocal done
        n = cid * 97
        while not stop:
            body = json.dumps({"text": queries[n % len(queries)], "k": K})
            n += 1
            t0 = time.perf_counter()
            try:
                call = (session.get(url) if get else
                        session.post(url, data=body, headers=headers))
                async with call as resp:
                    await resp.read()
                    status = resp.status
            except Exception as e:  # transport error: an error too
                status = type(e).__name__
            dt = time.perf_counter() - t0
            if measuring:
                if status == 200:
                    lat.append(dt)
                else:
                    errors[str(status)] = errors.get(str(status), 0) + 1
                done += 1

    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = [asyncio.create_task(client(c, session)) for c in range(clients)]
        await asyncio.sleep(warmup_s)
        if on_measure is not None:
            on_measure.start()
        measuring = True
        started = time.perf_counter()
        await asyncio.sleep(duration_s)
        measuring = False
        elapsed = time.perf_counter() - started
        cpu = on_measure.stop(done) if on_measure is not None else None
        stop = True
        await asyncio.gather(*tasks)
    n_err = sum(errors.values())
    return {"clients": clients, "seconds": round(elapsed, 2), "requests": done,
            "ok": len(lat), "errors": n_err, "error_kinds": errors,
            "qps": round(len(lat) / elapsed, 1), **percentiles(lat),
            **({"cpu_ms_per_request": cpu} if cpu else {})}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, Any]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="JSON file to write the results to.")
    ap.add_argument("--quick", action="store_true", help="20k vectors, 15 s of load.")
    ap.add_argument("--duration-s", type=float, default=None, help="Measured load (default 60).")
    ap.add_argument("--clients", type=int, default=16, help="Concurrent HTTP clients.")
    ap.add_argument("--vectors", type=int, default=None, help="Stored vectors (default 100k).")
    ap.add_argument("--baseline-s", type=float, default=None, help="Baseline loop duration.")
    ap.add_argument("--serve-option", action="append", default=[], metavar="KEY=VALUE",
                    help="Override a serve setting (the config's serve section, ServeConfig), "
                    "e.g. --serve-option search_batch_max_size=16. Repeatable.")
    ap.add_argument("--no-cache", action="store_true", help="Encode the base texts again.")
    ap.add_argument("--model", default=None,
                    help="Classifier model directory (default: a small one trained once; the "
                    "classifier is deployed but not exercised by this benchmark).")
    args = ap.parse_args(argv)

    n = args.vectors or (20_000 if args.quick else 100_000)
    duration = args.duration_s or (15.0 if args.quick else 60.0)
    warmup = 3.0 if args.quick else 8.0
    baseline_s = args.baseline_s or (15.0 if args.quick else 45.0)
    n_base, n_query = (300, 300) if args.quick else (2000, 1000)
    overrides: dict[str, Any] = {}
    for item in args.serve_option:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value) if value[:1] in "0123456789[{tf-" else value

    t_start = time.perf_counter()
    phases: dict[str, float] = {}
    cache = None if args.no_cache else Path.home() / ".cache" / "privacy-ray" / "bench"
    log(f"encoding {n_base} base texts (cached after the first run) ...")
    data = texts_and_base(n_base, n_query, cache)
    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    log(f"building a {SHARDS}-shard store of {n} vectors ...")
    store = build_store(tmp / "store", data, n)
    phases["data"] = round(time.perf_counter() - t_start, 1)
    queries = data["queries"]

    import faiss

    result: dict[str, Any] = {
        "bench": "serve",
        "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "faiss": faiss.__version__,
                    "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
        "data": {"vectors": n, "shards": SHARDS, "dim": int(data["emb"].shape[1]), "k": K,
                 "query_texts": len(queries), "max_query_chars": MAX_QUERY_CHARS,
                 "mean_query_chars": round(float(np.mean([len(q) for q in queries])), 1),
                 "base_from_cache": data["cached"]},
        "targets": {"errors": 0, "qps_vs_baseline_min": 0.5, "p99_ms_max": 150},
    }

    log(f"baseline: in-process redact + encode + search loop, 3 x {baseline_s / 3:.0f}s ...")
    t_phase = time.perf_counter()
    runs = [baseline_loop(store, queries, baseline_s / 3),
            baseline_loop(store, queries, baseline_s / 3, faiss_threads=1),
            baseline_loop(store, queries, baseline_s / 3, faiss_threads=1, torch_threads=1)]
    best = max(runs, key=lambda r: r["qps"])
    result["baseline_in_process"] = dict(best, note="the fastest of three thread settings: "
                                         "torch and FAISS defaults, FAISS on one thread, both "
                                         "on one thread (OpenMP teams spin on a busy machine)",
                                         runs=runs)
    phases["baseline"] = round(time.perf_counter() - t_phase, 1)
    log(f"  {runs}")

    import ray
    from ray import serve

    from privacy_ray.config import ServeConfig
    from privacy_ray.serve.app import build_app

    token = secrets.token_urlsafe(24)
    os.environ["PRIVACY_RAY_API_TOKENS"] = token  # inherited by the embedded Ray's workers
    t_phase = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR",
             log_to_driver=False)
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    app_args = {"store_path": str(tmp / "store"), "settings": {"serve": overrides},
                "model_dir": args.model or str(small_model(cache or tmp))}
    serve.run(build_app(app_args), name="privacy-ray-bench", route_prefix="/")
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while _get(base + "/ready")[0] != 200:
        if time.monotonic() > deadline:
            raise SystemExit(f"service not ready: {_get(base + '/ready')}")
        time.sleep(1)
    phases["deploy"] = round(time.perf_counter() - t_phase, 1)
    result["service_options"] = ServeConfig.model_validate(overrides).model_dump(
        include={"embedder_num_cpus", "search_batch_max_size", "search_batch_wait_s",
                 "search_max_concurrent_batches",
                 "embed_batch_max_texts", "embed_batch_wait_s", "shard_faiss_threads",
                 "redact_snippets", "access_log", "ingress_replicas", "num_replicas"})
    log(f"load: {args.clients} clients, {warmup:.0f}s warm-up + {duration:.0f}s measured ...")
    t_phase = time.perf_counter()
    served = asyncio.run(load(base + "/search", token, queries, args.clients, warmup, duration,
                              on_measure=_CpuWindow()))
    phases["load"] = round(time.perf_counter() - t_phase, 1)
    result["service_http"] = served
    log(f"  {served}")
    floor_s = 5.0 if args.quick else 15.0
    log(f"floor: GET /health with {args.clients} clients for {floor_s:.0f}s (Serve's own HTTP "
        f"path, no model, no shards) ...")
    floor = asyncio.run(load(base + "/health", token, queries, args.clients, 1.0, floor_s,
                             on_measure=_CpuWindow(), get=True))
    result["serve_http_floor_health"] = dict(
        floor, note="GET /health: proxy + ingress only; any endpoint costs at least this")
    status, ready = _get(base + "/ready")
    result["ready_after_load"] = status == 200
    log(f"  {floor}")
    serve.shutdown()
    ray.shutdown()

    b = result["baseline_in_process"]
    ratio = served["qps"] / b["qps"] if b["qps"] else None
    cpu = served.get("cpu_ms_per_request", {}).get("total_service")
    result["comparison"] = {
        "cpu_ms_per_query_service_vs_baseline": [cpu, b["cpu_ms_per_query"]],
        "qps_ratio_service_vs_baseline": round(ratio, 2) if ratio else None,
        "zero_errors": served["errors"] == 0,
        "meets_qps_target": bool(ratio and ratio >= 0.5),
        "meets_p99_target": served.get("p99_ms", 1e9) <= 150,
    }
    result["phases_s"] = phases
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["total_s"] = round(time.perf_counter() - t_start, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    log(f"wrote {out}: {result['comparison']}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
