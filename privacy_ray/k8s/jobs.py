"""Submit and follow privacy-ray jobs on a Ray cluster through Ray's Job Submission SDK.

The request (entrypoint, runtime env, entrypoint resources, metadata) is built by plain
functions that tests check without Ray; only :func:`connect` and the functions that take a
client talk to a cluster, and ``ray`` is imported there, not at module import.

A ``--config FILE`` travels with the job as ``PRIVACY_RAY_SECTION__KEY`` environment variables,
which the config loader on the cluster applies on top of the cluster's own config. Local paths
(``*_dir``, ``*path``) are not shipped: they would point nowhere on the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from privacy_ray.config import ENV_NESTING, ENV_PREFIX, ResolvedConfig, Settings
from privacy_ray.errors import PrivacyRayError

if TYPE_CHECKING:  # pragma: no cover
    from ray.job_submission import JobSubmissionClient

#: Exit codes of ``privacy-ray submit`` and ``jobs logs --follow``, by final job status.
EXIT_CODES: dict[str, int] = {"SUCCEEDED": 0, "FAILED": 1, "STOPPED": 4}
TERMINAL_STATUSES = frozenset(EXIT_CODES)
#: Environment variable carrying the run id into the job (informational for the entrypoint).
RUN_ID_ENV = "PRIVACY_RAY_RUN_ID"
#: Config keys never shipped to a cluster: the cluster decides where Ray and production are.
NOT_SHIPPED = frozenset({
    "runtime.environment",
    "runtime.ray_address",
    "runtime.ray_num_cpus",
    "runtime.ray_object_store_memory_mb",
    "runtime.metrics_export_port",
})
_SUBMISSION_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class JobSubmissionError(PrivacyRayError):
    """The cluster cannot be reached, refused the job, or does not know the job id."""


@dataclass(frozen=True)
class JobRequest:
    """Everything ``JobSubmissionClient.submit_job`` is called with."""

    entrypoint: str
    submission_id: str
    runtime_env: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    num_cpus: float | None = None
    num_gpus: float | None = None
    memory_mb: int | None = None
    resources: dict[str, float] | None = None

    def submit_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``submit_job``; unset resources are left out."""
        kwargs: dict[str, Any] = {
            "entrypoint": self.entrypoint,
            "submission_id": self.submission_id,
            "runtime_env": self.runtime_env,
            "metadata": self.metadata,
        }
        if self.num_cpus is not None:
            kwargs["entrypoint_num_cpus"] = self.num_cpus
        if self.num_gpus is not None:
            kwargs["entrypoint_num_gpus"] = self.num_gpus
        if self.memory_mb is not None:
            kwargs["entrypoint_memory"] = self.memory_mb * 1024 * 1024
        if self.resources:
            kwargs["entrypoint_resources"] = self.resources
        return kwargs


# --------------------------------------------------------------------------- building


def new_run_id(now: datetime | None = None, token: str | None = None) -> str:
    """``20260101t020000-1a2b3c``: sortable, unique enough, valid in names and ids."""
    now = now or datetime.now(UTC)
    return f"{now.strftime('%Y%m%dt%H%M%S')}-{token or secrets.token_hex(3)}"


