"""privacy-ray: find privacy-rights requests in customer conversations, at scale, on Ray.

The public Python API, for notebooks and scripts. Imports are lazy so ``import privacy_ray``
stays fast; see the README for examples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API = {
    "load_config": "privacy_ray.config",
    "Settings": "privacy_ray.config",
    "LABELS": "privacy_ray.config",
    "generate_messages": "privacy_ray.synth",
    "generate_conversations": "privacy_ray.synth",
    "run_pipeline": "privacy_ray.pipelines.main",
    "classify": "privacy_ray.api",
    "embed": "privacy_ray.api",
    "load_model": "privacy_ray.api",
    "train_model": "privacy_ray.api",
    "evaluate_model": "privacy_ray.api",
    "Classifier": "privacy_ray.api",
}

__all__ = ["__version__", *_API]

if TYPE_CHECKING:  # pragma: no cover
    from privacy_ray.api import (  # noqa: F401
        Classifier,
        classify,
        embed,
        evaluate_model,
        load_model,
        train_model,
    )
    from privacy_ray.config import LABELS, Settings, load_config  # noqa: F401
    from privacy_ray.pipelines.main import run_pipeline  # noqa: F401
    from privacy_ray.synth import generate_conversations, generate_messages  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'privacy_ray' has no attribute {name!r}")
