"""Int8 ONNX Runtime backend for the sentence encoder (``embedding.backend: onnx``), CPU only.

The bundled model is exported locally on first use (nothing is downloaded) into a cache folder
``<cache>/<model fingerprint>/int8-<cpu target>-ort<version>-f<format>/`` and reused afterwards:

1. torch's ONNX exporter traces the whole sentence-transformers stack (transformer, pooling,
   normalisation) with eager attention, so the graph has one ``sentence_embedding`` output;
2. ONNX Runtime's transformer optimizer fuses it (MultiHeadAttention, SkipLayerNorm, BiasGelu):
   the fused graph is what makes int8 pay off (in a trial here unfused int8 gained about 1.8x
   over torch, fused about 3x). Attention is fused as ``MultiHeadAttention``, which takes Q, K
   and V from three ordinary MatMuls, rather than as ``Attention``, which packs the three
   projections into one weight the quantiser either leaves float (a quarter of the weight
   FLOPs) or quantises per tensor (worst bench text 0.966);
3. ONNX Runtime's dynamic quantisation turns the MatMul weights into int8 (per channel) with
   the settings optimum (and so sentence-transformers' ``export_dynamic_quantized_onnx_model``)
   picks for the CPU's instruction set: ``avx512_vnni``, ``avx512``, ``avx2`` or ``arm64``.
   Unlike optimum, only MatMuls with constant weights are quantised (activation x activation
   products stay float), and the word-embedding table stays float (quantising it cost
   accuracy, no time). For a model listed in ``FLOAT_MATMULS`` (by weights fingerprint) the
   MatMuls named there stay float too: those whose int8 error hurt the worst texts most,
   found with ``bench/onnx_sensitivity.py``.
4. A probe compares the int8 model with torch on a few sentences; a broken export is refused.

Why not sentence-transformers' own ``backend="onnx"``: it needs ``optimum-onnx``, whose only
release pins ``transformers<4.58`` while sentence-transformers 6.2 needs ``transformers>=5``, so
the two cannot be installed together. This module needs only ``onnxruntime`` and ``onnx``.

Model identity: the int8 encoder is deliberately *not* a different embedding model. Its vectors
agree with the fp32 ones at cosine 0.996 on average (2,000 bench texts; the worst 0.984), and
a logistic-regression classifier trained on fp32 vectors (12,000 generated messages, as the
default model) scores 0.8671 macro-F1 with int8 ones on the held-out families against 0.8665
with fp32 ones, and 0.9445 on the handwritten set with either; one retrained on int8 vectors
scores 0.8649 vs 0.8671 held out and 0.952 on the handwritten set with either
(``bench/bench_onnx.py``, 2,739 held-out messages). So stores, classifier
artifacts and the default-model cache keep keying on ``embedding.model`` and its weights
fingerprint: switching backends needs no re-index, and a pipeline on torch/GPU can feed a Serve
app on onnx/CPU. Which backend and quantisation produced vectors is provenance, recorded in
``export.json`` and :attr:`OnnxSentenceModel.info`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from privacy_ray.errors import DependencyError, ModelError
from privacy_ray.model.embedder import pad_token_ids

log = logging.getLogger(__name__)

#: Bump when the export steps change: older cached exports are then ignored, not reused.
EXPORT_FORMAT_VERSION = 4
DEFAULT_CACHE_DIR = "~/.cache/privacy-ray/onnx"
MODEL_FILE = "model_int8.onnx"
MANIFEST_FILE = "export.json"
TOKENIZER_DIR = "tokenizer"
PIP_COMMAND = "pip install 'onnxruntime>=1.32' 'onnx>=1.23'"  # the versions tested
#: Operators whose weights become int8 (the attention products themselves, activation x
#: activation inside MultiHeadAttention, stay float).
QUANTIZED_OPS = ("MatMul",)
#: Below this cosine against torch on the probe sentences an export is considered broken.
MIN_PROBE_COSINE = 0.9
#: MatMuls left in float, per model (weights fingerprint, ``embedder.model_fingerprint``).
#: all-MiniLM-L6-v2: 5 of its 36 weight MatMuls, all in the first two layers, whose int8 error
#: reaches the worst texts (short chat lines) most. Chosen greedily with
#: ``bench/onnx_sensitivity.py --base`` on 2,000 generated texts (seed 0) and checked on seeds
#: 3 and 7: with every MatMul int8 the worst text's cosine against torch was 0.960 (seed 7);
#: with these float 0.983 / 0.986 / 0.984 (seeds 0 / 3 / 7), mean 0.996, at 2.04x torch where
#: the previous packed-Attention export (Q, K, V float) ran 1.87x (5 interleaved reps each).
FLOAT_MATMULS: dict[str, tuple[str, ...]] = {
    "dc4b39194f477ed9": (
        "/st/st.0/encoder/layer.0/output/dense/MatMul",
        "/st/st.0/encoder/layer.1/attention/self/query/MatMul",
        "/st/st.0/encoder/layer.1/attention/self/value/MatMul",
        "/st/st.0/encoder/layer.1/intermediate/dense/MatMul",
        "/st/st.0/encoder/layer.1/output/dense/MatMul",
    ),
}
#: Model types whose graphs ONNX Runtime's "bert" fusions understand.
_FUSABLE_MODEL_TYPES = {"bert", "roberta", "xlm-roberta", "camembert", "electra"}
_PROBES = (
    "Please delete my account and every piece of data you hold about me.",
    "I would like a copy of all personal data you process about me under Article 15 GDPR.",
    "Stop selling my personal information to third parties.",
    "My package never arrived, can you check the tracking number?",
    "How long do you keep my chat transcripts?",
    "thanks",
    "",
    "Hello, I changed my address last month but the invoice still shows the old one. " * 8,
)


@dataclass(frozen=True)
class QuantizationSpec:
    """ONNX Runtime dynamic-quantisation settings for one CPU family (as in optimum's presets).

    Activations are always uint8 in dynamic quantisation. AVX2 without VNNI can saturate the
    u8 x s8 products, so its preset uses uint8 weights; AVX-512 VNNI and ARM64 use int8 weights.
    """

    target: str
    weight_type: str  # "QInt8" | "QUInt8"
    per_channel: bool = True
    reduce_range: bool = False
    weight_symmetric: bool = True
    activation_symmetric: bool = False


QUANTIZATION_SPECS: dict[str, QuantizationSpec] = {
    "avx512_vnni": QuantizationSpec("avx512_vnni", "QInt8"),
    "avx512": QuantizationSpec("avx512", "QInt8"),
    "avx2": QuantizationSpec("avx2", "QUInt8"),
    "arm64": QuantizationSpec("arm64", "QInt8"),
}


def require_onnx() -> None:
    """Raise :class:`DependencyError` with the pip command when onnxruntime or onnx is missing."""
    missing = []
    for module in ("onnxruntime", "onnx"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        msg = (
            f"embedding.backend 'onnx' needs {' and '.join(missing)}: {PIP_COMMAND} "
            "(or pip install 'privacy-ray[onnx]'), or set embedding.backend: torch"
        )
        raise DependencyError(msg)


def detect_quantization_target(cpuinfo: str | None = None, machine: str | None = None) -> str:
    """The quantisation preset for this CPU: ``avx512_vnni``, ``avx512``, ``avx2`` or ``arm64``.

    Reads the flags of ``/proc/cpuinfo`` (or the given text). Where they cannot be read (macOS,
    Windows) x86 falls back to ``avx2``, whose uint8 weights are exact on every x86 CPU.
    """
    machine = (machine or platform.machine()).lower()
    if machine in {"arm64", "aarch64", "armv8l", "armv8b"}:
        return "arm64"
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in {"flags", "Features"}:
            flags.update(value.split())
            break
    if {"avx512_vnni", "avx512vnni"} & flags:
        return "avx512_vnni"
    if {"avx512f", "avx512bw"} <= flags:
        return "avx512"
    return "avx2"


def export_dir(model: str, target: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the int8 export of ``model`` for ``target`` lives (it may not exist yet)."""
    import onnxruntime

    from privacy_ray.model.embedder import model_fingerprint

    root = Path(cache_dir or DEFAULT_CACHE_DIR).expanduser()
    ort_version = ".".join(onnxruntime.__version__.split(".")[:2])
    name = f"int8-{target}-ort{ort_version}-f{EXPORT_FORMAT_VERSION}"
    return root / model_fingerprint(model) / name


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's and quantiser's advice (warnings, root-logger lines) for a moment."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def _export_fp32(st: Any, path: Path) -> list[str]:
    """Trace the sentence-transformers stack to ONNX; returns the input names, in order."""
    import torch

    tokenizer = st.tokenizer
    sample = tokenizer(
        ["a short probe", "a somewhat longer probe sentence for the exporter"],
        padding=True,
        return_tensors="pt",
    )
    names = [n for n in ("input_ids", "token_type_ids", "attention_mask") if n in sample]

    class _Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.st = st

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.st(dict(zip(names, tensors, strict=True)))["sentence_embedding"]

    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["sentence_embedding"] = {0: "batch"}
    with _quiet(), torch.no_grad():
        torch.onnx.export(
            _Wrapper().eval(),
            tuple(sample[n] for n in names),
            str(path),
            input_names=names,
            output_names=["sentence_embedding"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,  # the TorchScript exporter handles dynamic batch x sequence axes
        )
    return names


def _fuse(src: Path, dst: Path, config: Any) -> dict[str, int]:
    """ONNX Runtime's transformer fusions; returns the fused-operator counts ({} if skipped)."""
    model_type = getattr(config, "model_type", "")
    if model_type not in _FUSABLE_MODEL_TYPES:
        shutil.copyfile(src, dst)
        return {}
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    # MultiHeadAttention takes Q, K and V from three plain MatMuls, which dynamic quantisation
    # then turns into per-channel int8 like the others; the Attention op would keep the
    # packed QKV projection float (or quantise it per tensor, which cost too much accuracy)
    options.use_multi_head_attention = True
    try:
        with _quiet():
            optimized = optimize_model(
                str(src),
                model_type="bert",
                num_heads=int(config.num_attention_heads),
                hidden_size=int(config.hidden_size),
                opt_level=0,  # graph fusions only; runtime optimisations are the session's job
                optimization_options=options,
            )
            optimized.save_model_to_file(str(dst))
    except Exception as e:  # fusions are an optimisation: fall back to the plain graph
        log.warning("ONNX transformer fusions failed (%s); quantising the unfused graph", e)
        shutil.copyfile(src, dst)
        return {}
    return {k: int(v) for k, v in optimized.get_fused_operator_statistics().items() if v}


def weight_matmuls(path: str | os.PathLike) -> list[str]:
    """Names of the MatMul nodes whose second input is a constant: the ones quantised."""
    import onnx

    graph = onnx.load(str(path)).graph
    constants = {init.name for init in graph.initializer}
    return [n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] in constants]


def quantize(src: str | os.PathLike, dst: str | os.PathLike, spec: QuantizationSpec,
             keep_float: tuple[str, ...] = ()) -> None:
    """Dynamic int8 quantisation of ``src``'s weight MatMuls, but those named in ``keep_float``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    missing = sorted(set(keep_float) - set(weight_matmuls(src))) if keep_float else []
    if missing:
        msg = f"no weight MatMul named {', '.join(missing)} in {src} to keep in float"
        raise ModelError(msg)
    with _quiet():
        quantize_dynamic(
            str(src),
            str(dst),
            op_types_to_quantize=list(QUANTIZED_OPS),
            nodes_to_exclude=list(keep_float),
            per_channel=spec.per_channel,
            reduce_range=spec.reduce_range,
            weight_type=getattr(QuantType, spec.weight_type),
            extra_options={
                "WeightSymmetric": spec.weight_symmetric,
                "ActivationSymmetric": spec.activation_symmetric,
                "MatMulConstBOnly": True,
                "DefaultTensorType": 1,  # float: fused contrib ops defeat shape inference
            },
        )


def _export(model: str, target: str, final: Path) -> None:
    """Export, fuse, quantise and probe into a temporary folder, then rename it into place."""
    from sentence_transformers import SentenceTransformer

    from privacy_ray.model.embedder import model_fingerprint, resolve_model_path

    started = time.perf_counter()
    path = resolve_model_path(model)
    spec = QUANTIZATION_SPECS[target]
    try:
        st = SentenceTransformer(path, device="cpu")
    except Exception as e:
        msg = (
            f"cannot load embedding model {model!r} from {path} to export it to ONNX: "
            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}; set embedding.model to "
            "a local sentence-transformers directory"
        )
        raise ModelError(msg) from e
    transformer = st[0]
    config = transformer.auto_model.config
    with contextlib.suppress(Exception):  # eager attention traces to a graph ORT can fuse
        transformer.auto_model.set_attn_implementation("eager")
    max_len = int(getattr(st, "max_seq_length", None) or 256)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        work = tmp / "work"
        work.mkdir()
        try:
            names = _export_fp32(st, work / "fp32.onnx")
        except Exception as e:
            msg = (
                f"cannot export {model!r} to ONNX ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''}); set embedding.backend: torch"
            )
            raise ModelError(msg) from e
        fused = _fuse(work / "fp32.onnx", work / "fused.onnx", config)
        keep_float = FLOAT_MATMULS.get(model_fingerprint(model), ()) if fused else ()
        quantize(work / "fused.onnx", tmp / MODEL_FILE, spec, keep_float)
        st.tokenizer.save_pretrained(str(tmp / TOKENIZER_DIR))
        shutil.rmtree(work)

        import onnx
        import onnxruntime
        import sentence_transformers
        import torch
        import transformers

        manifest: dict[str, Any] = {
            "format_version": EXPORT_FORMAT_VERSION,
            "model": model,
            "model_path": path,
            "model_fingerprint": model_fingerprint(model),
            "model_type": getattr(config, "model_type", None),
            "dimension": int(st.get_embedding_dimension()),
            "max_seq_length": max_len,
            "do_lower_case": bool(getattr(transformer, "do_lower_case", False)),
            "inputs": names,
            "output": "sentence_embedding",
            "quantization": asdict(spec),
            "quantized_ops": list(QUANTIZED_OPS),
            "float_matmuls": list(keep_float),
            "fused_operators": fused,
            "versions": {
                "onnxruntime": onnxruntime.__version__,
                "onnx": onnx.__version__,
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "sentence_transformers": sentence_transformers.__version__,
            },
        }
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest))
        probe = list(_PROBES)
        ref = st.encode(
            probe, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        got = OnnxSentenceModel(tmp, threads=None, max_seq_length=max_len).encode(probe)
        cos = (ref * got).sum(axis=1)
        if not np.isfinite(cos).all() or float(cos.min()) < MIN_PROBE_COSINE:
            msg = (
                f"the int8 ONNX export of {model!r} disagrees with torch (probe cosine "
                f"{float(np.nan_to_num(cos).min()):.3f} < {MIN_PROBE_COSINE}); "
                "set embedding.backend: torch"
            )
            raise ModelError(msg)
        manifest["probe_cosine_min"] = round(float(cos.min()), 5)
        manifest["probe_cosine_mean"] = round(float(cos.mean()), 5)
        manifest["export_seconds"] = round(time.perf_counter() - started, 2)
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is as readable as ~/.cache
        try:
            tmp.rename(final)
        except OSError:
            if not _complete(final):
                raise
            # another process finished the same export first: keep theirs
        log.info(
            "exported %s to int8 ONNX (%s) in %.1f s: %s",
            model,
            target,
            manifest["export_seconds"],
            final,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _complete(folder: Path) -> bool:
    return (folder / MANIFEST_FILE).is_file() and (folder / MODEL_FILE).is_file()


def ensure_export(
    model: str,
    cache_dir: str | os.PathLike | None = None,
    target: str | None = None,
) -> tuple[Path, bool]:
    """The folder of ``model``'s int8 export, exporting it first if needed; ``(dir, exported)``.

    Concurrent callers (several actors starting at once) may each export; the first rename wins
    and the others discard their copy, so a reader never sees a half-written folder.
    """
    require_onnx()
    target = target or detect_quantization_target()
    if target not in QUANTIZATION_SPECS:
        msg = f"unknown quantisation target {target!r}; use one of {', '.join(QUANTIZATION_SPECS)}"
        raise ValueError(msg)
    final = export_dir(model, target, cache_dir)
    if _complete(final):
        return final, False
    if final.exists() and not _complete(final):
        # exports appear by an atomic rename, so this folder was left by hand: start over
        shutil.rmtree(final, ignore_errors=True)
    _export(model, target, final)
    return final, True


class OnnxSentenceModel:
    """The part of ``SentenceTransformer`` that ``SentenceEncoder`` uses, run by ONNX Runtime.

    ``tokenizer`` is the model's own (saved next to the graph) so the long-text policies work as
    with torch; texts are tokenised like sentence-transformers does (longest-first truncation at
    ``max_seq_length``, padding per batch) and sorted by length to cut padding.

    With ``threads`` > 1 the model runs that many batches at once, each on one thread, instead of
    one batch at a time on ``threads`` threads: the int8 kernels and the float operators around
    them (attention, layer norms) are too small per batch to keep two threads busy. On 2 cores
    (``bench/bench_onnx.py``'s texts) one thread took 13.5 s, one batch on two threads 7.8 s, two
    one-thread streams 7.2 s. A single batch then runs on one thread, which costs latency only
    where a caller encodes one batch at a time.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        threads: int | None = None,
        max_seq_length: int | None = None,
    ) -> None:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        folder = Path(folder)
        manifest_path = folder / MANIFEST_FILE
        self.info: dict[str, Any] = (
            json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
        )
        self.info["path"] = str(folder)
        #: batches run at once; 1 with threads unset (ONNX Runtime's default: every core)
        self.streams = max(1, int(threads or 1))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1 if self.streams > 1 else int(threads or 0)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"]
            )
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder / TOKENIZER_DIR))
        except Exception as e:
            msg = (
                f"cannot load the ONNX export in {folder} ({type(e).__name__}); delete that "
                "folder to export again, or set embedding.backend: torch"
            )
            raise ModelError(msg) from e
        self._inputs = [i.name for i in self._session.get_inputs()]
        output_dim = self._session.get_outputs()[0].shape[-1]
        self._dimension = int(self.info.get("dimension") or output_dim)
        self.lower = bool(self.info.get("do_lower_case", False))
        self.max_seq_length = int(max_seq_length or self.info.get("max_seq_length") or 256)
        self._pool: ThreadPoolExecutor | None = None

    def get_embedding_dimension(self) -> int:
        return self._dimension

    def encode(
        self,
        sentences: list[str],
        batch_size: int = 64,
        normalize_embeddings: bool = True,
        **_: Any,
    ) -> np.ndarray:
        """``(len(sentences), dim)`` float32; unit norm unless ``normalize_embeddings`` is off."""
        order = np.argsort([-len(str(t)) for t in sentences], kind="stable")
        step = max(1, batch_size)
        spans = [order[i : i + step] for i in range(0, len(order), step)]
        out = np.zeros((len(sentences), self._dimension), dtype=np.float32)
        vectors = self.encode_batches([[sentences[i] for i in idx] for idx in spans],
                                      normalize=normalize_embeddings)
        for idx, vecs in zip(spans, vectors, strict=True):
            out[idx] = vecs
        return out

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids per text, special tokens included, cut at ``max_seq_length`` (no padding)."""
        texts = [str(t).lower() if self.lower else str(t) for t in texts]
        return self.tokenizer(texts, truncation=True, max_length=self.max_seq_length)["input_ids"]

    def encode_batches(self, batches: list[list[str]], normalize: bool = True) -> list[np.ndarray]:
        """One ``(len(batch), dim)`` float32 array per batch of texts (unit rows by default)."""
        return self.encode_ids([self.tokenize(batch) for batch in batches], normalize)

    def encode_ids(self, batches: list[list[list[int]]], normalize: bool = True
                   ) -> list[np.ndarray]:
        """One ``(len(batch), dim)`` float32 array per batch of token-id lists (``tokenize``'s),
        unit rows by default; up to ``streams`` batches run at once. Callers that tokenised
        already (to sort by length) pass the ids instead of tokenising twice.
        """
        feeds = [self._feed(ids) for ids in batches]

        def run(feed: dict[str, np.ndarray]) -> np.ndarray:
            vecs = self._session.run(None, feed)[0]
            if normalize:
                vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
            return vecs

        if self.streams == 1 or len(feeds) < 2:
            return [run(feed) for feed in feeds]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.streams, thread_name_prefix="onnx-stream")
        return list(self._pool.map(run, feeds))

    def _feed(self, ids: list[list[int]]) -> dict[str, np.ndarray]:
        """The model inputs for one batch, padded to its longest row as the tokenizer pads."""
        input_ids, mask = pad_token_ids(ids, self.tokenizer.pad_token_id or 0,
                                        self.tokenizer.padding_side == "left")
        inputs = {"input_ids": input_ids, "attention_mask": mask,
                  "token_type_ids": np.zeros_like(input_ids)}
        return {name: inputs[name] for name in self._inputs}


def load_onnx_model(
    model: str,
    threads: int | None = None,
    max_seq_length: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    target: str | None = None,
) -> OnnxSentenceModel:
    """The int8 ONNX encoder for ``model``, exported on first use and reused afterwards."""
    folder, exported = ensure_export(model, cache_dir=cache_dir, target=target)
    encoder = OnnxSentenceModel(folder, threads=threads, max_seq_length=max_seq_length)
    encoder.info["exported_now"] = exported
    return encoder
