"""The Serve app's knobs and the arguments of :func:`privacy_ray.serve.app.build_app`.

``ServeOptions`` is a superset of :class:`privacy_ray.config.ServeConfig` (``host``, ``port``):
the fields it adds are declared here, with units in their names, until the config declares
them; a ``serve`` section given to ``build_app`` may carry any of them. :func:`resolve_app_args`
is the one place that turns builder arguments (a RayService ``serveConfigV2``, ``serve run``
key=value pairs, or the CLI) into typed settings. It does no I/O unless no settings are given,
in which case it reads the config like every other command.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from privacy_ray.config import ServeConfig, Settings
from privacy_ray.errors import ConfigError

#: Comma-separated bearer tokens accepted by the data endpoints (rotate by listing old and new).
API_TOKENS_ENV = "PRIVACY_RAY_API_TOKENS"
#: A file of tokens (comma- or newline-separated), re-read when it changes (mounted Secrets).
API_TOKENS_FILE_ENV = "PRIVACY_RAY_API_TOKENS_FILE"
APP_NAME = "privacy-ray"


class ServeOptions(BaseModel):
    """Everything the HTTP service can be tuned with. Defaults suit one 2-core machine."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

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
    def _check(self) -> ServeOptions:
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

    def fit_to_cpus(self, num_shards: int, cpus: float) -> ServeOptions:
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


class AppArgs(BaseModel):
    """Arguments of ``build_app``: what a RayService ``serveConfigV2`` passes, plus extras."""

    model_config = ConfigDict(extra="forbid")

    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="Config sections (runtime, embedding, classifier, store, serve) as dicts. "
        "Empty: read the config file and environment like any command.",
    )
    store_path: str | None = Field(None, description="Store directory or URI (store.path).")
    num_replicas: int | None = Field(None, ge=1, description="Replicas of every deployment.")
    model_dir: str | None = Field(
        None, description="Classifier model directory (classifier.model_dir; default model)."
    )
    config_path: str | None = Field(None, description="Config file read when settings is empty.")


@dataclass(frozen=True)
class AppConfig:
    """Resolved inputs of the app: typed settings, serve options, store and model locations."""

    settings: Settings
    options: ServeOptions
    store_path: str
    model_dir: str | None

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for deployment init arguments (pydantic objects stay out of them)."""
        return {"settings": self.settings.model_dump(mode="json"),
                "options": self.options.model_dump(mode="json"),
                "store_path": self.store_path, "model_dir": self.model_dir}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AppConfig:
        return cls(Settings.model_validate(data["settings"]),
                   ServeOptions.model_validate(data["options"]),
                   data["store_path"], data.get("model_dir"))


def _describe(e: ValidationError, where: str) -> str:
    err = e.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"unknown {where} key '{key}'; see privacy_ray.serve.options for the valid keys"
    return f"invalid {where} value for '{key}': {err['msg']} (got {err.get('input')!r})"


def resolve_app_args(args: dict[str, Any] | None) -> AppConfig:
    """Typed app configuration from builder arguments. Errors are :class:`ConfigError`."""
    try:
        parsed = AppArgs.model_validate(dict(args or {}))
    except ValidationError as e:
        raise ConfigError(_describe(e, "build_app argument")) from e
    sections = dict(parsed.settings)
    if not sections:
        from privacy_ray.config import load_config

        sections = load_config(parsed.config_path).settings.model_dump(mode="json")
    serve_section = dict(sections.pop("serve", None) or {})
    if parsed.num_replicas is not None:
        serve_section["num_replicas"] = parsed.num_replicas
    base_keys = set(ServeConfig.model_fields)
    try:
        settings = Settings.model_validate(
            {**sections, "serve": {k: v for k, v in serve_section.items() if k in base_keys}})
    except ValidationError as e:
        raise ConfigError(_describe(e, "settings")) from e
    try:
        options = ServeOptions.model_validate(serve_section)
    except ValidationError as e:
        raise ConfigError(_describe(e, "serve setting")) from e
    store_path = parsed.store_path or settings.store.path
    model_dir = parsed.model_dir or settings.classifier.model_dir
    return AppConfig(settings, options, store_path, model_dir)
