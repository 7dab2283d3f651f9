"""Benchmark: the int8 ONNX embedding backend against bare PyTorch fp32, same run, same threads.

Measures:

* throughput of ``SentenceEncoder.encode`` with ``backend: torch`` and ``backend: onnx`` on the
  same generated, regex-redacted support messages (default 2,000), repetitions interleaved
  (torch, onnx, torch, onnx, ...) so a change in the machine's load hits both; medians;
* agreement of the two: cosine of every text's int8 vector with its fp32 vector (min, mean,
  percentiles, the worst texts), on the bench texts and on ``tests/data/handwritten_eval.jsonl``;
* the classifier gate: a logistic-regression model trained with each backend on the same
  generated data, as many messages as the default model is trained on
  (``classifier.training_messages``, 12,000: about 2,700 of them in held-out template
  families), macro-F1 on the held-out families and on the handwritten set, plus the
  torch-trained model fed ONNX vectors (what switching backends without retraining gives).

Targets (from the issue): speedup >= 2, cosine >= 0.98 for every text, macro-F1 within 0.01.
Nothing asserts a timing; the JSON records the figures, the targets, whether each was met, the
machine and its load average before and after.

Usage:
    python bench/bench_onnx.py --out runs/bench/onnx.json
    python bench/bench_onnx.py --out /tmp/onnx.json --quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TQDM_DISABLE": "1",
}.items():
    os.environ.setdefault(_key, _value)

from privacy_ray.config import Settings  # noqa: E402
from privacy_ray.model.embedder import SentenceEncoder  # noqa: E402

HANDWRITTEN = ROOT / "tests" / "data" / "handwritten_eval.jsonl"
TARGETS = {"onnx_int8_speedup": 2.0, "onnx_cosine_min": 0.98, "macro_f1_max_drop": 0.01}
PACKAGES = ("torch", "onnxruntime", "onnx", "sentence-transformers", "transformers", "numpy")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def bench_texts(n: int, seed: int) -> list[str]:
    """Generated support messages, PII-redacted as the pipeline embeds them."""
    from privacy_ray.synth import generate_messages
    from privacy_ray.text import make_redactor

    df = generate_messages(n, seed=seed)
    return make_redactor("regex").redact_texts(df["text"]).tolist()


def cosine_stats(a: np.ndarray, b: np.ndarray, texts: list[str]) -> dict[str, Any]:
    cos = (a * b).sum(axis=1)
    worst = np.argsort(cos)[:5]
    return {
        "n": len(cos),
        "min": float(cos.min()),
        "mean": float(cos.mean()),
        "p1": float(np.percentile(cos, 1)),
        "p5": float(np.percentile(cos, 5)),
        "share_below_0_98": float((cos < 0.98).mean()),
        "worst": [{"cosine": round(float(cos[i]), 4), "text": texts[i][:80]} for i in worst],
    }


def throughput(
    torch_enc: SentenceEncoder, onnx_enc: SentenceEncoder, texts: list[str], reps: int
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Interleaved repetitions of both encoders on the same texts; medians and every sample."""
    warm = texts[:64]
    torch_enc.encode(warm)
    onnx_enc.encode(warm)
    times: dict[str, list[float]] = {"torch": [], "onnx": []}
    vecs: dict[str, np.ndarray] = {}
    for rep in range(reps):
        for name, enc in (("torch", torch_enc), ("onnx", onnx_enc)):
            started = time.perf_counter()
            vecs[name] = enc.encode(texts)
            times[name].append(time.perf_counter() - started)
        log(
            f"rep {rep + 1}/{reps}: torch {times['torch'][-1]:.1f} s, "
            f"onnx {times['onnx'][-1]:.1f} s, load {_load()}"
        )
    med = {k: statistics.median(v) for k, v in times.items()}
    paired = [t / o for t, o in zip(times["torch"], times["onnx"], strict=True)]
    result = {
        "texts": len(texts),
        "mean_chars": round(float(np.mean([len(t) for t in texts])), 1),
        "reps": reps,
        "seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "torch_texts_per_s": round(len(texts) / med["torch"], 1),
        "onnx_texts_per_s": round(len(texts) / med["onnx"], 1),
        # each rep's torch/onnx pair ran back to back under the same load: the median of the
        # paired ratios is the headline; the ratio of the medians swings with the load
        "speedup": round(statistics.median(paired), 3),
        "speedup_per_rep": [round(x, 3) for x in paired],
        "speedup_ratio_of_medians": round(med["torch"] / med["onnx"], 3),
        "method": "interleaved reps of SentenceEncoder.encode (default long-text policy, "
        "token-budget batches of embedding.cpu_token_budget), same threads for torch and "
        "ONNX Runtime; speedup = median of per-rep torch/onnx ratios",
    }
    return result, vecs["torch"], vecs["onnx"]


