"""``privacy-ray submit`` and ``privacy-ray jobs``: run pipelines as Ray jobs on a cluster.

Jobs go through Ray's Job Submission SDK to the head's dashboard (``http://HEAD:8265``; on EKS
a ``kubectl port-forward`` to the head service). ``submit`` streams the job's logs and exits
with its status: 0 SUCCEEDED, 1 FAILED, 4 STOPPED (2 for errors before the job ran).
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from privacy_ray.cli._common import ConfigOption, JsonOption, echo_json

JobAddressOption = Annotated[
    str | None,
    typer.Option("--address", "-a", envvar="RAY_ADDRESS",
                 help="Ray dashboard URL, http://HEAD:8265 (default: RAY_ADDRESS)."),
]
TokenFileOption = Annotated[
    str | None,
    typer.Option("--token-file", help="File holding the cluster's Ray auth token (default: "
                 "RAY_AUTH_TOKEN, then RAY_AUTH_TOKEN_PATH)."),
]
WorkingDirOption = Annotated[
    str | None,
    typer.Option("--working-dir", help="Local folder (or s3:// zip) uploaded as the job's "
                 "working directory."),
]
RuntimeEnvOption = Annotated[
    str | None,
    typer.Option("--runtime-env", help="YAML/JSON runtime env (env_vars, pip, working_dir...)."),
]
NumCpusOption = Annotated[
    float | None, typer.Option("--num-cpus", help="CPUs reserved for the entrypoint (driver).")
]
NumGpusOption = Annotated[
    float | None, typer.Option("--num-gpus", help="GPUs reserved for the entrypoint (driver).")
]
MemoryOption = Annotated[
    int | None, typer.Option("--memory-mb", help="Memory reserved for the entrypoint, in MiB.")
]
ResourcesOption = Annotated[
    str | None, typer.Option("--resources", help="Custom entrypoint resources as JSON.")
]
SubmissionIdOption = Annotated[
    str | None, typer.Option("--submission-id", help="Job id (default: privacy-ray-CMD-RUN_ID).")
]
JobIdArg = Annotated[str, typer.Argument(help="Submission id (from submit or jobs list).")]
NoWaitOption = Annotated[
    bool, typer.Option("--no-wait", help="Print the job id and return without following it.")
]

SUBMIT_RUN_HELP = """Submit `privacy-ray run` to a Ray cluster and stream its logs.

