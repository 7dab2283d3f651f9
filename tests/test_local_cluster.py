"""A throwaway local head: its own ports next to any other Ray, and nothing left after stop."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from privacy_ray.k8s import jobs
from tests.ray_nodes import clean_env


def _alive_in_group(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # pgrp; zombies are already dead
            pids.append(int(entry.name))
    return pids


@pytest.mark.slow
def test_head_started_by_a_process_is_gone_when_that_process_exits(ray_session, tmp_path):
    # The session's Ray already holds Ray's default ports (the dashboard agent's 52365 among
    # them): the head must still come up and take jobs, and must not outlive its creator
    # (a notebook kernel that fails before its clean-up cell).
    script = textwrap.dedent("""
        import json, sys
        from privacy_ray.k8s import jobs
        from privacy_ray.local_cluster import start_local_head
        head = start_local_head(num_cpus=1, object_store_mb=100)
        client = jobs.connect(head.dashboard, head.token)
        print(json.dumps({"pgid": head.process.pid, "temp_dir": head.temp_dir,
                          "dashboard": head.dashboard, "token": head.token,
                          "version": client.get_version()}), flush=True)
        sys.exit(3)  # no stop() call: atexit must do it
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300, env=clean_env(), cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 3, out.stderr[-2000:]
    import json

    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["version"]
    assert _alive_in_group(info["pgid"]) == []
    assert not Path(info["temp_dir"]).exists()
    with pytest.raises(jobs.JobSubmissionError):
        jobs.connect(info["dashboard"], info["token"])
