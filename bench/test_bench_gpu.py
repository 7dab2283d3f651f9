"""The GPU benchmark's two halves, run on the CPU: what a lent GPU machine will be given."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent


@pytest.mark.slow
def test_prepare_then_run_on_the_cpu(tmp_path):
    folder = tmp_path / "gpu"
    subprocess.run([sys.executable, str(BENCH / "bench_gpu.py"), "prepare", "--dir", str(folder),
                    "--n", "30"], check=True, capture_output=True)
    # what travels to the GPU machine fits its 64 MiB limit on carried files
    assert sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) < 60 * 2**20

    out = tmp_path / "gpu.json"
    subprocess.run([sys.executable, str(BENCH / "bench_gpu.py"), "run", "--dir", str(folder),
                    "--out", str(out), "--device", "cpu", "--reps", "1", "--limit", "12",
                    "--batch-sizes", "4,8"], check=True, capture_output=True)
    result = json.loads(out.read_text())
    assert result["texts"] == 12 and result["device"] == "cpu" and result["mode"] == "gpu"
    assert result["command"].startswith("bench/bench_gpu.py run")
    assert set(result["seconds"]) == {"bare_bs4", "bare_bs8", "ours"}
    assert result["bare_best"] in {"bare_bs4", "bare_bs8"} and result["ours_vs_bare"] > 0

    # the fp16-rounded copy embeds like the bundled fp32 model
    from privacy_ray.model.embedder import SentenceEncoder

    texts = ["please delete my account", "where is my parcel", "stop emailing me"]
    copy = SentenceEncoder(model=str(folder / "model"), device="cpu").load().encode(texts)
    original = SentenceEncoder(device="cpu").load().encode(texts)
    assert np.min((copy * original).sum(axis=1)) > 0.999
