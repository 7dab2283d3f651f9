"""The arguments of :func:`privacy_ray.serve.app.build_app` and their resolution.

The app's knobs are the ``serve`` section of the config (:class:`privacy_ray.config.ServeConfig`).
:func:`resolve_app_args` is the one place that turns builder arguments (a RayService
``serveConfigV2``, ``serve run`` key=value pairs, or the CLI) into typed settings. It does no
I/O unless no settings are given, in which case it reads the config like every other command.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from privacy_ray.config import ServeConfig, Settings
from privacy_ray.errors import ConfigError

APP_NAME = "privacy-ray"


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
    """Resolved inputs of the app: typed settings, store and model locations."""

    settings: Settings
    store_path: str
    model_dir: str | None

    @property
    def options(self) -> ServeConfig:
        """The ``serve`` section (the app's knobs)."""
        return self.settings.serve

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for deployment init arguments (pydantic objects stay out of them)."""
        return {"settings": self.settings.model_dump(mode="json"),
                "store_path": self.store_path, "model_dir": self.model_dir}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AppConfig:
        return cls(Settings.model_validate(data["settings"]), data["store_path"],
                   data.get("model_dir"))


def _describe(e: ValidationError, where: str) -> str:
    err = e.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"unknown {where} key '{key}'; see docs/configuration.md for the valid keys"
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
    if parsed.num_replicas is not None:
        sections["serve"] = {**(sections.get("serve") or {}), "num_replicas": parsed.num_replicas}
    try:
        settings = Settings.model_validate(sections)
    except ValidationError as e:
        raise ConfigError(_describe(e, "settings")) from e
    store_path = parsed.store_path or settings.store.path
    model_dir = parsed.model_dir or settings.classifier.model_dir
    return AppConfig(settings, store_path, model_dir)
