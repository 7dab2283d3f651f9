"""The ``privacy-ray`` command line.

Each area registers its commands from its own module (``register(app)``); heavy imports (Ray,
torch, FAISS) happen inside the commands so ``privacy-ray --help`` answers at once. Errors a user
can cause (:class:`privacy_ray.errors.PrivacyRayError`) become one line on stderr and a non-zero
exit code, never a traceback.
"""

from __future__ import annotations

import sys

import typer

from privacy_ray.cli import (
    config_cmd,
    conversations_cmd,
    generate_cmd,
    index_cmd,
    jobs_cmd,
    manifests_cmd,
    model_cmd,
    report_cmd,
    run_cmd,
    serve_cmd,
)
from privacy_ray.errors import PrivacyRayError

app = typer.Typer(
    name="privacy-ray",
    help="Find privacy-rights requests in customer conversations, at scale, on Ray.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

for _module in (run_cmd, generate_cmd, model_cmd, conversations_cmd, index_cmd, serve_cmd,
                report_cmd, manifests_cmd, jobs_cmd, config_cmd):
    _module.register(app)


def main() -> None:
    """Entry point: run the app, turning user errors into one line and an exit code."""
    try:
        # Without standalone mode click returns (not raises) the code of typer.Exit.
        rc = app(standalone_mode=False)
    except PrivacyRayError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as e:  # click usage errors
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise
    sys.exit(rc if isinstance(rc, int) else 0)
