"""Options and helpers shared by the commands."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

ConfigOption = Annotated[
    str | None,
    typer.Option(
        "--config", "-c", help="YAML config file (default: CONFIG_PATH or ./config.yaml)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts.")]
AddressOption = Annotated[
    str | None,
    typer.Option("--address", help="Ray cluster address (default: RAY_ADDRESS or embedded Ray)."),
]


def load(config: str | None, **overrides: Any):  # -> ResolvedConfig
    """Resolve the config with CLI flags (dotted keys) as the highest-precedence layer."""
    from privacy_ray.config import load_config

    return load_config(config, overrides={k.replace("__", "."): v for k, v in overrides.items()})


def echo_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=None, sort_keys=True, default=str))
