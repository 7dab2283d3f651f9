"""``privacy-ray generate``: synthetic messages or conversations to a file."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer

from privacy_ray.cli._common import ConfigOption, JsonOption, echo_json, load


class Kind(StrEnum):
    messages = "messages"
    conversations = "conversations"


GENERATE_HELP = """Generate labelled synthetic messages or multi-turn conversations.

Deterministic for a seed; the format follows the file extension (.parquet, .jsonl, .csv).

Examples:

  privacy-ray generate --n 1000 --out data/messages.parquet

  privacy-ray generate --kind conversations --n 200 --seed 7 --out data/conv.jsonl
"""


def register(app: typer.Typer) -> None:
    @app.command("generate", help=GENERATE_HELP)
    def generate(
        out: Annotated[
            str, typer.Option("--out", "-o", help="Output file (.parquet/.jsonl/.csv).")
        ],
        kind: Annotated[
            Kind, typer.Option("--kind", help="messages or conversations.")
        ] = Kind.messages,
        n: Annotated[int, typer.Option("--n", min=1, help="Number of records.")] = 1000,
        seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 42,
        config: ConfigOption = None,
        json_out: JsonOption = False,
    ) -> None:
        from privacy_ray import synth
        from privacy_ray.tables import write_table

        gen = load(config).settings.generator
        fn = synth.generate_messages if kind == Kind.messages else synth.generate_conversations
        df = fn(n, seed=seed, **gen.generator_kwargs())
        if out.lower().endswith(".csv") and "turns" in df.columns:
            df = df.assign(turns=df["turns"].map(lambda t: json.dumps(list(t), default=str)))
        path = write_table(df, out)
        if json_out:
            echo_json({"path": str(path), "kind": kind.value, "n": len(df), "seed": seed})
        else:
            typer.echo(f"wrote {len(df)} {kind.value} to {path}")
