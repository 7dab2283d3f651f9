"""``privacy-ray train | evaluate | classify``: the privacy-intent model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from privacy_ray.cli._common import ConfigOption, JsonOption, echo_json, load

MlflowOption = Annotated[
    bool | None,
    typer.Option(
        "--mlflow/--no-mlflow",
        help="Log params, metrics and artifacts to MLflow (needs the mlflow extra). Default: on "
        "when MLFLOW_TRACKING_URI is set; without it, a local store ./mlflow.db + ./mlruns.",
    ),
]


def _tracked(run: Any) -> dict[str, str]:
    """Say where an MLflow run went (stderr) and return it for --json."""
    if run is None:
        return {}
    typer.echo(f"mlflow run {run.run_id} logged to {run.tracking_uri}", err=True)
    return {"mlflow_run_id": run.run_id}

TRAIN_HELP = """Train the classifier and write a model directory.

DATA is labelled .jsonl/.json/.csv/.parquet with text and label columns; without
--data it trains on generated messages. Families are compared on held-out
template families and the best is kept.

Examples:

  privacy-ray train --out models/default

  privacy-ray train --data labelled.parquet --out models/custom --json

  MLFLOW_TRACKING_URI=http://mlflow:5000 privacy-ray train --out models/m

  privacy-ray train --out models/default --mlflow
"""

EVALUATE_HELP = """Score a model on labelled data (text, label).

Examples:

  privacy-ray evaluate --data tests/data/handwritten_eval.jsonl

  privacy-ray evaluate --data eval.csv --model models/custom --json

  privacy-ray evaluate --data eval.parquet --report reports/

  privacy-ray evaluate --data eval.parquet --model models/custom --mlflow
"""

CLASSIFY_HELP = """Classify one message, or every text in a file; prints JSON per message.

Examples:

  privacy-ray classify "Please delete all my personal data under GDPR Article 17"

  privacy-ray classify --input messages.jsonl
"""


def _resolve_model_dir(model: str | None, config: str | None) -> tuple[object, Path]:
    from privacy_ray.model.training import ensure_model

    settings = load(config, classifier__model_dir=model).settings
    return settings, ensure_model(settings, progress=lambda m: typer.echo(m, err=True))


def register(app: typer.Typer) -> None:
    @app.command("train", help=TRAIN_HELP)
    def train(
        out: Annotated[str, typer.Option("--out", "-o", help="Model directory to write.")],
        data: Annotated[str | None, typer.Option("--data", help="Labelled data file.")] = None,
        n: Annotated[
            int | None,
            typer.Option(
                "--n", help="Generated messages when no --data (classifier.training_messages)."
            ),
        ] = None,
        seed: Annotated[int, typer.Option("--seed", help="Seed for data and model.")] = 42,
        mlflow: MlflowOption = None,
        config: ConfigOption = None,
        json_out: JsonOption = False,
    ) -> None:
        from privacy_ray.api import train_model
        from privacy_ray.tables import read_table
        from privacy_ray.tracking import log_training

        settings = load(config, classifier__training_messages=n).settings
        if data:
            df = read_table(data, required=("text", "label"))
        else:
            from privacy_ray.synth import generate_messages

            df = generate_messages(settings.classifier.training_messages, seed=seed)
        report = train_model(df, out, settings, seed=seed)
        tracked = _tracked(log_training(
            report, out, settings, data_source=data or "synthetic", seed=seed, flag=mlflow,
            warn=lambda m: typer.echo(m, err=True)))
        if json_out:
            echo_json({"model_dir": out, **report, **tracked})
            return
        typer.echo(f"model written to {out} (best family: {report['best_family']})")
        for fam, scores in report["families"].items():
            typer.echo(
                f"  {fam:<12} held-out macro-F1 {scores['macro_f1']:.3f}  "
                f"accuracy {scores['accuracy']:.3f}"
            )

    @app.command("evaluate", help=EVALUATE_HELP)
    def evaluate(
        data: Annotated[str, typer.Option("--data", help="Labelled .jsonl/.json/.csv/.parquet.")],
        model: Annotated[str | None, typer.Option("--model", help="Model directory.")] = None,
        report: Annotated[
            str | None,
            typer.Option(
                "--report", help="Also write a confusion-matrix PNG and the per-label table here."
            ),
        ] = None,
        mlflow: MlflowOption = None,
        config: ConfigOption = None,
        json_out: JsonOption = False,
    ) -> None:
        from privacy_ray.api import Classifier
        from privacy_ray.config import LABELS
        from privacy_ray.errors import InputError
        from privacy_ray.model.training import evaluate as run_eval
        from privacy_ray.tables import read_table

        df = read_table(data, required=("text", "label"))
        unknown = sorted(set(df["label"].astype(str)) - set(LABELS))
        if unknown:
            raise InputError(
                f"{data} has labels outside the taxonomy: {', '.join(unknown)}; "
                f"valid labels: {', '.join(LABELS)}"
            )
        settings, model_dir = _resolve_model_dir(model, config)
        clf = Classifier(model_dir, settings)
        result = run_eval(clf.bundle, df, clf.encoder, settings.classifier.abstain_threshold)
        result["model_dir"] = str(model_dir)
        if report:
            from privacy_ray.model.reports import write_evaluation_report

            result["report"] = str(write_evaluation_report(result, report))
        from privacy_ray.tracking import log_evaluation

        result.update(_tracked(log_evaluation(
            result, model_dir, settings, data_source=data, flag=mlflow,
            warn=lambda m: typer.echo(m, err=True))))
        if json_out:
            echo_json(result)
            return
        typer.echo(
            f"n={result['n']}  accuracy={result['accuracy']:.3f}  macro-F1={result['macro_f1']:.3f}"
        )
        typer.echo(f"{'label':<22}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
        for label, s in result["per_label"].items():
            typer.echo(
                f"{label:<22}{s['precision']:>10.3f}{s['recall']:>10.3f}{s['f1']:>10.3f}"
                f"{s['support']:>10}"
            )

    @app.command("classify", help=CLASSIFY_HELP)
    def classify(
        text: Annotated[str | None, typer.Argument(help="The message to classify.")] = None,
        input: Annotated[
            str | None,
            typer.Option("--input", "-i", help="A .jsonl/.csv/.parquet file with a text column."),
        ] = None,
        model: Annotated[str | None, typer.Option("--model", help="Model directory.")] = None,
        config: ConfigOption = None,
    ) -> None:
        from privacy_ray.api import Classifier
        from privacy_ray.errors import InputError
        from privacy_ray.tables import read_table

        if (text is None) == (input is None):
            raise InputError("give either a TEXT argument or --input FILE, not both or neither")
        settings, model_dir = _resolve_model_dir(model, config)
        if input:
            df = read_table(input, required=("text",))
        else:
            import pandas as pd

            df = pd.DataFrame({"text": [text]})
        preds = Classifier(model_dir, settings).classify(df)
        ids = df["message_id"].astype(str).tolist() if "message_id" in df.columns else None
        for i, row in enumerate(preds.to_dict(orient="records")):
            if ids:
                row["message_id"] = ids[i]
            due = row.get("due_by")
            row["due_by"] = None if due is None or str(due) == "NaT" else str(due)
            row["abstain"] = bool(row["abstain"])
            typer.echo(json.dumps(row, default=str))
