"""``privacy-ray serve``: the HTTP service over the vector store, on Ray Serve."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from privacy_ray.cli._common import AddressOption, ConfigOption, load

SERVE_HELP = """Serve similarity search and classification over HTTP (until Ctrl-C).

Starts an embedded local Ray (or joins --address / RAY_ADDRESS), deploys
the Serve app over the store, prints its URL and waits. Endpoints:
GET / /health /ready /docs and POST /search /classify.

Data endpoints need "Authorization: Bearer TOKEN" with a token from
PRIVACY_RAY_API_TOKENS (comma-separated, so tokens can rotate). On an
embedded Ray without tokens, one is generated for the session and printed.
Request metrics go to Ray's metrics endpoint (runtime.metrics_export_port).

Examples:

  privacy-ray serve --store output/store

  PRIVACY_RAY_API_TOKENS=$(openssl rand -hex 24) privacy-ray serve --port 8080

  privacy-ray serve --store s3://bucket/store --address auto --model models/default
"""

APP_ROUTE_PREFIX = "/"


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def _url_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _app_args(settings: Any, store_path: str, model_dir: str | None,
              serve_extra: dict[str, Any]) -> dict[str, Any]:
    dumped = settings.model_dump(mode="json")
    sections = {k: dumped[k] for k in ("runtime", "embedding", "classifier", "store", "serve")}
    sections["serve"] = {**sections["serve"], **serve_extra}
    return {"settings": sections, "store_path": store_path, "model_dir": model_dir}


def register(app: typer.Typer) -> None:
    @app.command("serve", help=SERVE_HELP)
    def serve_command(
        store: Annotated[str | None, typer.Option(
            "--store", "-s", help="Store directory or URI (default: store.path).")] = None,
        port: Annotated[int | None, typer.Option(
            "--port", "-p", help="HTTP port (default: serve.port, 8000).")] = None,
        host: Annotated[str | None, typer.Option(
            "--host", help="HTTP bind address (default: serve.host, 127.0.0.1).")] = None,
        address: AddressOption = None,
        model: Annotated[str | None, typer.Option(
            "--model", "-m", help="Classifier model directory (default: the default model, "
            "trained on first use).")] = None,
        name: Annotated[str, typer.Option(
            "--name", help="Serve application name.")] = "privacy-ray",
        config: ConfigOption = None,
    ) -> None:
        import os
        import secrets
        import signal
        import time

        from privacy_ray.config import API_TOKENS_ENV, API_TOKENS_FILE_ENV
        from privacy_ray.store import open_storage, read_manifest

        resolved = load(config, store__path=store, serve__port=port, serve__host=host,
                        classifier__model_dir=model, runtime__ray_address=address)
        settings = resolved.settings
        store_path = settings.store.path
        # Fail fast, before Ray starts: one line naming the missing store.
        manifest = read_manifest(open_storage(store_path))
        embedded = not (settings.runtime.ray_address or os.environ.get("RAY_ADDRESS"))
        token = None
        if embedded and not (os.environ.get(API_TOKENS_ENV) or
                             os.environ.get(API_TOKENS_FILE_ENV)):
            # Replicas of an embedded Ray inherit this process's environment.
            token = secrets.token_urlsafe(24)
            os.environ[API_TOKENS_ENV] = token

        from privacy_ray.engine import init_ray

        info = init_ray(settings.runtime)
        import ray
        from ray import serve

        from privacy_ray.serve.app import build_app

        extra: dict[str, Any] = {}
        if embedded:
            cpus = float(ray.cluster_resources().get("CPU", 1))
            opts = settings.serve
            fitted = opts.fit_to_cpus(int(manifest["num_shards"]), cpus)
            if fitted is not opts:
                extra["embedder_num_cpus"] = fitted.embedder_num_cpus
        serve.start(http_options={"host": settings.serve.host, "port": settings.serve.port})
        typer.echo(f"deploying {name} over store {store_path} (version "
                   f"{manifest['store_version']}, {manifest['count']} vectors, "
                   f"{manifest['num_shards']} shards) on {info['mode']} Ray ...", err=True)
        serve.run(build_app(_app_args(settings, store_path, model, extra)), name=name,
                  route_prefix=APP_ROUTE_PREFIX)
        url = f"http://{_url_host(settings.serve.host)}:{settings.serve.port}"
        typer.echo(f"privacy-ray is serving at {url}  (API docs: {url}/docs)")
        if token:
            typer.echo(f"API token for this session (set {API_TOKENS_ENV} to choose your own): "
                       f"{token}")
        if settings.runtime.metrics_export_port and embedded:
            typer.echo(f"metrics: http://127.0.0.1:{settings.runtime.metrics_export_port}/metrics")
        typer.echo("press Ctrl-C to stop", err=True)
        signal.signal(signal.SIGTERM, _interrupt)  # stop cleanly under kill / kubectl too
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            typer.echo("stopping ...", err=True)
        finally:
            try:
                serve.delete(name)
                if embedded:
                    serve.shutdown()
            finally:
                if embedded:
                    ray.shutdown()
