"""The distributed path: a head and a worker node, started as separate ``ray start`` processes,
run the main pipeline with stages on both nodes and produce the same outputs as the session's
single-node run for the same seed."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from privacy_ray.cli import app
from tests.ray_nodes import clean_env, free_ports, kill_leftovers, start_node, stop_node

pytestmark = pytest.mark.slow
N, SEED = 120, 11


@pytest.fixture(scope="module")
def two_node_cluster():
    """A head (2 CPUs, no dashboard) and one worker node (2 CPUs), token-authenticated.

    Two CPUs, like the smallest node the manifests ask for: the default pipeline runs a
    1-CPU task beside its actor pools, which need a node with room for both.
    """
    token = secrets.token_hex(24)
    temp_dir = tempfile.mkdtemp(prefix="prmn", dir="/tmp")
    env = clean_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    gcs, client, metrics, nm, om, agent, agent_grpc, rte = free_ports(8)
    common = ["--num-cpus=2", "--num-gpus=0", f"--temp-dir={temp_dir}", "--disable-usage-stats",
              f"--object-store-memory={150 * 1024 * 1024}"]
    head = start_node(["--head", f"--port={gcs}", "--include-dashboard=false",
                       f"--ray-client-server-port={client}", f"--metrics-export-port={metrics}",
                       f"--node-manager-port={nm}", f"--object-manager-port={om}",
                       f"--dashboard-agent-listen-port={agent}",
                       f"--dashboard-agent-grpc-port={agent_grpc}",
                       f"--runtime-env-agent-port={rte}", *common], temp_dir, env, "head.log")
    address = f"127.0.0.1:{gcs}"
    worker = None
    try:
        time.sleep(5)
        w_metrics, w_nm, w_om, w_agent, w_grpc, w_rte = free_ports(6)
        worker = start_node([f"--address={address}", f"--metrics-export-port={w_metrics}",
                             f"--node-manager-port={w_nm}", f"--object-manager-port={w_om}",
                             f"--dashboard-agent-listen-port={w_agent}",
                             f"--dashboard-agent-grpc-port={w_grpc}",
                             f"--runtime-env-agent-port={w_rte}", *common],
                            temp_dir, env, "worker.log")
        probe = ("import ray,sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
                 "print(len([n for n in ray.nodes() if n['Alive']]))")
        deadline = time.monotonic() + 180
        while True:
            out = subprocess.run([sys.executable, "-c", probe, address], env=env,
                                 capture_output=True, text=True, timeout=120)
            if out.stdout.strip() == "2":
                break
            if time.monotonic() > deadline:
                pytest.fail("two Ray nodes did not come up:\n" + out.stderr[-2000:] + "\n" +
                            (Path(temp_dir) / "head.log").read_text()[-2000:])
            time.sleep(2)
        yield address, env
    finally:
        for proc in (worker, head):
            if proc is not None:
                stop_node(proc)
        kill_leftovers(temp_dir)
        subprocess.run(["rm", "-rf", temp_dir], check=False)


def read_messages(run_dir: str):
    return pq.read_table(Path(run_dir) / "messages").to_pandas().sort_values(
        "message_id").reset_index(drop=True)


def test_pipeline_on_two_nodes_matches_single_node(two_node_cluster, ray_session,
                                                   tiny_model_dir, tmp_path):
    address, env = two_node_cluster
    args = ["run", "--json", "--n", str(N), "--seed", str(SEED), "--model", str(tiny_model_dir)]
    proc = subprocess.run(
        [sys.executable, "-m", "privacy_ray", *args, "--address", address, "--output",
         str(tmp_path / "multi")], env={**env, "PRIVACY_RAY_CLASSIFIER__CACHE_DIR": str(tmp_path)},
        capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    multi = json.loads(proc.stdout.strip().splitlines()[-1])
    stats = json.loads((Path(multi["run_dir"]) / "stats.json").read_text())
    all_nodes = {n for ids in stats["nodes"].values() for n in ids}
    assert len(all_nodes) == 2, stats["nodes"]  # stages ran on both nodes

    res = CliRunner().invoke(app, [*args, "--output", str(tmp_path / "single")])
    assert res.exit_code == 0, res.output
    single = json.loads(res.stdout.strip().splitlines()[-1])
    assert multi["records_in"] == single["records_in"] == N
    a, b = read_messages(multi["run_dir"]), read_messages(single["run_dir"])
    assert a["message_id"].tolist() == b["message_id"].tolist()
    assert a["label"].tolist() == b["label"].tolist()
    assert a["text"].tolist() == b["text"].tolist()
    feats = [c for c in a.columns if c.startswith("f_")]
    assert np.allclose(a[feats].to_numpy(float), b[feats].to_numpy(float))
    assert np.allclose(np.stack(a["embedding"]), np.stack(b["embedding"]), atol=1e-5)
