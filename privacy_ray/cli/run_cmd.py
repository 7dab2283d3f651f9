"""``privacy-ray run``: the main pipeline on an embedded local Ray or a cluster."""

from __future__ import annotations

from typing import Annotated

import typer

from privacy_ray.cli._common import AddressOption, ConfigOption, JsonOption, echo_json, load

RUN_HELP = """Run the privacy-intent pipeline and write a run folder.

Without --input it generates --n synthetic messages. The run folder
(OUTPUT/runs/RUN_ID/) holds the outputs, the quarantine, the resolved config,
per-stage counts and timings, and the feature catalogue.

Examples:

  privacy-ray run                                # 5,000 synthetic messages, local Ray

  privacy-ray run --input data/messages.jsonl --output out/

  privacy-ray run --n 200 --json                 # one JSON summary line

  RAY_ADDRESS=ray://head:10001 privacy-ray run --input s3://bucket/day=2026-01-01/
"""


def register(app: typer.Typer) -> None:
    @app.command("run", help=RUN_HELP)
    def run(
        input: Annotated[
            str | None,
            typer.Option(
                "--input", "-i", help="Parquet / JSONL / CSV file or directory, local or s3://."
            ),
        ] = None,
        output: Annotated[
            str | None,
            typer.Option("--output", "-o", help="Root of run folders (pipeline.output_dir)."),
        ] = None,
        n: Annotated[
            int | None,
            typer.Option("--n", help="Synthetic messages when no --input (pipeline.n_messages)."),
        ] = None,
        seed: Annotated[int | None, typer.Option("--seed", help="Synthetic seed.")] = None,
        fmt: Annotated[
            str | None, typer.Option("--format", help="Input format: auto, parquet, jsonl, csv.")
        ] = None,
        model: Annotated[
            str | None,
            typer.Option("--model", help="Classifier model directory (classifier.model_dir)."),
        ] = None,
        config: ConfigOption = None,
        address: AddressOption = None,
        json_out: JsonOption = False,
        quiet: Annotated[
            bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")
        ] = False,
    ) -> None:
        from privacy_ray.pipelines.main import run_pipeline, summary_table

        resolved = load(
            config,
            pipeline__output_dir=output,
            pipeline__n_messages=n,
            pipeline__seed=seed,
            input__format=fmt,
            classifier__model_dir=model,
        )

        def progress(msg: str) -> None:
            if not (quiet or json_out):
                typer.echo(msg, err=True)

        result = run_pipeline(resolved, input_path=input, address=address, progress=progress)
        if json_out:
            echo_json(result.to_summary())
        elif not quiet:
            typer.echo(summary_table(result.to_summary()))

    @app.command("stages", help=STAGES_HELP)
    def stages(config: ConfigOption = None) -> None:
        from privacy_ray.pipelines.main import stage_names

        settings = load(config).settings
        for name, description in stage_names().items():
            mark = "*" if name in settings.pipeline.stages else " "
            r = settings.resources_for(name)
            typer.echo(f"{mark} {name:<17} {description}  [cpus {r.num_cpus}, gpus {r.num_gpus}, "
                       f"batch {r.batch_size}]")


STAGES_HELP = """List the main pipeline's stages (* = enabled by pipeline.stages) and resources.

Examples:

  privacy-ray stages

  PRIVACY_RAY_PIPELINE__STAGES='[validate_raw, normalize, features, redact]' privacy-ray stages
"""
