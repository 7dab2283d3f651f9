"""``privacy-ray report``: a run's data-quality summary and the path of its HTML report."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from privacy_ray.cli._common import JsonOption, echo_json

REPORT_HELP = """Print a run's summary, quality score and checks, and where its report is.

RUN_DIR is a run folder written by `privacy-ray run` (local or s3://). The
report (quality_report.html, self-contained, and quality_report.json) lies in
the run folder; a run without one gets it built from the folder's stats,
quarantine and outputs.

Examples:

  privacy-ray report output/runs/20260126T101500Z-3f9a1c

  privacy-ray report output/runs/20260126T101500Z-3f9a1c --json

  privacy-ray report s3://bucket/privacy-ray/runs/20260126T101500Z-3f9a1c --rebuild
"""


def _summary_lines(summary: dict[str, Any]) -> list[str]:
    try:
        from privacy_ray.pipelines.main import summary_table

        return summary_table(summary).splitlines()
    except (KeyError, TypeError, ImportError):
        state = "complete" if summary.get("complete", True) else "INCOMPLETE"
        return [f"run {summary.get('run_id')}  {state}",
                f"  records in {summary.get('records_in')}  out {summary.get('records_out')}  "
                f"quarantined {summary.get('records_quarantined')}"]


def quality_lines(report: dict[str, Any]) -> list[str]:
    """The quality part of the text output: score, gate and each check that did not pass."""
    score = report.get("quality_score")
    lines = [f"  quality score {score if score is not None else '-'} / 100  "
             f"(gate {report.get('gate', '-')})"]
    for check in report.get("checks") or []:
        if check.get("status") in ("fail", "warn"):
            lines.append(f"  {check['status'].upper()} {check['name']}: {check.get('message')}")
    failing = [e for e in report.get("expectations") or [] if not e.get("success")]
    if failing:
        worst = sorted(failing, key=lambda e: e.get("pass_rate") if e.get("pass_rate")
                       is not None else -1)[:5]
        lines.append("  expectations not met: " + ", ".join(
            f"{e['suite']}.{e['key']} "
            f"{'n/a' if e.get('pass_rate') is None else format(e['pass_rate'], '.2%')}"
            for e in worst) + (f" (+{len(failing) - 5} more)" if len(failing) > 5 else ""))
    return lines


def register(app: typer.Typer) -> None:
    @app.command("report", help=REPORT_HELP)
    def report(
        run_dir: Annotated[str, typer.Argument(
            metavar="RUN_DIR", help="Run folder (output/runs/RUN_ID).")],
        rebuild: Annotated[bool, typer.Option(
            "--rebuild", help="Build the report again from the run folder.")] = False,
        json_out: JsonOption = False,
    ) -> None:
        from privacy_ray.quality.report import report_for_run

        found = report_for_run(run_dir, rebuild=rebuild)
        rep = found["report"]
        if json_out:
            echo_json({
                "summary": found["summary"],
                "quality_score": rep.get("quality_score"),
                "gate": rep.get("gate"),
                "checks": rep.get("checks"),
                "report_json": found["report_json"],
                "report_html": found["report_html"],
                "rebuilt": found["rebuilt"],
            })
            return
        lines = _summary_lines(found["summary"]) + quality_lines(rep)
        lines.append(f"report: {found['report_html'] or found['report_json']}")
        typer.echo("\n".join(lines))
