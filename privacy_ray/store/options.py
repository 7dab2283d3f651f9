"""Store options: the knobs of the vector store beyond ``StoreConfig``'s path/shards/index type.

``StoreConfig`` in :mod:`privacy_ray.config` is the single place knobs are declared; the fields
it does not (yet) carry are given defaults here. :meth:`StoreOptions.from_config` copies every
field the config has, so a field added there flows through without touching this module.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from privacy_ray.errors import ConfigError

IndexType = Literal["flat", "ivf", "hnsw"]
INDEX_TYPES: tuple[str, ...] = ("flat", "ivf", "hnsw")
HMAC_ENV_VAR = "PRIVACY_RAY_HMAC_KEY"


@dataclass(frozen=True)
class StoreOptions:
    """Build- and search-time parameters of a store.

    Build-time values (shards, index type, IVF/HNSW structure, normalisation, snippet length) are
    recorded in the manifest at creation and win over these when a store is opened; search-time
    values (``ivf_nprobe``, ``hnsw_ef_search``, ``exact_search_max_rows``) may be changed per open.
    """

    num_shards: int = 4
    index_type: IndexType = "flat"
    #: IVF lists per shard; ``None``: about sqrt(rows) when the shard is trained.
    ivf_nlist: int | None = None
    ivf_nprobe: int = 32
    #: An IVF shard stays exact (flat) until it holds this many vectors: below that, training
    #: on too few points gives poor lists and exact search is fast anyway.
    ivf_min_train_vectors: int = 4096
    ivf_train_sample_size: int = 100_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 40
    hnsw_ef_search: int = 64
    #: Filtered searches that leave at most this many rows in a shard are answered exactly
    #: over those rows, whatever the index type (approximate indexes lose recall under tight
    #: filters).
    exact_search_max_rows: int = 5_000
    #: L2-normalise stored and query vectors, so inner product is cosine similarity.
    normalize: bool = True
    snippet_chars: int = 240
    #: Committed versions kept on disk (the current one included); older ones are deleted.
    versions_kept: int = 3
    hmac_env_var: str = HMAC_ENV_VAR
    #: Local secret file used outside production when the environment variable is unset.
    hmac_secret_file: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.index_type not in INDEX_TYPES:
            msg = f"unknown index type {self.index_type!r}; use one of {', '.join(INDEX_TYPES)}"
            raise ConfigError(msg)
        if not 1 <= self.num_shards <= 256:
            msg = f"num_shards must be between 1 and 256, got {self.num_shards}"
            raise ConfigError(msg)
        if self.versions_kept < 1:
            msg = f"versions_kept must be at least 1, got {self.versions_kept}"
            raise ConfigError(msg)
        for name in ("ivf_nprobe", "ivf_min_train_vectors", "hnsw_m", "hnsw_ef_construction",
                     "hnsw_ef_search", "snippet_chars", "ivf_train_sample_size"):
            if getattr(self, name) < 1:
                msg = f"store option {name} must be at least 1, got {getattr(self, name)}"
                raise ConfigError(msg)

    @classmethod
    def from_config(cls, config: Any = None, **overrides: Any) -> StoreOptions:
        """Options from a ``StoreConfig`` (any fields it has) plus keyword overrides."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values: dict[str, Any] = {}
        if config is not None:
            dumped = config.model_dump() if hasattr(config, "model_dump") else dict(config)
            values.update({k: v for k, v in dumped.items() if k in names})
        unknown = set(overrides) - names
        if unknown:
            msg = f"unknown store option(s) {', '.join(sorted(unknown))}; valid: {sorted(names)}"
            raise ConfigError(msg)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def replace(self, **changes: Any) -> StoreOptions:
        return dataclasses.replace(self, **changes)

    def build_params(self) -> dict[str, Any]:
        """The values fixed when the store is created, as recorded in the manifest."""
        return {
            "num_shards": self.num_shards,
            "index_type": self.index_type,
            "ivf_nlist": self.ivf_nlist,
            "ivf_min_train_vectors": self.ivf_min_train_vectors,
            "ivf_train_sample_size": self.ivf_train_sample_size,
            "hnsw_m": self.hnsw_m,
            "hnsw_ef_construction": self.hnsw_ef_construction,
            "normalize": self.normalize,
            "snippet_chars": self.snippet_chars,
        }

    def search_params(self) -> dict[str, Any]:
        return {
            "ivf_nprobe": self.ivf_nprobe,
            "hnsw_ef_search": self.hnsw_ef_search,
            "exact_search_max_rows": self.exact_search_max_rows,
        }
