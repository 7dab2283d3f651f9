"""A throwaway local Ray head with the job API, for trying RayJob workflows without a cluster.

``ray.init()`` cannot choose the dashboard agent's port, so a second Ray on a machine (a
notebook next to a running Ray, a test next to the test session's Ray) finds the default port
taken: its agent then stays up without HTTP and every job submission answers "No available
agent". :func:`start_local_head` runs ``ray start --head --block`` with a free port for every
service, in its own process group and temp dir, and :meth:`LocalHead.stop` tears it down
through that group — never with ``ray stop``, which stops every Ray on the machine.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from privacy_ray.config import ray_system_config_env
from privacy_ray.errors import PrivacyRayError

#: The ports ``ray start --head`` would otherwise take at fixed defaults.
_PORT_FLAGS = ("--port", "--dashboard-port", "--ray-client-server-port",
               "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
               "--runtime-env-agent-port", "--metrics-export-port", "--node-manager-port",
               "--object-manager-port")


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on loopback right now (held together so none repeats)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class LocalHead:
    """A running local head: where its dashboard (job API) and GCS listen."""

    dashboard: str
    gcs_address: str
    temp_dir: str
    process: subprocess.Popen
    token: str | None  # the head's auth token (None when started with RAY_AUTH_MODE=disabled)

    def stop(self, remove_temp_dir: bool = True) -> None:
        """Stop the head's process group, then any process still naming its temp dir.

        SIGTERM lets ``ray start --block`` drain; whatever of the group outlives it (agents
        whose parent died first) gets SIGKILL. Safe to call twice.
        """
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        kill_processes_naming(self.temp_dir)
        if remove_temp_dir:
            subprocess.run(["rm", "-rf", self.temp_dir], check=False)
        atexit.unregister(self.stop)

    def __enter__(self) -> LocalHead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def kill_processes_naming(marker: str) -> None:
    """SIGKILL processes whose command line contains ``marker`` (workers that left the group)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)


def start_local_head(num_cpus: float = 1, object_store_mb: int = 200,
                     env: dict[str, str] | None = None, extra_args: list[str] | None = None,
                     ready_timeout_s: float = 180.0) -> LocalHead:
    """Start ``ray start --head`` on loopback with free ports; returns once jobs can be submitted.

    ``env`` replaces the head's environment (default: this process's, without ``RAY_ADDRESS``).
    The head uses token auth with a fresh token (``LocalHead.token``) unless ``env`` sets
    ``RAY_AUTH_TOKEN`` or ``RAY_AUTH_MODE=disabled``.
    Raises :class:`PrivacyRayError` with the head's log tail when it exits or does not become
    ready within ``ready_timeout_s``. The head stops, at the latest, when this interpreter exits.
    """
    from privacy_ray.k8s import jobs

    temp_dir = tempfile.mkdtemp(prefix="prh", dir="/tmp")  # short: socket paths are limited
    ports = free_ports(len(_PORT_FLAGS))
    args = [f"{flag}={port}" for flag, port in zip(_PORT_FLAGS, ports, strict=True)]
    head_env = dict(env if env is not None else os.environ)
    head_env.pop("RAY_ADDRESS", None)
    head_env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    for name, value in ray_system_config_env().items():
        head_env.setdefault(name, value)
    if head_env.get("RAY_AUTH_MODE", "token").lower() == "token":
        head_env["RAY_AUTH_MODE"] = "token"
        head_env.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(24))
    token = head_env.get("RAY_AUTH_TOKEN") if head_env["RAY_AUTH_MODE"] == "token" else None
    log_path = Path(temp_dir) / "ray-start.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
             f"--num-cpus={num_cpus}", "--num-gpus=0", "--include-dashboard=true",
             "--dashboard-host=127.0.0.1",
             f"--object-store-memory={object_store_mb * 1024 * 1024}",
             f"--temp-dir={temp_dir}", "--disable-usage-stats", *args, *(extra_args or [])],
            stdout=log, stderr=subprocess.STDOUT, env=head_env, start_new_session=True,
            cwd=temp_dir)
    from ray.util import get_node_ip_address  # the IP ``ray start`` advertises the GCS on

    head = LocalHead(dashboard=f"http://127.0.0.1:{ports[1]}",
                     gcs_address=f"{get_node_ip_address()}:{ports[0]}", temp_dir=temp_dir,
                     process=process, token=token)
    deadline = time.monotonic() + ready_timeout_s
    while True:
        problem = None
        if process.poll() is not None:
            problem = f"ray start exited with {process.returncode}"
        elif time.monotonic() > deadline:
            problem = f"the local Ray head was not ready within {ready_timeout_s:.0f} s"
        if problem:
            tail = log_path.read_text(errors="replace")[-2000:]
            head.stop(remove_temp_dir=False)
            raise PrivacyRayError(f"{problem}; its log ({log_path}) ends:\n{tail}")
        try:
            jobs.connect(head.dashboard, token)
        except jobs.JobSubmissionError:
            time.sleep(1)
            continue
        atexit.register(head.stop)  # a notebook kernel that dies or restarts leaves nothing
        return head