def classifier_check(
    torch_enc: SentenceEncoder, onnx_enc: SentenceEncoder, n: int, seed: int
) -> dict[str, Any]:
    """Train logreg with each backend on the same data; held-out and handwritten macro-F1."""
    from privacy_ray.model.training import evaluate, train
    from privacy_ray.synth import generate_messages

    data = generate_messages(n, seed=seed)
    handwritten = pd.read_json(HANDWRITTEN, lines=True)
    settings = Settings()
    out: dict[str, Any] = {"train_messages": n, "handwritten_messages": len(handwritten)}
    bundles = {}
    for name, enc in (("torch", torch_enc), ("onnx", onnx_enc)):
        started = time.perf_counter()
        bundle, report = train(data, settings, families=("logreg",), seed=42, encoder=enc)
        bundles[name] = bundle
        held = report["families"]["logreg"]
        hand = evaluate(bundle, handwritten, enc)
        out[name] = {
            "heldout_macro_f1": round(held["macro_f1"], 4),
            "heldout_accuracy": round(held["accuracy"], 4),
            "heldout_n": held["n"],
            "handwritten_macro_f1": round(hand["macro_f1"], 4),
            "handwritten_accuracy": round(hand["accuracy"], 4),
            "seconds": round(time.perf_counter() - started, 1),
        }
        log(f"{name}: held-out macro-F1 {held['macro_f1']:.4f}, handwritten {hand['macro_f1']:.4f}")
    cross = evaluate(bundles["torch"], handwritten, onnx_enc)
    out["torch_model_onnx_vectors_handwritten_macro_f1"] = round(cross["macro_f1"], 4)
    out["switch_backend"] = switch_backend_check(torch_enc, onnx_enc, data, handwritten)
    return out


