"""Benchmark: the GPU embedding path against bare ``SentenceTransformer.encode`` on the same GPU.

A GPU machine is not always at hand, and the one that is lent here (the ``device`` tool) has
PyTorch and sentence-transformers but cannot download anything and takes at most 64 MiB of
files. So the run is split in two:

    # here: texts (generated, regex-redacted, as the pipeline embeds them) and a half-precision
    # copy of the bundled model (45 MB instead of 91 MB; loaded back into fp32 on the GPU)
    .venv/bin/python bench/bench_gpu.py prepare --dir .gpu --n 20000
    # there, with .gpu (git-ignored) carried along:
    python3 bench/bench_gpu.py run --dir .gpu --out $OUT/gpu.json

``run`` needs only torch, sentence-transformers, pandas and pyarrow, not the rest of
privacy-ray's dependencies. It measures, interleaved (bare, ours, bare, ours, ...), medians:

* bare: ``SentenceTransformer.encode`` at several batch sizes, the fastest counts;
* ours: ``SentenceEncoder`` on the same device, the class the pipeline's ``embed`` actors use
  (long-text policy, ``embedding.gpu_batch_size``);

and writes the ratio ours / bare, the card, the versions and the peak GPU memory. ``--device
cpu`` runs the same comparison on the CPU (the test suite does, on a few texts). The weights are
fp16-rounded in the copy, so the vectors differ from the fp32 model's in the third decimal; the
timings do not depend on it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# TOKENIZERS_PARALLELISM is left alone: bare encode tokenises in parallel by default, and
# SentenceEncoder does on a GPU
for _key, _value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                     "TQDM_DISABLE": "1"}.items():
    os.environ.setdefault(_key, _value)

TEXTS_FILE = "texts.parquet"
MODEL_DIR = "model"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def prepare(folder: Path, n: int, seed: int) -> None:
    """Write the texts and the half-precision model copy into ``folder``."""
    import pandas as pd
    from safetensors.torch import load_file, save_file

    from privacy_ray.model.embedder import resolve_model_path
    from privacy_ray.synth import generate_messages
    from privacy_ray.text import make_redactor

    folder.mkdir(parents=True, exist_ok=True)
    texts = make_redactor("regex").redact_texts(generate_messages(n, seed=seed)["text"])
    pd.DataFrame({"text": texts.tolist()}).to_parquet(folder / TEXTS_FILE, index=False)
    src = Path(resolve_model_path("all-MiniLM-L6-v2"))
    dst = folder / MODEL_DIR
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.md"))
    for weights in src.glob("*.safetensors"):
        tensors = {k: v.half() if v.is_floating_point() else v for k, v in
                   load_file(str(weights)).items()}
        save_file(tensors, str(dst / weights.name), metadata={"format": "pt"})
    # transformers 5 loads weights in their stored dtype unless the config names one: without
    # this, both sides would run in fp16, which the pipeline's fp32 model never does
    config_file = dst / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["torch_dtype"] = config["dtype"] = "float32"
    config_file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    log(f"wrote {len(texts)} texts and the model to {folder} ({size / 2**20:.1f} MiB)")


def _timed(fn: Any, device: str) -> float:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def run(folder: Path, device: str, reps: int, batch_sizes: list[int],
        limit: int | None) -> dict[str, Any]:
    import pandas as pd
    import torch
    from sentence_transformers import SentenceTransformer

    from privacy_ray.model.embedder import SentenceEncoder

    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --device cpu, or on a GPU machine")
    texts = pd.read_parquet(folder / TEXTS_FILE)["text"].tolist()[:limit]
    model_path = str(folder / MODEL_DIR)
    bare = SentenceTransformer(model_path, device=device)
    ours = SentenceEncoder(model=model_path, device=device).load()
    warm = texts[:256]
    for bs in batch_sizes:
        bare.encode(warm, batch_size=bs, normalize_embeddings=True)
    ours.encode(warm)
    dtypes = {str(next(m.parameters()).dtype) for m in (bare, ours.model.module)}
    if dtypes != {"torch.float32"}:
        raise SystemExit(f"expected both models in float32, got {sorted(dtypes)}")
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times: dict[str, list[float]] = {f"bare_bs{bs}": [] for bs in batch_sizes}
    times["ours"] = []
    for rep in range(reps):
        for bs in batch_sizes:
            times[f"bare_bs{bs}"].append(_timed(
                lambda bs=bs: bare.encode(texts, batch_size=bs, normalize_embeddings=True),
                device))
        times["ours"].append(_timed(lambda: ours.encode(texts), device))
        log(f"rep {rep + 1}/{reps}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
    medians = {k: statistics.median(v) for k, v in times.items()}
    best = min((k for k in medians if k.startswith("bare")), key=medians.get)
    card = torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu"
    return {
        "mode": "gpu",
        "date": time.strftime("%Y-%m-%d"),
        "device": device,
        "card": card,
        "texts": len(texts),
        "reps": reps,
        "seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "texts_per_s": {k: round(len(texts) / v, 1) for k, v in medians.items()},
        "bare_best": best,
        "ours_vs_bare": round(medians[best] / medians["ours"], 3),
        "ours_batch_size": ours.batch_size,
        "peak_gpu_memory_mib": (round(torch.cuda.max_memory_allocated() / 2**20, 1)
                                if device == "cuda" else None),
        "tokenizers_parallelism": os.environ.get("TOKENIZERS_PARALLELISM", "unset (parallel)"),
        "versions": {"torch": torch.__version__, "cuda": torch.version.cuda,
                     "sentence_transformers": __import__("sentence_transformers").__version__,
                     "python": platform.python_version()},
        "method": "interleaved reps; medians; ours / the fastest bare batch size; weights are "
                  "an fp16-rounded copy of all-MiniLM-L6-v2 loaded as fp32",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="texts and the model copy, written here")
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--seed", type=int, default=7)
    r = sub.add_parser("run", help="the measurement, on the GPU machine")
    r.add_argument("--dir", type=Path, required=True)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    r.add_argument("--reps", type=int, default=3)
    r.add_argument("--batch-sizes", default="64,256,1024",
                   help="bare encode batch sizes to try (the fastest counts)")
    r.add_argument("--limit", type=int, default=None, help="encode only the first N texts")
    args = ap.parse_args(argv)
    if args.cmd == "prepare":
        prepare(args.dir, args.n, args.seed)
        return 0
    if not (args.dir / TEXTS_FILE).is_file():
        ap.error(f"{args.dir / TEXTS_FILE} not found: run 'bench_gpu.py prepare --dir {args.dir}'")
    sizes = [int(x) for x in args.batch_sizes.split(",")]
    result = run(args.dir, args.device, args.reps, sizes, args.limit)
    result["command"] = " ".join(["bench/bench_gpu.py", *(sys.argv[1:] if argv is None else argv)])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    log(f"ours / bare: {result['ours_vs_bare']} on {result['card']}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
