"""The int8 ONNX embedding backend: dependency errors, CPU presets, export cache, fidelity."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from privacy_ray.errors import ConfigError, DependencyError
from privacy_ray.model.embedder import SentenceEncoder
from privacy_ray.model.onnx_backend import (
    FLOAT_MATMULS,
    MANIFEST_FILE,
    MODEL_FILE,
    QUANTIZATION_SPECS,
    detect_quantization_target,
    export_dir,
    require_onnx,
    weight_matmuls,
)

DATA = Path(__file__).parent / "data" / "handwritten_eval.jsonl"

# --------------------------------------------------------------------------- fast


@pytest.mark.parametrize("module", ["onnxruntime", "onnx"])
def test_missing_dependency_names_the_pip_command(monkeypatch, tmp_path, module):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import <module>` raise ImportError
    with pytest.raises(DependencyError, match=rf"needs {module}: pip install .*{module}"):
        require_onnx()
    encoder = SentenceEncoder(backend="onnx", onnx_cache_dir=str(tmp_path))
    with pytest.raises(DependencyError, match="embedding.backend: torch"):
        encoder.load()
    assert not any(tmp_path.iterdir()), "nothing is exported without the dependency"


def test_onnx_backend_refuses_cuda(tmp_path):
    with pytest.raises(ConfigError, match="embedding.device"):
        SentenceEncoder(backend="onnx", device="cuda", onnx_cache_dir=str(tmp_path)).load()


@pytest.mark.parametrize(
    ("flags", "machine", "target"),
    [
        ("fpu sse avx avx2 avx512f avx512bw avx512_vnni", "x86_64", "avx512_vnni"),
        ("fpu sse avx avx2 avx512f avx512dq avx512bw", "x86_64", "avx512"),
        ("fpu sse avx avx2 fma", "x86_64", "avx2"),
        ("fpu sse sse2", "x86_64", "avx2"),  # old CPUs get the uint8 preset: no saturation
        ("fp asimd", "aarch64", "arm64"),
    ],
)
def test_quantization_target_from_cpu_flags(flags, machine, target):
    cpuinfo = f"processor\t: 0\nmodel name\t: test\nflags\t\t: {flags}\n"
    assert detect_quantization_target(cpuinfo, machine) == target
    assert QUANTIZATION_SPECS[target].target == target


def test_quantization_presets_match_optimum():
    # optimum's AutoQuantizationConfig: uint8 weights on AVX2 (no VNNI saturation), int8 else
    assert QUANTIZATION_SPECS["avx2"].weight_type == "QUInt8"
    for target in ("avx512", "avx512_vnni", "arm64"):
        assert QUANTIZATION_SPECS[target].weight_type == "QInt8"
    assert all(s.per_channel and s.weight_symmetric for s in QUANTIZATION_SPECS.values())


def test_quantize_keeps_named_matmuls_float_and_refuses_unknown_names(tmp_path):
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from privacy_ray.errors import ModelError
    from privacy_ray.model.onnx_backend import quantize

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.normal(size=(8, 8)).astype(np.float32), f"w{i}")
               for i in range(2)]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w0"], ["h"], name="first"),
         helper.make_node("MatMul", ["h", "w1"], ["y"], name="second")],
        "two", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 8])], weights)
    src = tmp_path / "two.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    assert weight_matmuls(src) == ["first", "second"]

    quantize(src, tmp_path / "q.onnx", QUANTIZATION_SPECS["avx2"], keep_float=("second",))
    ops = {n.name: n.op_type for n in onnx.load(str(tmp_path / "q.onnx")).graph.node}
    assert ops["second"] == "MatMul"  # still float
    assert "first" not in ops or ops["first"] != "MatMul"  # quantised (renamed or replaced)
    with pytest.raises(ModelError, match="no weight MatMul named third"):
        quantize(src, tmp_path / "q2.onnx", QUANTIZATION_SPECS["avx2"], keep_float=("third",))


# --------------------------------------------------------------------------- slow: one export


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One int8 export into a private cache; the encoder that did it."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    cache = tmp_path_factory.mktemp("onnx-cache")
    # a half-written folder where the export goes (not made by an export): replaced, not loaded
    stale = export_dir("all-MiniLM-L6-v2", detect_quantization_target(), cache)
    stale.mkdir(parents=True)
    (stale / MODEL_FILE).write_bytes(b"half a model")
    encoder = SentenceEncoder(backend="onnx", onnx_cache_dir=str(cache), torch_threads=2).load()
    return cache, encoder


@pytest.fixture(scope="module")
def torch_encoder():
    return SentenceEncoder(torch_threads=2).load()


def _varied_texts(n: int = 50) -> list[str]:
    from privacy_ray.text import make_redactor

    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    step = max(1, len(rows) // n)
    texts = [r["text"] for r in rows[::step]][:n]  # letters, chats, tickets, every label
    return make_redactor("regex").redact_texts(pd.Series(texts)).tolist()


@pytest.mark.slow
def test_vectors_are_384d_unit_float32(exported):
    _, encoder = exported
    texts = ["", "hi", "Please erase my account.", "word " * 600]
    vecs = encoder.encode(texts)
    assert vecs.shape == (4, 384)
    assert vecs.dtype == np.float32
    assert np.isfinite(vecs).all()
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert encoder.dimension == 384
    assert encoder.resolved_device == "cpu"
    assert encoder.encode([]).shape == (0, 384)


@pytest.mark.slow
def test_cosine_against_torch_fp32(exported, torch_encoder):
    _, encoder = exported
    texts = _varied_texts()
    assert len(texts) >= 45
    cos = (encoder.encode(texts) * torch_encoder.encode(texts)).sum(axis=1)
    assert cos.mean() >= 0.98, cos.mean()
    assert cos.min() >= 0.95, (cos.min(), texts[int(cos.argmin())])
    # order and batching do not change a text's vector beyond int8 noise
    again = encoder.encode(texts[::-1])[::-1]
    assert (again * encoder.encode(texts)).sum(axis=1).min() >= 0.99


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["head_tail", "chunk_mean"])
def test_long_text_policies_use_the_onnx_tokenizer(exported, policy):
    cache, _ = exported
    long_text = "I want a copy of all personal data you hold about me. " * 60
    onnx_enc = SentenceEncoder(backend="onnx", onnx_cache_dir=str(cache), long_text_policy=policy)
    torch_enc = SentenceEncoder(long_text_policy=policy)
    got = onnx_enc.load().encode([long_text, "short one"])
    want = torch_enc.load().encode([long_text, "short one"])
    assert (got * want).sum(axis=1).min() >= 0.98


@pytest.mark.slow
def test_concurrent_streams_encode_like_one_thread(exported):
    """Two batches at a time on one thread each give the vectors one thread gives, and a batch
    padded from ``tokenize``'s ids is the tokenizer's own padded batch."""
    cache, two = exported
    assert two.model.streams == 2
    one = SentenceEncoder(backend="onnx", onnx_cache_dir=str(cache), torch_threads=1).load()
    assert one.model.streams == 1
    texts = pd.read_json(DATA, lines=True)["text"].tolist()
    np.testing.assert_allclose(two.encode(texts), one.encode(texts), atol=1e-5)

    model = two.model
    batch = texts[:12]
    padded = model.tokenizer(batch, padding=True, truncation=True,
                             max_length=model.max_seq_length, return_tensors="np")
    feed = model._feed(model.tokenize(batch))
    for name, value in feed.items():
        np.testing.assert_array_equal(value, padded[name])


def test_export_is_cached_and_recorded(exported):
    cache, first = exported
    assert first.model.info["exported_now"] is True
    folders = list(cache.rglob(MODEL_FILE))
    assert len(folders) == 1, folders
    folder = folders[0].parent
    assert folder.parent.name == first.model.info["model_fingerprint"]
    assert not [p for p in folder.parent.iterdir() if ".tmp-" in p.name], "temp dir left behind"
    assert (folder / MODEL_FILE).stat().st_size > 1_000_000  # the stale stub was replaced
    model_mtime = (folder / MODEL_FILE).stat().st_mtime_ns

    second = SentenceEncoder(backend="onnx", onnx_cache_dir=str(cache)).load()
    assert second.model.info["exported_now"] is False
    assert (folder / MODEL_FILE).stat().st_mtime_ns == model_mtime
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert manifest["quantization"]["target"] == detect_quantization_target()
    assert manifest["dimension"] == 384
    assert manifest["probe_cosine_mean"] >= 0.95
    # the bundled model's most error-prone MatMul stays float (named nodes must exist)
    assert manifest["float_matmuls"] == list(FLOAT_MATMULS[manifest["model_fingerprint"]])
    # attention fused as MultiHeadAttention: Q, K and V are plain MatMuls, so every weight
    # MatMul left float in the int8 graph is one of the listed ones
    assert manifest["fused_operators"].get("MultiHeadAttention") == 6
    assert sorted(weight_matmuls(folder / MODEL_FILE)) == sorted(manifest["float_matmuls"])
    assert manifest["versions"]["onnxruntime"]
    vec = second.encode(["delete my data"])
    np.testing.assert_allclose(vec, first.encode(["delete my data"]), atol=1e-6)
