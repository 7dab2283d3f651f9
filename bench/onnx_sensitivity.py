"""Which MatMuls of the int8 ONNX export cost the most accuracy: each left in float in turn.

    python bench/onnx_sensitivity.py --out /tmp/sensitivity.json            # 2,000 texts, seed 0
    python bench/onnx_sensitivity.py --out /tmp/s.json --keep-float NAME,NAME  # one combination
    python bench/onnx_sensitivity.py --out /tmp/s.json --base NAME  # the next one, given NAME

For every weight MatMul of the fused graph, keep it (and those of ``--base``) float, quantise
everything else, encode generated, redacted support messages with ``SentenceEncoder`` (default
long-text policy, as the bench does) and report the cosine against torch fp32: the worst text,
the 1st percentile, the mean. The MatMuls whose float version lifts the worst text most are the
candidates for ``privacy_ray.model.onnx_backend.FLOAT_MATMULS``; repeat with the best added to
``--base`` (a greedy search), then check the choice on other texts (the bench's seed is 7) and
its speed with ``bench/bench_onnx.py`` before adopting it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
for _key, _value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                     "TOKENIZERS_PARALLELISM": "false"}.items():
    os.environ.setdefault(_key, _value)

from bench_onnx import bench_texts, log  # noqa: E402

from privacy_ray.model import onnx_backend as ob  # noqa: E402
from privacy_ray.model.embedder import SentenceEncoder  # noqa: E402

MODEL = "all-MiniLM-L6-v2"


def _fused_graph(work: Path) -> Path:
    """The fp32 graph after ONNX Runtime's fusions: what the export quantises."""
    from sentence_transformers import SentenceTransformer

    from privacy_ray.model.embedder import resolve_model_path

    st = SentenceTransformer(resolve_model_path(MODEL), device="cpu")
    st[0].auto_model.set_attn_implementation("eager")
    ob._export_fp32(st, work / "fp32.onnx")
    ob._fuse(work / "fp32.onnx", work / "fused.onnx", st[0].auto_model.config)
    return work / "fused.onnx"


def measure(args: argparse.Namespace) -> dict[str, Any]:
    target = ob.detect_quantization_target()
    spec = ob.QUANTIZATION_SPECS[target]
    work = Path(tempfile.mkdtemp(prefix="onnx-sensitivity-"))
    try:
        # a complete export to borrow the tokenizer and manifest from; its model is replaced
        template, _ = ob.ensure_export(MODEL, cache_dir=work / "template", target=target)
        fused = _fused_graph(work)
        texts = bench_texts(args.n, args.seed)
        reference = SentenceEncoder(torch_threads=args.threads).load().encode(texts)

        def cosine(keep_float: tuple[str, ...]) -> dict[str, Any]:
            cache = work / "variant"
            shutil.rmtree(cache, ignore_errors=True)
            folder = ob.export_dir(MODEL, target, cache)
            shutil.copytree(template, folder)
            ob.quantize(fused, folder / ob.MODEL_FILE, spec, keep_float)
            enc = SentenceEncoder(backend="onnx", torch_threads=args.threads,
                                  onnx_cache_dir=str(cache)).load()
            cos = (enc.encode(texts) * reference).sum(axis=1)
            row = {"keep_float": list(keep_float), "min": round(float(cos.min()), 4),
                   "p1": round(float(np.percentile(cos, 1)), 4),
                   "mean": round(float(cos.mean()), 4),
                   "worst_text": texts[int(cos.argmin())][:80]}
            log(f"{','.join(keep_float) or 'all int8'}: min {row['min']}, mean {row['mean']}")
            return row

        base = tuple(args.base.split(",")) if args.base else ()
        rows = [cosine(base)]
        if args.keep_float:
            rows.append(cosine(base + tuple(args.keep_float.split(","))))
        else:
            rows += [cosine(base + (name,)) for name in ob.weight_matmuls(fused)
                     if name not in base]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"texts": args.n, "seed": args.seed, "target": target, "model": MODEL,
            "base": list(base), "variants": sorted(rows[1:], key=lambda r: -r["min"]),
            "base_only": rows[0]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="where to write the JSON figures")
    ap.add_argument("--n", type=int, default=2000, help="generated texts to encode")
    ap.add_argument("--seed", type=int, default=0, help="generator seed (the bench uses 7)")
    ap.add_argument("--threads", type=int, default=2, help="threads per encoder")
    ap.add_argument("--base", default=None,
                    help="comma-separated MatMul names kept float in every variant")
    ap.add_argument("--keep-float", default=None,
                    help="comma-separated MatMul names: measure only this combination")
    args = ap.parse_args(argv)
    result = measure(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
