"""OpenLineage events through the official client: file transport for a successful and a
failing run, HTTP to a real loopback receiver, failures that never raise, erasures, and every
emitted event checked against the official spec (shared/openlineage-spec, skipped if absent)."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path

import pyarrow as pa
import pytest

from privacy_ray.config import LineageConfig
from privacy_ray.errors import ConfigError
from privacy_ray.lineage import (
    LINEAGE_FILE,
    PRODUCER,
    LineageEmitter,
    ParentRun,
    _strip_credentials,
    assertions_from_expectations,
    dataset_id,
    input_dataset,
    message_column_lineage,
    null_counts_from_expectations,
    output_dataset,
    quarantine_column_lineage,
    vector_store_column_lineage,
)

SPEC_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "openlineage-spec"
PARENT = ParentRun("scheduler", "daily_privacy_run", "01890f6e-6a7b-7c8d-9e0f-123456789abc")
EXPECTATIONS = [
    {"suite": "raw", "key": "message_id_not_null", "column": "message_id",
     "expectation_type": "expect_column_values_to_not_be_null", "kwargs": {},
     "description": "message_id is present", "evaluated": 10, "unexpected": 1, "missing": 0,
     "pass_rate": 0.9, "success": False},
    {"suite": "raw", "key": "channel_known", "column": "channel",
     "expectation_type": "expect_column_values_to_be_in_set",
     "kwargs": {"value_set": ["chat", "email"]}, "description": "known channel",
     "evaluated": 10, "unexpected": 0, "missing": 2, "pass_rate": 1.0, "success": True},
    {"suite": "raw", "key": "timestamp_parseable", "column": "_timestamp_utc",
     "expectation_type": "expect_column_values_to_not_be_null", "kwargs": {},
     "description": "parses", "evaluated": 10, "unexpected": 0, "missing": 0,
     "pass_rate": 1.0, "success": True},
    {"suite": "derived", "key": "embedding_dim", "column": "_embedding_dim",
     "expectation_type": "expect_column_values_to_be_between",
     "kwargs": {"min_value": 584, "max_value": 584}, "description": "584 dims",
     "evaluated": 9, "unexpected": 0, "missing": 0, "pass_rate": 1.0, "success": True},
]
FEATURES = ["f_char_count", "f_kw_rights_verbs"]
OUTPUT_SCHEMA = pa.schema([("message_id", pa.string()), ("timestamp", pa.timestamp("us", "UTC")),
                           ("text", pa.string()), ("f_char_count", pa.int64()),
                           ("f_kw_rights_verbs", pa.int64()),
                           ("embedding", pa.list_(pa.float32(), 584)), ("label", pa.string()),
                           ("due_by", pa.timestamp("us", "UTC"))])


def pipeline_datasets(run_dir: Path, source: str):
    inputs = [input_dataset(
        source, {"message_id": "string", "channel": "string", "timestamp": "string",
                 "text": "string"},
        row_count=10, null_counts=null_counts_from_expectations(EXPECTATIONS),
        assertions=assertions_from_expectations(EXPECTATIONS))]
    outputs = [
        output_dataset(str(run_dir / "messages"), OUTPUT_SCHEMA, row_count=9, size_bytes=1234,
                       file_count=1, column_lineage=message_column_lineage(
                           source, FEATURES, OUTPUT_SCHEMA.names)),
        output_dataset(str(run_dir / "quarantine"), ["message_id", "text", "quarantine_reason"],
                       row_count=1, column_lineage=quarantine_column_lineage(
                           source, ["message_id", "text", "quarantine_reason"])),
    ]
    return inputs, outputs


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def validate_with_spec(path: Path) -> None:
    script = SPEC_DIR / "validate_events.py"
    if not script.is_file():
        pytest.skip(f"OpenLineage spec validator not found at {SPEC_DIR}")
    out = subprocess.run([sys.executable, str(script), str(path)], capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert " 0 problems" in out.stdout


def file_cfg(**kw) -> LineageConfig:
    return LineageConfig(transport="file", **kw)


# --------------------------------------------------------------------------- file transport


def test_successful_run_emits_start_and_complete_with_facets(tmp_path):
    run_dir = tmp_path / "runs" / "r1"
    inputs, outputs = pipeline_datasets(run_dir, str(tmp_path / "in.jsonl"))
    with LineageEmitter(file_cfg(namespace="ns", job_name="job"), str(run_dir),
                        environ={}) as emitter:
        run_uuid = emitter.start("r1", inputs=inputs, outputs=outputs, parent=PARENT,
                                 nominal_time="2026-01-05T03:00:00+00:00")
        emitter.complete()
    assert (emitter.events_emitted, emitter.transport_failures) == (2, 0)
    start, complete = read_events(run_dir / LINEAGE_FILE)
    assert [start["eventType"], complete["eventType"]] == ["START", "COMPLETE"]
    assert start["run"]["runId"] == complete["run"]["runId"] == run_uuid
    assert start["job"] == complete["job"]
    assert (start["job"]["namespace"], start["job"]["name"]) == ("ns", "job")
    assert start["producer"] == PRODUCER

    run_facets = start["run"]["facets"]
    assert run_facets["nominalTime"]["nominalStartTime"] == "2026-01-05T03:00:00+00:00"
    engine = run_facets["processing_engine"]
    assert (engine["name"], engine["version"]) == ("Ray", metadata.version("ray"))
    assert run_facets["parent"]["run"]["runId"] == PARENT.run_id
    assert run_facets["parent"]["job"] == {"namespace": "scheduler", "name": "daily_privacy_run",
                                           "facets": {}}
    tags = {t["key"]: t["value"] for t in run_facets["tags"]["tags"]}
    assert tags["privacy_ray.run_id"] == "r1"
    job_type = start["job"]["facets"]["jobType"]
    assert (job_type["processingType"], job_type["jobType"]) == ("BATCH", "JOB")

    (inp,) = complete["inputs"]
    assert (inp["namespace"], inp["name"]) == ("file", str(tmp_path / "in.jsonl"))
    assert [f["name"] for f in inp["facets"]["schema"]["fields"]][:2] == ["message_id", "channel"]
    metrics = inp["inputFacets"]["dataQualityMetrics"]
    assert metrics["rowCount"] == 10
    assert metrics["columnMetrics"]["message_id"]["nullCount"] == 1
    assert metrics["columnMetrics"]["channel"]["nullCount"] == 2
    assertions = inp["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert [(a["name"], a["success"]) for a in assertions][:2] == [
        ("raw.message_id_not_null", False), ("raw.channel_known", True)]
    assert assertions[2]["column"] == "timestamp"  # helper column mapped to its source
    assert assertions[3]["column"] == "embedding"

    messages, quarantine = complete["outputs"]
    assert messages["name"] == str(run_dir / "messages")
    assert messages["outputFacets"]["outputStatistics"] == {
        "_producer": PRODUCER, "_schemaURL": messages["outputFacets"]["outputStatistics"][
            "_schemaURL"], "rowCount": 9, "size": 1234, "fileCount": 1}
    lineage = messages["facets"]["columnLineage"]["fields"]
    assert set(lineage) == set(OUTPUT_SCHEMA.names)
    feature_src = lineage["f_char_count"]["inputFields"][0]
    assert (feature_src["name"], feature_src["field"]) == (str(tmp_path / "in.jsonl"), "text")
    assert lineage["embedding"]["inputFields"][0]["transformations"][0]["masking"] is True
    assert {f["field"] for f in lineage["due_by"]["inputFields"]} == {"text", "timestamp"}
    assert lineage["message_id"]["inputFields"][0]["transformations"][0]["subtype"] == "IDENTITY"
    reason_src = quarantine["facets"]["columnLineage"]["fields"]["quarantine_reason"]
    assert {f["transformations"][0]["type"] for f in reason_src["inputFields"]} == {"INDIRECT"}
    validate_with_spec(run_dir / LINEAGE_FILE)


def test_failing_run_emits_fail_with_error_message(tmp_path):
    run_dir = tmp_path / "r2"
    inputs, _ = pipeline_datasets(run_dir, "s3://bucket/day=2026-01-05/messages.jsonl")
    inputs.append(input_dataset("synthetic://messages?n=10&seed=1", ["message_id"], row_count=10))
    emitter = LineageEmitter(file_cfg(), str(run_dir), environ={})
    emitter.start("r2", inputs=inputs)
    try:
        raise RuntimeError("embedding actor died")
    except RuntimeError as e:
        emitter.fail(e)
    emitter.close()
    start, fail = read_events(run_dir / LINEAGE_FILE)
    assert (start["eventType"], fail["eventType"]) == ("START", "FAIL")
    error = fail["run"]["facets"]["errorMessage"]
    assert error["message"] == "RuntimeError: embedding actor died"
    assert error["programmingLanguage"] == "python"
    assert "Traceback" in error["stackTrace"]
    assert "errorMessage" not in start["run"]["facets"]
    assert [(i["namespace"], i["name"]) for i in fail["inputs"]] == [
        ("s3://bucket", "day=2026-01-05/messages.jsonl"), ("synthetic", "messages?n=10&seed=1")]
    validate_with_spec(run_dir / LINEAGE_FILE)


def test_erasure_emits_its_own_run_without_user_ids(tmp_path):
    record = {"event": "erase_user", "erasure_id": "abc123", "user_key": "hmac-of-user",
              "counts": {"0": 2, "1": 0}, "total": 2, "previous_version": 4,
              "store_version": 5, "store": str(tmp_path / "store")}
    emitter = LineageEmitter(file_cfg(), str(tmp_path), environ={})
    emitter.start("conv1", job_name="conversations_pipeline",
                  inputs=[input_dataset(str(tmp_path / "conversations.jsonl"),
                                        ["conversation_id", "user_id", "turns"])],
                  outputs=[output_dataset(str(tmp_path / "store"), ["id", "user_key"],
                                          row_count=100, column_lineage=vector_store_column_lineage(
                                              str(tmp_path / "conversations.jsonl")))])
    emitter.complete()
    run_uuid = emitter.erasure_from_record(record, rows_after=98)
    emitter.erasure(str(tmp_path / "store"), removed=0, error="store is read-only")
    pipeline_events = read_events(tmp_path / LINEAGE_FILE)[:2]
    store = pipeline_events[1]["outputs"][0]["facets"]["columnLineage"]["fields"]
    assert store["user_key"]["inputFields"][0]["field"] == "user_id"
    assert store["user_key"]["inputFields"][0]["transformations"][0]["masking"] is True
    events = read_events(tmp_path / LINEAGE_FILE)[2:]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE", "START", "FAIL"]
    assert events[0]["run"]["runId"] == run_uuid != events[2]["run"]["runId"]
    assert events[0]["job"]["name"] == "vector_store_erasure"
    tags = {t["key"]: t["value"] for t in events[1]["run"]["facets"]["tags"]["tags"]}
    assert tags["privacy_ray.erasure.removed"] == "2"
    assert tags["privacy_ray.erasure.shard.0"] == "2"
    assert tags["privacy_ray.store.version"] == "5"
    out = events[1]["outputs"][0]
    assert out["facets"]["lifecycleStateChange"]["lifecycleStateChange"] == "ALTER"
    assert out["outputFacets"]["outputStatistics"]["rowCount"] == 98
    assert events[3]["run"]["facets"]["errorMessage"]["message"] == "store is read-only"
    assert "hmac-of-user" not in (tmp_path / LINEAGE_FILE).read_text()
    validate_with_spec(tmp_path / LINEAGE_FILE)


def test_unwritable_file_transport_is_counted_not_raised(tmp_path):
    (tmp_path / LINEAGE_FILE).mkdir()  # a directory where the file should go
    emitter = LineageEmitter(file_cfg(), str(tmp_path), environ={})
    emitter.start("r3")
    emitter.complete()
    assert (emitter.events_emitted, emitter.transport_failures) == (0, 2)
    assert emitter.last_error


def test_fail_before_start_sends_nothing_and_does_not_raise(tmp_path):
    emitter = LineageEmitter(file_cfg(), str(tmp_path), environ={})
    emitter.fail(RuntimeError("source missing"))
    assert emitter.events_emitted == emitter.transport_failures == 0


def test_disabled_lineage_emits_nothing(tmp_path):
    emitter = LineageEmitter(file_cfg(enabled=False), str(tmp_path), environ={})
    emitter.start("r4")
    emitter.complete()
    off = LineageEmitter(file_cfg(), str(tmp_path), environ={"OPENLINEAGE_DISABLED": "true"})
    off.start("r5")
    assert not emitter.enabled and not off.enabled
    assert emitter.events_emitted == off.events_emitted == 0
    assert not (tmp_path / LINEAGE_FILE).exists()
    assert emitter.stats()["transport"] == "disabled"


def test_console_transport_logs_events(tmp_path, caplog):
    emitter = LineageEmitter(LineageConfig(transport="console"), None, environ={})
    with caplog.at_level(logging.INFO, logger="openlineage.client.transport.console"):
        emitter.start("r6")
        emitter.complete()
    logged = [json.loads(r.getMessage()) for r in caplog.records
              if r.name == "openlineage.client.transport.console"]
    assert [e["eventType"] for e in logged] == ["START", "COMPLETE"]
    assert emitter.events_emitted == 2


def test_configuration_errors_say_the_fix():
    with pytest.raises(ConfigError, match="OPENLINEAGE_URL"):
        LineageEmitter(LineageConfig(transport="http"), None, environ={})
    with pytest.raises(ConfigError, match="run folder"):
        LineageEmitter(file_cfg(), None, environ={})
    with pytest.raises(ConfigError, match="namespace/job_name/run_uuid"):
        ParentRun.parse("not-a-parent")


def test_parent_run_from_environment(tmp_path):
    value = f"airflow/dag.task/{PARENT.run_id}"
    emitter = LineageEmitter(file_cfg(), str(tmp_path),
                             environ={"OPENLINEAGE_PARENT_ID": value})
    emitter.start("r7")
    (start,) = read_events(tmp_path / LINEAGE_FILE)
    parent = start["run"]["facets"]["parent"]
    assert (parent["job"]["namespace"], parent["job"]["name"], parent["run"]["runId"]) == (
        "airflow", "dag.task", PARENT.run_id)


def test_dataset_naming(tmp_path):
    assert dataset_id(str(tmp_path / "a.parquet")) == ("file", str(tmp_path / "a.parquet"))
    assert dataset_id("file:///data/x.jsonl") == ("file", "/data/x.jsonl")
    assert dataset_id("s3://bucket/runs/r1/messages") == ("s3://bucket", "runs/r1/messages")
    assert dataset_id("synthetic://messages?n=10&seed=1") == ("synthetic",
                                                              "messages?n=10&seed=1")


# --------------------------------------------------------------------------- HTTP transport


class _Receiver(BaseHTTPRequestHandler):
    events: list[dict]
    paths: list[str]
    status: int = 200

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).paths.append(self.path)
        type(self).events.append(json.loads(body))
        self.send_response(type(self).status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:  # keep test output quiet
        pass


@pytest.fixture()
def receiver():
    handler = type("Receiver", (_Receiver,), {"events": [], "paths": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_transport_posts_events_to_a_local_receiver(tmp_path, receiver):
    handler, url = receiver
    inputs, outputs = pipeline_datasets(tmp_path, str(tmp_path / "in.parquet"))
    emitter = LineageEmitter(LineageConfig(transport="http", url="http://unused.invalid"),
                             None, environ={"OPENLINEAGE_URL": url})  # the env var wins
    run_uuid = emitter.start("r8", inputs=inputs, outputs=outputs)
    emitter.complete()
    emitter.close()
    assert (emitter.events_emitted, emitter.transport_failures) == (2, 0)
    assert handler.paths == ["/api/v1/lineage", "/api/v1/lineage"]
    assert [e["eventType"] for e in handler.events] == ["START", "COMPLETE"]
    assert {e["run"]["runId"] for e in handler.events} == {run_uuid}
    assert handler.events[1]["outputs"][0]["facets"]["columnLineage"]["fields"]
    captured = tmp_path / "http_events.jsonl"
    captured.write_text("".join(json.dumps(e) + "\n" for e in handler.events))
    validate_with_spec(captured)


def test_http_errors_are_counted_and_never_raised(receiver):
    handler, url = receiver
    handler.status = 400  # rejected by the backend
    emitter = LineageEmitter(LineageConfig(transport="http", url=url), None, environ={})
    emitter.start("r9")
    emitter.fail("boom")
    assert (emitter.events_emitted, emitter.transport_failures) == (0, 2)
    assert "400" in emitter.last_error
    assert len(handler.events) == 2  # delivered, then refused

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    down = LineageEmitter(LineageConfig(transport="http", url=dead), None, environ={})
    down.start("r10")
    down.complete()
    assert (down.events_emitted, down.transport_failures) == (0, 2)
    assert down.stats()["transport_failures"] == 2


@pytest.mark.parametrize(("remote", "expected"), [
    ("https://token:x@github.com/org/repo.git", "https://github.com/org/repo.git"),
    ("git@github.com:org/repo.git", "ssh://git@github.com/org/repo.git"),
    ("/check/repo.git", "file:///check/repo.git"),
    ("../upstream", "file:///work/upstream"),
])
def test_source_code_url_is_always_an_absolute_uri(remote, expected):
    # A clone of a local clone has a path for its remote; the facet's url must be a URI.
    assert _strip_credentials(remote, Path("/work/main")) == expected