def switch_backend_check(
    torch_enc: SentenceEncoder, onnx_enc: SentenceEncoder, data: pd.DataFrame,
    handwritten: pd.DataFrame,
) -> dict[str, Any]:
    """One fp32-trained classifier scored with fp32 and with int8 vectors: what a user who
    switches ``embedding.backend`` to onnx gets from the model they already have.

    Trained on the training families of ``data`` only, scored on its held-out families (the
    same split ``train`` uses) and on the handwritten set.
    """
    from privacy_ray.model.training import _held_out_split, evaluate, train

    held = _held_out_split(data, 42)
    bundle, _ = train(data[~held].reset_index(drop=True), Settings(), families=("logreg",),
                      seed=42, encoder=torch_enc)
    out: dict[str, Any] = {"heldout_n": int(held.sum())}
    for name, enc in (("torch", torch_enc), ("onnx", onnx_enc)):
        out[f"heldout_macro_f1_{name}_vectors"] = round(
            evaluate(bundle, data[held], enc)["macro_f1"], 4)
        out[f"handwritten_macro_f1_{name}_vectors"] = round(
            evaluate(bundle, handwritten, enc)["macro_f1"], 4)
    out["heldout_macro_f1_drop"] = round(
        out["heldout_macro_f1_torch_vectors"] - out["heldout_macro_f1_onnx_vectors"], 4)
    log("switch backend, same fp32 model: held-out macro-F1 "
        f"{out['heldout_macro_f1_torch_vectors']:.4f} -> "
        f"{out['heldout_macro_f1_onnx_vectors']:.4f}")
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    load_start = _load()
    log(f"load average at start: {load_start}")
    torch_enc = SentenceEncoder(torch_threads=args.threads).load()
    started = time.perf_counter()
    onnx_enc = SentenceEncoder(
        backend="onnx", torch_threads=args.threads, onnx_cache_dir=args.cache_dir
    ).load()
    onnx_load_s = time.perf_counter() - started
    info = dict(onnx_enc.model.info)
    log(f"onnx model: {info['path']} (exported now: {info['exported_now']}, {onnx_load_s:.1f} s)")

    texts = bench_texts(args.n, args.seed)
    speed, vt, vo = throughput(torch_enc, onnx_enc, texts, args.reps)
    cos_bench = cosine_stats(vt, vo, texts)
    from privacy_ray.text import make_redactor

    hand_texts = (
        make_redactor("regex").redact_texts(pd.read_json(HANDWRITTEN, lines=True)["text"]).tolist()
    )
    cos_hand = cosine_stats(torch_enc.encode(hand_texts), onnx_enc.encode(hand_texts), hand_texts)
    log(
        f"speedup {speed['speedup']:.2f}x; cosine min {cos_bench['min']:.4f} "
        f"mean {cos_bench['mean']:.4f}"
    )
    clf = classifier_check(torch_enc, onnx_enc, args.train_n, args.seed + 1)
    load_end = _load()

    f1_t, f1_o = clf["torch"]["heldout_macro_f1"], clf["onnx"]["heldout_macro_f1"]
    hf1_t, hf1_o = clf["torch"]["handwritten_macro_f1"], clf["onnx"]["handwritten_macro_f1"]
    result = {
        "onnx_int8_speedup": speed["speedup"],
        "onnx_cosine_min": round(cos_bench["min"], 4),
        "onnx_cosine_mean": round(cos_bench["mean"], 4),
        "macro_f1_torch": f1_t,
        "macro_f1_onnx": f1_o,
        "handwritten_macro_f1_torch": hf1_t,
        "handwritten_macro_f1_onnx": hf1_o,
        "targets": TARGETS,
        "met": {
            "speedup": speed["speedup"] >= TARGETS["onnx_int8_speedup"],
            "cosine_min": cos_bench["min"] >= TARGETS["onnx_cosine_min"],
            "heldout_macro_f1": f1_o >= f1_t - TARGETS["macro_f1_max_drop"],
            "handwritten_macro_f1": hf1_o >= hf1_t - TARGETS["macro_f1_max_drop"],
            "heldout_macro_f1_same_model": (clf["switch_backend"]["heldout_macro_f1_drop"]
                                            <= TARGETS["macro_f1_max_drop"]),
        },
        "throughput": speed,
        "cosine_bench_texts": cos_bench,
        "cosine_handwritten": cos_hand,
        "classifier": clf,
        "onnx_export": {
            k: info.get(k)
            for k in (
                "path",
                "exported_now",
                "export_seconds",
                "quantization",
                "fused_operators",
                "probe_cosine_min",
                "probe_cosine_mean",
            )
        },
        "onnx_load_seconds": round(onnx_load_s, 2),
        "machine": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "threads_per_encoder": args.threads,
            "load_average_start": load_start,
            "load_average_end": load_end,
            "python": platform.python_version(),
        },
        "versions": _versions(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="where to write the JSON figures")
    parser.add_argument("--quick", action="store_true", help="400 texts, 1 rep, 600 to train")
    parser.add_argument("--n", type=int, default=2000, help="generated texts to encode")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions (>= 3)")
    parser.add_argument("--train-n", type=int, default=Settings().classifier.training_messages,
                        help="messages to train on (default: as many as the default model, "
                        "classifier.training_messages)")
    parser.add_argument(
        "--threads", type=int, default=min(2, os.cpu_count() or 1), help="threads per encoder"
    )
    parser.add_argument("--cache-dir", default=None, help="ONNX export cache (default ~/.cache)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.reps, args.train_n = min(args.n, 400), 1, min(args.train_n, 600)
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    log(f"wrote {args.out}")
    print(json.dumps({k: result[k] for k in list(result)[:7]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
