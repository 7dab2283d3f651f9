"""Job submission: request building without Ray; a real submitted job on a local head (slow)."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from privacy_ray.config import Settings, load_config
from privacy_ray.k8s import jobs
from privacy_ray.k8s.jobs import JobSubmissionError, build_request, config_env
from privacy_ray.local_cluster import start_local_head
from tests.ray_nodes import clean_env

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def _resolved(tmp_path: Path, text: str):
    path = tmp_path / "job-config.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(str(path), environ={})


def _app() -> typer.Typer:
    from privacy_ray.cli import jobs_cmd

    app = typer.Typer()
    jobs_cmd.register(app)
    return app


# --------------------------------------------------------------------------- request building


def test_build_request_entrypoint_metadata_and_env(tmp_path):
    resolved = _resolved(tmp_path, "embedding:\n  cpu_batch_size: 32\n")
    request, skipped = build_request(
        "run",
        ["--input", "s3://bucket/day=2026-01-01/", "--n", "50"],
        resolved=resolved,
        ship_config=True,
        run_id="20260101t020000-abc123",
        num_cpus=1,
        memory_mb=512,
        resources='{"accelerator": 1}',
    )
    assert skipped == []
    assert request.entrypoint == ("privacy-ray run --input s3://bucket/day=2026-01-01/ --n 50")
    assert request.submission_id == "privacy-ray-run-20260101t020000-abc123"
    assert request.metadata["privacy_ray.run_id"] == "20260101t020000-abc123"
    assert request.metadata["privacy_ray.command"] == "run"
    assert request.metadata["privacy_ray.config_hash"] == jobs.config_hash(resolved.settings)
    assert all(isinstance(v, str) for v in request.metadata.values())
    env = request.runtime_env["env_vars"]
    assert env["PRIVACY_RAY_EMBEDDING__CPU_BATCH_SIZE"] == "32"
    assert env[jobs.RUN_ID_ENV] == "20260101t020000-abc123"
    kwargs = request.submit_kwargs()
    assert kwargs["entrypoint_num_cpus"] == 1
    assert kwargs["entrypoint_memory"] == 512 * 1024 * 1024
    assert kwargs["entrypoint_resources"] == {"accelerator": 1.0}
    assert "entrypoint_num_gpus" not in kwargs


def test_entrypoint_quotes_arguments(tmp_path):
    request, _ = build_request(
        "conversations",
        ["--input", "s3://b/my dir/", "--store", "/mnt/store"],
        resolved=_resolved(tmp_path, ""),
        ship_config=False,
    )
    assert request.entrypoint == (
        "privacy-ray conversations --input 's3://b/my dir/' --store /mnt/store"
    )
    assert request.submission_id.startswith("privacy-ray-conversations-")


def test_config_env_round_trips_through_the_loader(tmp_path):
    text = (
        "embedding:\n  cpu_batch_size: 32\n  model: 'null'\n"
        "input:\n  column_map: {Body: text, ts: timestamp}\n"
        "pipeline:\n  resources:\n    embed: {num_cpus: 2, num_gpus: 1}\n"
        "runtime:\n  log_level: DEBUG\n  environment: development\n"
    )
    resolved = _resolved(tmp_path, text)
    env, skipped = config_env(resolved)
    assert "PRIVACY_RAY_RUNTIME__ENVIRONMENT" not in env
    assert any(s.startswith("runtime.environment") for s in skipped)
    remote = load_config(None, environ=env).settings
    assert remote.embedding.cpu_batch_size == 32
    assert remote.embedding.model == "null"  # a string stays a string
    assert remote.input.column_map == {"Body": "text", "ts": "timestamp"}
    assert remote.pipeline.resources["embed"].num_gpus == 1
    assert remote.runtime.log_level == "DEBUG"


def test_local_paths_are_not_shipped_but_remote_ones_are(tmp_path):
    resolved = _resolved(
        tmp_path, "pipeline:\n  output_dir: out/local\nstore:\n  path: s3://bucket/store\n"
    )
    env, skipped = config_env(resolved)
    assert "PRIVACY_RAY_PIPELINE__OUTPUT_DIR" not in env
    assert any("pipeline.output_dir=out/local" in s for s in skipped)
    assert json.loads(env["PRIVACY_RAY_STORE__PATH"]) == "s3://bucket/store"


def test_runtime_env_file_is_merged(tmp_path):
    rte = tmp_path / "rte.yaml"
    rte.write_text("env_vars:\n  FOO: bar\npip: [requests]\n", encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    request, _ = build_request(
        "run",
        [],
        resolved=_resolved(tmp_path, ""),
        ship_config=False,
        runtime_env_file=str(rte),
        working_dir=str(work),
    )
    assert request.runtime_env["pip"] == ["requests"]
    assert request.runtime_env["working_dir"] == str(work)
    assert request.runtime_env["env_vars"]["FOO"] == "bar"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"num_cpus": -1}, "--num-cpus must not be negative"),
        ({"submission_id": "bad id!"}, "submission id"),
        ({"working_dir": "/does/not/exist"}, "is not a directory"),
        ({"runtime_env_file": "/does/not/exist.yaml"}, "not found"),
        ({"resources": "[1, 2]"}, "--resources must be a JSON object"),
    ],
)
def test_bad_requests_are_one_line_errors(tmp_path, kwargs, fragment):
    with pytest.raises(JobSubmissionError) as e:
        build_request("run", [], resolved=_resolved(tmp_path, ""), ship_config=False, **kwargs)
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_exit_codes_and_addresses():
    assert jobs.exit_code_for("SUCCEEDED") == 0
    assert jobs.exit_code_for("FAILED") == 1
    assert jobs.exit_code_for("STOPPED") == 4
    assert jobs.normalize_address("head:8265") == "http://head:8265"
    assert jobs.normalize_address("https://head:8265") == "https://head:8265"
    with pytest.raises(JobSubmissionError, match="--address"):
        jobs.normalize_address(None)


def test_auth_token_sources_in_order(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert jobs.auth_token(environ={}) is None
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("from-ray-default\n")
    assert jobs.auth_token(environ={}) == "from-ray-default"
    (tmp_path / "t").write_text("from-path")
    assert jobs.auth_token(environ={"RAY_AUTH_TOKEN_PATH": str(tmp_path / "t")}) == "from-path"
    assert jobs.auth_token(environ={"RAY_AUTH_TOKEN": "env", "RAY_AUTH_TOKEN_PATH": "x"}) == "env"
    assert jobs.auth_token(str(tmp_path / "t"), environ={"RAY_AUTH_TOKEN": "env"}) == "from-path"
    with pytest.raises(JobSubmissionError, match="not found"):
        jobs.auth_token(str(tmp_path / "missing"), environ={})


def test_run_id_is_sortable_and_name_safe():
    from datetime import UTC, datetime

    rid = jobs.new_run_id(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), token="a1b2c3")
    assert rid == "20260102t030405-a1b2c3"


def test_cli_date_is_checked_before_connecting():
    result = CliRunner().invoke(
        _app(),
        [
            "submit",
            "conversations",
            "--input",
            "x",
            "--store",
            "y",
            "--date",
            "2026-13-01",
            "-a",
            "http://h:1",
        ],
    )
    assert isinstance(result.exception, JobSubmissionError)
    assert "YYYY-MM-DD" in str(result.exception)


def test_cli_unreachable_cluster_is_one_line_and_exit_2():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.run(
        [
            str(VENV_BIN / "privacy-ray"),
            "jobs",
            "status",
            "some-job",
            "--address",
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RAY_ADDRESS": ""},
    )
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the Ray dashboard")
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- a real head


@pytest.fixture(scope="module")
def ray_head():
    """A separate local Ray head with token auth (own ports, temp dir and token).

    Yields ``(dashboard address, auth token)``.
    """
    import secrets as _secrets

    token = _secrets.token_hex(24)
    env = clean_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    with start_local_head(num_cpus=1, object_store_mb=100, env=env) as head:
        yield head.dashboard, token


@pytest.mark.slow
def test_submitted_job_completes_and_writes_its_output(ray_head, tmp_path):
    address, token = ray_head
    out_file = tmp_path / "job-output.txt"
    work = tmp_path / "work"
    work.mkdir()
    (work / "input.txt").write_text("42\n", encoding="utf-8")
    code = (
        "import os, pathlib; n = int(pathlib.Path('input.txt').read_text()); "
        f"pathlib.Path({str(out_file)!r}).write_text(str(n * 2) + ' ' + os.environ['X_RUN']); "
        "print('job-marker', n * 2)"
    )
    request = jobs.JobRequest(
        entrypoint=f"{sys.executable} -c {json.dumps(code)}",
        submission_id=f"privacy-ray-test-{jobs.new_run_id()}",
        runtime_env={"working_dir": str(work), "env_vars": {"X_RUN": "run-7"}},
        metadata={"privacy_ray.run_id": "run-7"},
    )
    client = jobs.connect(address, token)
    sid = jobs.submit(client, request)
    chunks: list[str] = []
    final = jobs.follow(client, sid, chunks.append, poll_s=0.5)
    assert final == "SUCCEEDED", jobs.logs(client, sid)
    assert "job-marker 84" in "".join(chunks)
    assert out_file.read_text(encoding="utf-8") == "84 run-7"
    details = jobs.info(client, sid)
    assert details["metadata"]["privacy_ray.run_id"] == "run-7"
    assert any(j["submission_id"] == sid for j in jobs.list_jobs(client))

    runner = CliRunner(env={"RAY_AUTH_TOKEN": token})
    status = runner.invoke(_app(), ["jobs", "status", sid, "--address", address, "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["status"] == "SUCCEEDED"
    logs = runner.invoke(_app(), ["jobs", "logs", sid, "--address", address])
    assert "job-marker 84" in logs.stdout
    denied = CliRunner(env={"RAY_AUTH_TOKEN": ""}).invoke(
        _app(), ["jobs", "status", sid, "--address", address]
    )
    assert isinstance(denied.exception, JobSubmissionError)
    assert "auth token" in str(denied.exception)


@pytest.mark.slow
def test_config_travels_with_the_job(ray_head, tmp_path):
    """`privacy-ray config show --json` on the cluster sees the submitted --config values."""
    address, token = ray_head
    resolved = _resolved(tmp_path, "embedding:\n  cpu_batch_size: 48\n")
    request, _ = build_request(
        "config", ["show", "--json"], resolved=resolved, ship_config=True, working_dir=str(tmp_path)
    )
    # The head's PATH may not include the venv: run the same CLI by absolute path.
    request = dataclasses.replace(
        request,
        entrypoint=request.entrypoint.replace("privacy-ray", str(VENV_BIN / "privacy-ray"), 1),
    )
    client = jobs.connect(address, token)
    sid = jobs.submit(client, request)
    assert jobs.wait(client, sid, poll_s=0.5, timeout_s=300) == "SUCCEEDED", jobs.logs(client, sid)
    shown = json.loads(jobs.logs(client, sid).strip().splitlines()[-1])
    assert shown["values"]["embedding.cpu_batch_size"] == 48
    assert shown["sources"]["embedding.cpu_batch_size"] == (
        "env:PRIVACY_RAY_EMBEDDING__CPU_BATCH_SIZE"
    )
    assert jobs.info(client, sid)["metadata"]["privacy_ray.config_hash"] == (
        jobs.config_hash(resolved.settings)
    )


@pytest.mark.slow
def test_failed_job_exits_1_through_the_cli(ray_head):
    address, token = ray_head
    request = jobs.JobRequest(
        entrypoint=f"{sys.executable} -c \"import sys; print('about to fail'); sys.exit(3)\"",
        submission_id=f"privacy-ray-test-{jobs.new_run_id()}",
    )
    client = jobs.connect(address, token)
    sid = jobs.submit(client, request)
    result = CliRunner(env={"RAY_AUTH_TOKEN": token}).invoke(
        _app(), ["jobs", "logs", sid, "--follow", "-a", address]
    )
    assert result.exit_code == 1, result.output
    assert "about to fail" in result.stdout
    assert jobs.status(client, sid) == "FAILED"
    with pytest.raises(JobSubmissionError, match="no such job"):
        jobs.status(client, "privacy-ray-does-not-exist")


def test_settings_default_hash_is_stable():
    assert jobs.config_hash(Settings()) == jobs.config_hash(Settings())