def config_hash(settings: Settings) -> str:
    """Short hash of a resolved config, recorded in job metadata for audits."""
    canonical = json.dumps(settings.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _is_local_path_key(key: str) -> bool:
    return key.endswith(("_dir", "path"))


def config_env(resolved: ResolvedConfig) -> tuple[dict[str, str], list[str]]:
    """The file-set config keys as ``PRIVACY_RAY_SECTION__KEY`` env vars, and what was skipped.

    Values are JSON, which the loader parses as YAML, so strings stay strings (``"null"``) and
    mappings travel whole. Only keys set in the config file are shipped; defaults and the
    submitting machine's environment are not.
    """
    dumped = resolved.settings.model_dump(mode="json")
    env: dict[str, str] = {}
    skipped: list[str] = []
    keys = sorted({".".join(k.split(".")[:2]) for k, src in resolved.sources.items()
                   if src.startswith("file:")})
    for key in keys:
        section, name = key.split(".")
        value = dumped[section][name]
        if key in NOT_SHIPPED:
            skipped.append(f"{key} (the cluster sets it)")
            continue
        if _is_local_path_key(name) and value is not None and "://" not in str(value):
            skipped.append(f"{key}={value} (a local path; use s3:// or a cluster path)")
            continue
        var = f"{ENV_PREFIX}{section.upper()}{ENV_NESTING}{name.upper()}"
        env[var] = json.dumps(value, sort_keys=True)
    return env, skipped


def load_runtime_env(path: str | None) -> dict[str, Any]:
    """A runtime env from a YAML or JSON file (``pip``, ``env_vars``, ``working_dir``...)."""
    if not path:
        return {}
    p = Path(path)
    if not p.is_file():
        raise JobSubmissionError(f"runtime env file {path} not found; pass a YAML or JSON file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise JobSubmissionError(f"runtime env file {path} is not valid YAML or JSON") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        msg = f"runtime env file {path} must hold a mapping (env_vars:, pip:, working_dir:)"
        raise JobSubmissionError(msg)
    return data


def parse_resources(text: str | None) -> dict[str, float] | None:
    """``--resources '{"accelerator_type:A10G": 1}'`` as a dict of floats."""
    if not text:
        return None
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError
        return {str(k): float(v) for k, v in data.items()}
    except (ValueError, TypeError) as e:
        msg = f"--resources must be a JSON object of numbers like '{{\"A10G\": 1}}', got {text!r}"
        raise JobSubmissionError(msg) from e


def build_request(
    command: str,
    argv: list[str],
    *,
    resolved: ResolvedConfig,
    ship_config: bool,
    run_id: str | None = None,
    submission_id: str | None = None,
    working_dir: str | None = None,
    runtime_env_file: str | None = None,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    memory_mb: int | None = None,
    resources: str | None = None,
) -> tuple[JobRequest, list[str]]:
    """The job for ``privacy-ray <command> <argv...>``, and the config keys not shipped."""
    import shlex

    from privacy_ray.k8s.values import DEFAULT_TAG

    run_id = run_id or new_run_id()
    submission_id = submission_id or f"privacy-ray-{command}-{run_id}"
    if not _SUBMISSION_ID_RE.match(submission_id):
        msg = (f"submission id {submission_id!r} must be letters, digits, '-', '_' or '.' "
               "(at most 128)")
        raise JobSubmissionError(msg)
    for name, v in (("--num-cpus", num_cpus), ("--num-gpus", num_gpus), ("--memory-mb", memory_mb)):
        if v is not None and v < 0:
            raise JobSubmissionError(f"{name} must not be negative, got {v}")
    runtime_env = load_runtime_env(runtime_env_file)
    if working_dir:
        if "://" not in working_dir and not Path(working_dir).is_dir():
            raise JobSubmissionError(f"--working-dir {working_dir} is not a directory")
        runtime_env["working_dir"] = working_dir
    env, skipped = config_env(resolved) if ship_config else ({}, [])
    env_vars = {str(k): str(v) for k, v in (runtime_env.get("env_vars") or {}).items()}
    env_vars.update(env)
    env_vars[RUN_ID_ENV] = run_id
    runtime_env["env_vars"] = dict(sorted(env_vars.items()))
    metadata = {
        "privacy_ray.command": command,
        "privacy_ray.run_id": run_id,
        "privacy_ray.config_hash": config_hash(resolved.settings),
        "privacy_ray.version": DEFAULT_TAG,
        "privacy_ray.submitted_by": _user(),
    }
    request = JobRequest(
        entrypoint=shlex.join(["privacy-ray", command, *argv]),
        submission_id=submission_id,
        runtime_env=runtime_env,
        metadata=metadata,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        memory_mb=memory_mb,
        resources=parse_resources(resources),
    )
    return request, skipped


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return "unknown"


def exit_code_for(status: str) -> int:
    """Process exit code for a final job status (0 only for SUCCEEDED)."""
    return EXIT_CODES.get(str(status), 1)


# --------------------------------------------------------------------------- cluster


def normalize_address(address: str | None) -> str:
    """The dashboard URL; a bare ``host:port`` gets ``http://``."""
    if not address:
        msg = ("no Ray dashboard address: pass --address http://HEAD:8265 or set RAY_ADDRESS "
               "(on EKS: kubectl -n data-pipeline port-forward svc/privacy-ray-head-svc 8265)")
        raise JobSubmissionError(msg)
    return address if "://" in address else f"http://{address}"


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def auth_token(token_file: str | None = None,
               environ: Mapping[str, str] | None = None) -> str | None:
    """The cluster's Ray auth token: ``token_file``, else RAY_AUTH_TOKEN, else RAY_AUTH_TOKEN_PATH,
    else ``~/.ray/auth_token`` when it exists (where ``ray get-auth-token --generate`` writes it).

    Clusters with ``authOptions.mode: token`` (the rendered manifests) reject requests without
    it. The token never comes from a command-line argument, where ``ps`` would show it.
    """
    environ = os.environ if environ is None else environ
    path = token_file or environ.get("RAY_AUTH_TOKEN_PATH")
    if token_file is None and environ.get("RAY_AUTH_TOKEN"):
        return environ["RAY_AUTH_TOKEN"].strip()
    if not path:
        default = Path("~/.ray/auth_token").expanduser()
        return (default.read_text(encoding="utf-8").strip() or None) if default.is_file() else None
    p = Path(path).expanduser()
    if not p.is_file():
        raise JobSubmissionError(f"auth token file {path} not found")
    token = p.read_text(encoding="utf-8").strip()
    if not token:
        raise JobSubmissionError(f"auth token file {path} is empty")
    return token


def connect(address: str | None, token: str | None = None) -> JobSubmissionClient:
    """A client for the cluster at ``address``; unreachable clusters are a one-line error."""
    url = normalize_address(address)
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        return JobSubmissionClient(url, headers=headers)
    except AuthenticationError as e:
        msg = (f"the Ray cluster at {url} requires an auth token; set RAY_AUTH_TOKEN or pass "
               "--token-file (see deploy/EKS-DEPLOYMENT.md)" if not token else
               f"the Ray cluster at {url} rejected the auth token; check RAY_AUTH_TOKEN")
        raise JobSubmissionError(msg) from e
    except (ConnectionError, RuntimeError, ValueError) as e:
        msg = (f"cannot reach the Ray dashboard at {url} ({_first_line(e)}); check --address "
               "or the port-forward to the head service's port 8265")
        raise JobSubmissionError(msg) from e


def _call(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    from ray.exceptions import AuthenticationError

    try:
        return fn(*args, **kwargs)
    except AuthenticationError as e:
        msg = f"{what}: the cluster wants a valid auth token; set RAY_AUTH_TOKEN or --token-file"
        raise JobSubmissionError(msg) from e
    except (ConnectionError, RuntimeError, ValueError) as e:
        detail = _first_line(e)
        if "404" in detail or "does not exist" in detail:
            msg = f"{what}: no such job on this cluster; list jobs with privacy-ray jobs list"
        else:
            msg = f"{what} failed: {detail}"
        raise JobSubmissionError(msg) from e


#: How long to retry while a freshly started head has no job agent yet ("No available agent").
AGENT_WAIT_S = 60.0


def submit(client: JobSubmissionClient, request: JobRequest,
           agent_wait_s: float = AGENT_WAIT_S) -> str:
    """Submit ``request``; returns the submission id.

    A head that has just started answers "No available agent to submit job" until its job
    agent is up: that answer is retried for ``agent_wait_s`` seconds, anything else is not.
    """
    import time

    deadline = time.monotonic() + agent_wait_s
    while True:
        try:
            return _call(f"submitting {request.submission_id}", client.submit_job,
                         **request.submit_kwargs())
        except JobSubmissionError as e:
            if "No available agent" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(2)


def status(client: JobSubmissionClient, submission_id: str) -> str:
    """The job's status as a plain string (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED)."""
    return str(_call(f"job {submission_id}", client.get_job_status, submission_id))


def info(client: JobSubmissionClient, submission_id: str) -> dict[str, Any]:
    """The job's details (status, message, entrypoint, metadata, times) as plain JSON data."""
    details = _call(f"job {submission_id}", client.get_job_info, submission_id)
    return _to_json(details)


def list_jobs(client: JobSubmissionClient) -> list[dict[str, Any]]:
    """Every job the cluster knows, oldest first."""
    jobs = [_to_json(j) for j in _call("listing jobs", client.list_jobs)]
    return sorted(jobs, key=lambda j: (j.get("start_time") or 0, j.get("submission_id") or ""))


def logs(client: JobSubmissionClient, submission_id: str) -> str:
    """The job's logs so far."""
    return str(_call(f"job {submission_id}", client.get_job_logs, submission_id))


def stop(client: JobSubmissionClient, submission_id: str) -> bool:
    """Ask the job to stop; False when it had already finished."""
    return bool(_call(f"job {submission_id}", client.stop_job, submission_id))


def _to_json(obj: Any) -> dict[str, Any]:
    if hasattr(obj, "model_dump_json"):
        return json.loads(obj.model_dump_json())
    if hasattr(obj, "json"):
        return json.loads(obj.json())
    return dict(obj)


def wait(client: JobSubmissionClient, submission_id: str, poll_s: float = 1.0,
         timeout_s: float | None = None) -> str:
    """Poll until the job reaches a terminal status; returns it."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        current = status(client, submission_id)
        if current in TERMINAL_STATUSES:
            return current
        if deadline is not None and time.monotonic() > deadline:
            msg = (f"job {submission_id} still {current} after {timeout_s:g} s; follow it with "
                   f"privacy-ray jobs logs {submission_id} --follow")
            raise JobSubmissionError(msg)
        time.sleep(poll_s)


def follow(client: JobSubmissionClient, submission_id: str, write: Callable[[str], None],
           poll_s: float = 1.0) -> str:
    """Stream the job's logs through ``write`` until it ends; returns the final status.

    The log stream is a websocket that closes when the job ends. If it drops early, the rest of
    the logs are fetched once the job is over, so nothing is lost.
    """
    written = 0

    async def _tail() -> None:
        nonlocal written
        async for chunk in client.tail_job_logs(submission_id):
            write(chunk)
            written += len(chunk)

    with contextlib.suppress(RuntimeError, ConnectionError, OSError):
        asyncio.run(_tail())  # if the stream drops, polling below picks up the rest
    final = wait(client, submission_id, poll_s=poll_s)
    rest = logs(client, submission_id)
    if len(rest) > written:
        write(rest[written:])
    return final


def describe(job: Mapping[str, Any]) -> str:
    """One line for a job: id, status, message."""
    sid = job.get("submission_id") or job.get("job_id") or "?"
    msg = (job.get("message") or "").strip().splitlines()
    return f"{sid}  {job.get('status', '?')}" + (f"  {msg[0]}" if msg else "")