Paths are read on the cluster (s3:// or the cluster's mounted volumes). A
--config FILE travels with the job as PRIVACY_RAY_* environment variables
(local paths in it are not shipped). Job metadata records the run id and the
config hash. Exit code: 0 SUCCEEDED, 1 FAILED, 4 STOPPED.

Examples:

  privacy-ray submit run --address http://127.0.0.1:8265 --n 1000

  privacy-ray submit run -a http://127.0.0.1:8265 \\
      --input s3://bucket/day=2026-01-01/ --output s3://bucket/runs/

  privacy-ray submit run -a http://127.0.0.1:8265 --config prod.yaml --num-cpus 1 --no-wait
"""

SUBMIT_CONVERSATIONS_HELP = """Submit `privacy-ray conversations` (the daily store update).

Examples:

  privacy-ray submit conversations -a http://127.0.0.1:8265 \\
      --input s3://bucket/conversations/ --store /mnt/store

  privacy-ray submit conversations -a http://127.0.0.1:8265 \\
      --input s3://b/conversations/ --store s3://b/store --date 2026-01-01
"""


def _submit(
    command: str,
    argv: list[str],
    *,
    address: str | None,
    token_file: str | None,
    config: str | None,
    working_dir: str | None,
    runtime_env: str | None,
    num_cpus: float | None,
    num_gpus: float | None,
    memory_mb: int | None,
    resources: str | None,
    submission_id: str | None,
    no_wait: bool,
    json_out: bool,
) -> None:
    from privacy_ray.config import ResolvedConfig, Settings, load_config
    from privacy_ray.k8s import jobs

    # Only an explicit --config travels; the local environment and ./config.yaml do not.
    resolved = (load_config(config, environ={}) if config
                else ResolvedConfig(settings=Settings(), sources={}))
    request, skipped = jobs.build_request(
        command, argv, resolved=resolved, ship_config=bool(config), submission_id=submission_id,
        working_dir=working_dir, runtime_env_file=runtime_env, num_cpus=num_cpus,
        num_gpus=num_gpus, memory_mb=memory_mb, resources=resources,
    )
    for note in skipped:
        typer.echo(f"note: not sent to the cluster: {note}", err=True)
    url = jobs.normalize_address(address)
    client = jobs.connect(url, jobs.auth_token(token_file))
    sid = jobs.submit(client, request)
    typer.echo(f"submitted {sid} to {url}: {request.entrypoint}", err=True)
    result: dict[str, Any] = {
        "address": url,
        "submission_id": sid,
        "entrypoint": request.entrypoint,
        "run_id": request.metadata["privacy_ray.run_id"],
        "config_hash": request.metadata["privacy_ray.config_hash"],
    }
    if no_wait:
        if json_out:
            echo_json({**result, "status": "SUBMITTED"})
        else:
            typer.echo(sid)
        return
    final = _follow(client, sid, url, to_stderr=json_out)
    typer.echo(f"job {sid} {final}", err=True)
    if json_out:
        echo_json({**result, "status": final})
    code = jobs.exit_code_for(final)
    if code:
        # SystemExit, not typer.Exit: the root app runs click with standalone_mode=False.
        raise SystemExit(code)


def _follow(client: Any, sid: str, url: str, to_stderr: bool = False) -> str:
    from privacy_ray.k8s import jobs

    def write(chunk: str) -> None:
        stream = sys.stderr if to_stderr else sys.stdout
        stream.write(chunk)
        stream.flush()

    try:
        return jobs.follow(client, sid, write)
    except KeyboardInterrupt:
        typer.echo(f"\nstopped following; job {sid} keeps running. Follow again: privacy-ray "
                   f"jobs logs {sid} --follow -a {url}; stop it: privacy-ray jobs stop {sid} "
                   f"-a {url}", err=True)
        raise SystemExit(130) from None


def register(app: typer.Typer) -> None:
    submit_app = typer.Typer(
        name="submit", no_args_is_help=True,
        help="Submit a pipeline as a Ray job to a cluster.\n\nExamples:\n\n"
             "  privacy-ray submit run --address http://127.0.0.1:8265 --n 1000",
    )
    jobs_app = typer.Typer(
        name="jobs", no_args_is_help=True,
        help="Inspect, follow and stop Ray jobs on a cluster.\n\nExamples:\n\n"
             "  privacy-ray jobs list -a http://127.0.0.1:8265\n\n"
             "  privacy-ray jobs logs privacy-ray-run-20260101t020000-1a2b3c --follow",
    )
    app.add_typer(submit_app, name="submit")
    app.add_typer(jobs_app, name="jobs")

    @submit_app.command("run", help=SUBMIT_RUN_HELP)
    def submit_run(
        address: JobAddressOption = None,
        input: Annotated[str | None, typer.Option(
            "--input", "-i", help="Input on the cluster (s3:// or a mounted path).")] = None,
        output: Annotated[str | None, typer.Option(
            "--output", "-o", help="Run folder root on the cluster.")] = None,
        n: Annotated[int | None, typer.Option("--n", help="Synthetic messages.")] = None,
        seed: Annotated[int | None, typer.Option("--seed", help="Synthetic seed.")] = None,
        config: ConfigOption = None,
        token_file: TokenFileOption = None,
        working_dir: WorkingDirOption = None,
        runtime_env: RuntimeEnvOption = None,
        num_cpus: NumCpusOption = None,
        num_gpus: NumGpusOption = None,
        memory_mb: MemoryOption = None,
        resources: ResourcesOption = None,
        submission_id: SubmissionIdOption = None,
        no_wait: NoWaitOption = False,
        json_out: JsonOption = False,
    ) -> None:
        argv: list[str] = []
        for flag, value in (("--input", input), ("--output", output), ("--n", n),
                            ("--seed", seed)):
            if value is not None:
                argv += [flag, str(value)]
        _submit("run", argv, address=address, token_file=token_file, config=config,
                working_dir=working_dir,
                runtime_env=runtime_env, num_cpus=num_cpus, num_gpus=num_gpus,
                memory_mb=memory_mb, resources=resources, submission_id=submission_id,
                no_wait=no_wait, json_out=json_out)

    @submit_app.command("conversations", help=SUBMIT_CONVERSATIONS_HELP)
    def submit_conversations(
        input: Annotated[str, typer.Option(
            "--input", "-i", help="Conversations on the cluster (s3:// or a mounted path).")],
        store: Annotated[str, typer.Option("--store", help="Vector store on the cluster.")],
        date: Annotated[str | None, typer.Option(
            "--date", help="Day to process, YYYY-MM-DD.")] = None,
        address: JobAddressOption = None,
        config: ConfigOption = None,
        token_file: TokenFileOption = None,
        working_dir: WorkingDirOption = None,
        runtime_env: RuntimeEnvOption = None,
        num_cpus: NumCpusOption = None,
        num_gpus: NumGpusOption = None,
        memory_mb: MemoryOption = None,
        resources: ResourcesOption = None,
        submission_id: SubmissionIdOption = None,
        no_wait: NoWaitOption = False,
        json_out: JsonOption = False,
    ) -> None:
        import datetime as dt

        from privacy_ray.k8s.jobs import JobSubmissionError

        argv = ["--input", input, "--store", store]
        if date is not None:
            try:
                dt.date.fromisoformat(date)
            except ValueError as e:
                raise JobSubmissionError(f"--date {date!r} is not a date; use YYYY-MM-DD") from e
            argv += ["--date", date]
        _submit("conversations", argv, address=address, token_file=token_file, config=config,
                working_dir=working_dir, runtime_env=runtime_env, num_cpus=num_cpus,
                num_gpus=num_gpus, memory_mb=memory_mb, resources=resources,
                submission_id=submission_id, no_wait=no_wait, json_out=json_out)

    @jobs_app.command("status", help="Show a job's status and message.\n\nExamples:\n\n"
                      "  privacy-ray jobs status privacy-ray-run-20260101t020000-1a2b3c "
                      "-a http://127.0.0.1:8265\n\n"
                      "  privacy-ray jobs status ID --json")
    def jobs_status(job_id: JobIdArg, address: JobAddressOption = None,
                    token_file: TokenFileOption = None, json_out: JsonOption = False) -> None:
        from privacy_ray.k8s import jobs

        details = jobs.info(jobs.connect(address, jobs.auth_token(token_file)), job_id)
        if json_out:
            echo_json(details)
        else:
            typer.echo(jobs.describe(details))

    @jobs_app.command("logs", help="Print a job's logs; --follow streams them and exits with "
                      "the job's status.\n\nExamples:\n\n"
                      "  privacy-ray jobs logs ID -a http://127.0.0.1:8265\n\n"
                      "  privacy-ray jobs logs ID --follow")
    def jobs_logs(
        job_id: JobIdArg,
        address: JobAddressOption = None,
        token_file: TokenFileOption = None,
        follow: Annotated[bool, typer.Option("--follow", "-f", help="Stream until the job "
                                             "ends.")] = False,
    ) -> None:
        from privacy_ray.k8s import jobs

        url = jobs.normalize_address(address)
        client = jobs.connect(url, jobs.auth_token(token_file))
        if not follow:
            typer.echo(jobs.logs(client, job_id), nl=False)
            return
        final = _follow(client, job_id, url)
        typer.echo(f"job {job_id} {final}", err=True)
        code = jobs.exit_code_for(final)
        if code:
            raise SystemExit(code)

    @jobs_app.command("stop", help="Stop a running job.\n\nExamples:\n\n"
                      "  privacy-ray jobs stop ID -a http://127.0.0.1:8265\n\n"
                      "  privacy-ray jobs stop ID --wait")
    def jobs_stop(
        job_id: JobIdArg,
        address: JobAddressOption = None,
        token_file: TokenFileOption = None,
        wait: Annotated[bool, typer.Option("--wait", help="Wait until it has stopped.")] = False,
    ) -> None:
        from privacy_ray.k8s import jobs

        client = jobs.connect(address, jobs.auth_token(token_file))
        if not jobs.stop(client, job_id):
            typer.echo(f"job {job_id} had already finished: {jobs.status(client, job_id)}")
            return
        if wait:
            typer.echo(f"job {job_id} {jobs.wait(client, job_id)}")
        else:
            typer.echo(f"stop requested for {job_id}")

    @jobs_app.command("list", help="List the cluster's jobs, oldest first.\n\nExamples:\n\n"
                      "  privacy-ray jobs list -a http://127.0.0.1:8265\n\n"
                      "  privacy-ray jobs list --json")
    def jobs_list(address: JobAddressOption = None, token_file: TokenFileOption = None,
                  json_out: JsonOption = False) -> None:
        from privacy_ray.k8s import jobs

        listed = jobs.list_jobs(jobs.connect(address, jobs.auth_token(token_file)))
        if json_out:
            echo_json(listed)
        else:
            for job in listed:
                typer.echo(jobs.describe(job))
