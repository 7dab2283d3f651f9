"""Separate Ray nodes (``ray start`` processes) for tests, each in its own process group.

``ray stop`` is never used: it would also stop the test session's own Ray. Each node gets its
own ports and temp dir, and is torn down through its process group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from privacy_ray.local_cluster import free_ports, kill_processes_naming

__all__ = ["clean_env", "free_ports", "kill_leftovers", "start_node", "stop_node"]

VENV_BIN = Path(__file__).resolve().parents[1] / ".venv" / "bin"


def kill_leftovers(marker: str) -> None:
    """Kill processes whose command line names ``marker`` (our temp dir) after teardown."""
    kill_processes_naming(marker)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the test's Ray address or privacy-ray overrides."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "CONFIG_PATH")
           and (not k.startswith("PRIVACY_RAY_") or k == "PRIVACY_RAY_HMAC_KEY")}
    env.update({"RAY_USAGE_STATS_ENABLED": "0", **extra})
    return env


def start_node(args: list[str], temp_dir: str, env: dict[str, str], log_name: str):
    """``ray start --block ARGS`` in a new session; returns the Popen."""
    log = open(Path(temp_dir) / log_name, "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([str(VENV_BIN / "ray"), "start", "--block", *args], stdout=log,
                            stderr=subprocess.STDOUT, env=env, start_new_session=True,
                            cwd=temp_dir)


def stop_node(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
