"""``privacy-ray config show``: the resolved configuration and where each value came from."""

from __future__ import annotations

import typer

from privacy_ray.cli._common import ConfigOption, JsonOption, echo_json, load

SHOW_HELP = """Print the resolved config and the source of every value.

Precedence: defaults < YAML file (--config, CONFIG_PATH, ./config.yaml) <
environment (PRIVACY_RAY_SECTION__KEY, ENVIRONMENT, LOG_LEVEL) < flags.

Examples:

  privacy-ray config show

  PRIVACY_RAY_EMBEDDING__CPU_BATCH_SIZE=32 privacy-ray config show --json
"""


def register(app: typer.Typer) -> None:
    config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
    app.add_typer(config_app, name="config")

    @config_app.command("show", help=SHOW_HELP)
    def show(config: ConfigOption = None, json_out: JsonOption = False) -> None:
        from privacy_ray.config import flatten_keys

        resolved = load(config)
        values = flatten_keys(resolved.settings.model_dump(mode="json"))
        if json_out:
            echo_json({"path": resolved.path, "values": values, "sources": resolved.sources})
            return
        typer.echo(f"# config file: {resolved.path or '(none: defaults)'}")
        width = max(len(k) for k in values)
        for key, value in values.items():
            typer.echo(f"{key:<{width}}  {value!r:<40}  {resolved.sources.get(key, 'default')}")
