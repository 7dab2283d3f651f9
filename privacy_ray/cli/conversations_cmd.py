"""``privacy-ray conversations``: the daily conversations pipeline into the vector store."""

from __future__ import annotations

from typing import Annotated

import typer

from privacy_ray.cli._common import AddressOption, ConfigOption, JsonOption, echo_json, load

HELP = """Embed and classify conversations and upsert them into the sharded store.

Without --input it generates --n conversations. Upserts by conversation_id: running the
same day twice replaces, never duplicates. --date keeps only conversations started that day.

Examples:

  privacy-ray conversations --store output/store

  privacy-ray conversations --input day.parquet --store s3://bucket/store --date 2026-01-15

  privacy-ray conversations --n 200 --store /tmp/store --json
"""


def register(app: typer.Typer) -> None:
    @app.command("conversations", help=HELP)
    def conversations(
        store: Annotated[str | None, typer.Option(
            "--store", help="Vector store directory (store.path).")] = None,
        input: Annotated[str | None, typer.Option(
            "--input", "-i", help="Parquet or JSON Lines conversations, local or s3://.")]
        = None,
        date: Annotated[str | None, typer.Option(
            "--date", help="Only conversations started on this day (YYYY-MM-DD).")] = None,
        n: Annotated[int, typer.Option("--n", min=1, help="Generated conversations.")] = 1000,
        seed: Annotated[int, typer.Option("--seed", help="Generator seed.")] = 42,
        output: Annotated[str | None, typer.Option(
            "--output", "-o", help="Root of run folders (pipeline.output_dir).")] = None,
        model: Annotated[str | None, typer.Option("--model", help="Classifier model dir.")]
        = None,
        config: ConfigOption = None,
        address: AddressOption = None,
        json_out: JsonOption = False,
    ) -> None:
        from privacy_ray.pipelines.conversations import run_conversations

        resolved = load(config, store__path=store, pipeline__output_dir=output,
                        classifier__model_dir=model)
        summary = run_conversations(
            resolved, resolved.settings.store.path, input_path=input, day=date, n=n, seed=seed,
            address=address, progress=None if json_out else lambda m: typer.echo(m, err=True))
        if json_out:
            echo_json(summary)
            return
        typer.echo(f"conversations run {summary['run_id']}: {summary['records_in']} in, "
                   f"{summary['upserted']} upserted, {summary['records_quarantined']} "
                   f"quarantined, {summary['skipped_other_day']} other days "
                   f"({summary['seconds']} s)")
        typer.echo(f"  store {summary['store']} version {summary['store_version']}, "
                   f"{summary['store_count']} conversations")
        typer.echo(f"  run folder {summary['run_dir']}")
