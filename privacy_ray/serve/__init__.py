"""The HTTP service: similarity search and classification over the sharded store, on Ray Serve.

``build_app`` (also importable as ``privacy_ray.serve.app:build_app``) builds the application
for ``privacy-ray serve``, ``serve run``/``serve build`` and a RayService ``serveConfigV2``::

    from ray import serve
    from privacy_ray.serve import build_app

    serve.run(build_app({"store_path": "output/store"}), name="privacy-ray")

Importing this package is cheap; Ray Serve and FastAPI load when ``build_app`` is first used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_app"]


def __getattr__(name: str) -> Any:
    if name == "build_app":
        from privacy_ray.serve.app import build_app

        return build_app
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
