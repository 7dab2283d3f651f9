"""OpenLineage events for pipeline runs and vector-store erasures, with the official client.

A run sends START when it begins and COMPLETE or FAIL (with an ``errorMessage`` facet) when it
ends. Events carry:

* run facets: ``nominalTime``, ``processing_engine`` (Ray and its version), ``parent`` when a
  scheduler started the run (``parent=`` or ``OPENLINEAGE_PARENT_ID=namespace/job/run-uuid``),
  ``tags`` with the privacy-ray run id and folder;
* job facets: ``jobType`` (BATCH) and ``sourceCodeLocation`` (git commit when available);
* input datasets: ``schema``, ``dataSource`` and, as input facets, ``dataQualityMetrics`` (row
  count, null counts) and ``dataQualityAssertions`` (the GX results);
* output datasets: ``schema``, ``dataSource``, ``columnLineage`` (which input columns feed each
  output column) and, as an output facet, ``outputStatistics``.

Transports (``lineage.transport``): ``file`` appends JSON Lines to ``lineage.jsonl`` in the run
folder (the default; a remote run folder gets the file when the run ends), ``http`` posts to a
Marquez-compatible endpoint (``OPENLINEAGE_URL`` or ``lineage.url``; ``OPENLINEAGE_API_KEY`` for
a bearer token), ``console`` logs each event. A transport failure never fails the pipeline: it is
logged and counted in ``transport_failures``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from privacy_ray import __version__
from privacy_ray.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from openlineage.client.event_v2 import InputDataset, OutputDataset, RunEvent

    from privacy_ray.config import LineageConfig

log = logging.getLogger(__name__)

LINEAGE_FILE = "lineage.jsonl"
#: Identifies privacy-ray as the producer of the events (a URN: the package has no home URL).
PRODUCER = f"urn:privacy-ray:{__version__}"
INTEGRATION = "PRIVACY_RAY"
ERASURE_JOB = "vector_store_erasure"
HTTP_TIMEOUT_S = 5.0
#: Few, quick retries: a lineage backend that is down must not hold the pipeline up for long.
HTTP_RETRY = {"total": 2, "read": 2, "connect": 2, "backoff_factor": 0.2,
              "status_forcelist": [500, 502, 503, 504], "allowed_methods": ["POST"]}
MESSAGE_ID_COLUMNS = ("message_id", "conversation_id", "user_id", "channel", "timestamp")
PREDICTION_COLUMNS = ("label", "confidence", "probabilities", "abstain", "regulation", "due_by")


# --------------------------------------------------------------------------- naming


def dataset_id(uri: str) -> tuple[str, str]:
    """OpenLineage (namespace, name) of a dataset URI: a local path is ``("file", "/abs/path")``,
    ``s3://bucket/key`` is ``("s3://bucket", "key")``, ``scheme://host/path`` is
    ``("scheme://host", "path")``, and ``synthetic://messages?n=10`` is
    ``("synthetic", "messages?n=10")``."""
    if "://" not in uri:
        return "file", str(Path(uri).expanduser().resolve())
    parts = urlsplit(uri)
    query = f"?{parts.query}" if parts.query else ""
    if parts.scheme == "file":
        return "file", parts.path or "/"
    if parts.path in ("", "/"):  # e.g. synthetic://messages?n=10: no bucket, just a name
        return parts.scheme, f"{parts.netloc}{query}"
    return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/") + query


def _namespace_uri(namespace: str) -> str:
    if namespace == "file":
        return "file:///"
    return namespace if "://" in namespace else f"{namespace}://"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


# --------------------------------------------------------------------------- facets


def schema_facet(schema: Any) -> Any:
    """A ``schema`` facet from a pyarrow schema, a {name: type} mapping or column names."""
    from openlineage.client.facet_v2 import schema_dataset

    fields = []
    if hasattr(schema, "names") and hasattr(schema, "field"):  # pyarrow.Schema
        pairs = [(f.name, str(f.type)) for f in schema]
    elif isinstance(schema, Mapping):
        pairs = [(str(k), None if v is None else str(v)) for k, v in schema.items()]
    else:
        pairs = [(c, None) if isinstance(c, str) else (str(c[0]), str(c[1])) for c in schema]
    for i, (name, type_) in enumerate(pairs):
        fields.append(schema_dataset.SchemaDatasetFacetFields(
            name=name, type=type_, ordinal_position=i + 1))
    return schema_dataset.SchemaDatasetFacet(fields=fields, producer=PRODUCER)


def _datasource(namespace: str) -> Any:
    from openlineage.client.facet_v2 import datasource_dataset

    return datasource_dataset.DatasourceDatasetFacet(
        name=namespace, uri=_namespace_uri(namespace), producer=PRODUCER)


#: Helper columns of the GX suites -> the record column they are computed from.
_HELPER_SOURCE = {"_timestamp_utc": "timestamp", "_embedding_dim": "embedding",
                  "_embedding_non_finite": "embedding", "_embedding_norm": "embedding",
                  "_embedding_centroid_cosine": "embedding"}


def assertions_from_expectations(expectations: Sequence[Mapping[str, Any]],
                                 suites: Iterable[str] | None = None) -> list[Any]:
    """``dataQualityAssertions`` entries from GX results (``gx_suites.summarize`` rows)."""
    import json

    from openlineage.client.facet_v2 import data_quality_assertions_dataset as dqa

    wanted = set(suites) if suites is not None else None
    out = []
    for e in expectations:
        if wanted is not None and e.get("suite") not in wanted:
            continue
        column = e.get("column")
        column = _HELPER_SOURCE.get(column, column) if column else None
        rate = e.get("pass_rate")
        out.append(dqa.Assertion(
            assertion=str(e.get("expectation_type") or e["key"]),
            success=bool(e.get("success")),
            column=column,
            severity="error",
            name=f"{e['suite']}.{e['key']}",
            description=e.get("description") or None,
            expected=json.dumps(e.get("kwargs") or {}, sort_keys=True, default=str),
            actual=(f"{e.get('unexpected', 0)} unexpected of {e.get('evaluated', 0)}; pass rate "
                    f"{'n/a' if rate is None else f'{rate:.6g}'}"),
            contentType="great_expectations",
        ))
    return out


def null_counts_from_expectations(expectations: Sequence[Mapping[str, Any]],
                                  suite: str = "raw") -> dict[str, int]:
    """Null count per record column, as seen by a suite's expectations."""
    counts: dict[str, int] = {}
    for e in expectations:
        column = e.get("column")
        if e.get("suite") != suite or not column or column.startswith("_"):
            continue
        nulls = (e.get("unexpected", 0) if e.get("expectation_type") ==
                 "expect_column_values_to_not_be_null" else e.get("missing", 0))
        counts[column] = max(counts.get(column, 0), int(nulls))
    return counts


@dataclass(frozen=True)
class ColumnSource:
    """One input column feeding an output column, and how (OpenLineage transformation)."""

    dataset: str  # dataset URI
    column: str
    type: str = "DIRECT"  # DIRECT or INDIRECT
    subtype: str = "TRANSFORMATION"  # IDENTITY, TRANSFORMATION, AGGREGATION, FILTER, CONDITIONAL
    description: str | None = None
    masking: bool = False


def column_lineage_facet(mapping: Mapping[str, Sequence[ColumnSource]]) -> Any:
    """A ``columnLineage`` facet: output column -> the input columns it is computed from."""
    from openlineage.client.facet_v2 import column_lineage_dataset as cl

    fields = {}
    for out_col, sources in mapping.items():
        inputs = []
        for s in sources:
            ns, name = dataset_id(s.dataset)
            inputs.append(cl.InputField(namespace=ns, name=name, field=s.column, transformations=[
                cl.Transformation(type=s.type, subtype=s.subtype, description=s.description,
                                  masking=s.masking)]))
        fields[out_col] = cl.Fields(inputFields=inputs)
    return cl.ColumnLineageDatasetFacet(fields=fields, producer=PRODUCER)


def message_column_lineage(input_uri: str, feature_names: Sequence[str],
                           output_columns: Iterable[str] | None = None
                           ) -> dict[str, list[ColumnSource]]:
    """Column lineage of the messages output (features, embedding, predictions) from the input.

    ``output_columns`` limits it to the columns the output has (default: all known ones).
    """
    def src(col: str, subtype: str = "TRANSFORMATION", desc: str | None = None,
            masking: bool = False) -> ColumnSource:
        return ColumnSource(input_uri, col, "DIRECT", subtype, desc, masking)

    redacted = "normalised, PII replaced by typed placeholders"
    mapping: dict[str, list[ColumnSource]] = {
        c: [src(c, "IDENTITY")] for c in MESSAGE_ID_COLUMNS}
    mapping["text"] = [src("text", desc=redacted, masking=True)]
    for name in feature_names:
        mapping[name] = [src("text", desc="handcrafted feature of the normalised text")]
    mapping["embedding"] = [src("text", desc="MiniLM + TF-IDF/SVD embedding of the redacted "
                                "text", masking=True)]
    for col in PREDICTION_COLUMNS:
        mapping[col] = [src("text", desc="classifier over the embedding and features",
                            masking=True)]
    mapping["due_by"].append(src("timestamp", desc="statutory deadline from the message time"))
    if output_columns is not None:
        keep = set(output_columns)
        mapping = {k: v for k, v in mapping.items() if k in keep}
    return mapping


def quarantine_column_lineage(input_uri: str, columns: Iterable[str]
                              ) -> dict[str, list[ColumnSource]]:
    """Column lineage of the quarantine: record columns as text, plus the reason codes, which
    depend on every checked column."""
    mapping: dict[str, list[ColumnSource]] = {}
    for c in columns:
        if c == "quarantine_reason":
            continue
        mapping[c] = [ColumnSource(input_uri, c, "DIRECT",
                                   "TRANSFORMATION" if c == "text" else "IDENTITY",
                                   "PII redacted" if c == "text" else None, c == "text")]
    checked = ("message_id", "text", "timestamp", "channel", "label")
    mapping["quarantine_reason"] = [
        ColumnSource(input_uri, c, "INDIRECT", "CONDITIONAL", "row-level validation") for c in
        checked]
    return mapping


def vector_store_column_lineage(input_uri: str) -> dict[str, list[ColumnSource]]:
    """Column lineage of the vector store's rows (``store/records.py``) from conversations."""
    def src(col: str, subtype: str = "TRANSFORMATION", desc: str | None = None,
            masking: bool = False) -> ColumnSource:
        return ColumnSource(input_uri, col, "DIRECT", subtype, desc, masking)

    return {
        "id": [src("conversation_id", desc="stable integer id of the conversation")],
        "conversation_id": [src("conversation_id", "IDENTITY")],
        "user_key": [src("user_id", desc="keyed hash (HMAC) of the user id", masking=True)],
        "date": [src("started_at", "IDENTITY")],
        "channel": [src("channel", "IDENTITY")],
        "intent": [src("turns", desc="classifier over the redacted conversation",
                       masking=True)],
        "confidence": [src("turns", desc="classifier probability", masking=True)],
        "snippet": [src("turns", desc="start of the redacted conversation", masking=True)],
        "embedding": [src("turns", desc="embedding of the redacted, flattened turns",
                          masking=True)],
    }


def input_dataset(uri: str, schema: Any = None, *, row_count: int | None = None,
                  null_counts: Mapping[str, int] | None = None,
                  assertions: Sequence[Any] | None = None, size_bytes: int | None = None,
                  file_count: int | None = None) -> InputDataset:
    """An input dataset with schema, data source, data-quality metrics and assertions."""
    from openlineage.client.event_v2 import InputDataset
    from openlineage.client.facet_v2 import data_quality_assertions_dataset as dqa
    from openlineage.client.facet_v2 import data_quality_metrics_input_dataset as dqm

    namespace, name = dataset_id(uri)
    facets: dict[str, Any] = {"dataSource": _datasource(namespace)}
    if schema is not None:
        facets["schema"] = schema_facet(schema)
    input_facets: dict[str, Any] = {}
    if row_count is not None or null_counts:
        input_facets["dataQualityMetrics"] = dqm.DataQualityMetricsInputDatasetFacet(
            columnMetrics={c: dqm.ColumnMetrics(nullCount=int(n))
                           for c, n in (null_counts or {}).items()},
            rowCount=None if row_count is None else int(row_count),
            bytes=size_bytes, fileCount=file_count, producer=PRODUCER)
    if assertions:
        input_facets["dataQualityAssertions"] = dqa.DataQualityAssertionsDatasetFacet(
            assertions=list(assertions), producer=PRODUCER)
    return InputDataset(namespace=namespace, name=name, facets=facets, inputFacets=input_facets)


def output_dataset(uri: str, schema: Any = None, *, row_count: int | None = None,
                   size_bytes: int | None = None, file_count: int | None = None,
                   column_lineage: Mapping[str, Sequence[ColumnSource]] | None = None,
                   lifecycle: str | None = None) -> OutputDataset:
    """An output dataset with schema, data source, column lineage and output statistics."""
    from openlineage.client.event_v2 import OutputDataset
    from openlineage.client.facet_v2 import lifecycle_state_change_dataset as lsc
    from openlineage.client.facet_v2 import output_statistics_output_dataset as ost

    namespace, name = dataset_id(uri)
    facets: dict[str, Any] = {"dataSource": _datasource(namespace)}
    if schema is not None:
        facets["schema"] = schema_facet(schema)
    if column_lineage:
        facets["columnLineage"] = column_lineage_facet(column_lineage)
    if lifecycle:
        facets["lifecycleStateChange"] = lsc.LifecycleStateChangeDatasetFacet(
            lifecycleStateChange=lsc.LifecycleStateChange(lifecycle), producer=PRODUCER)
    output_facets: dict[str, Any] = {}
    if row_count is not None or size_bytes is not None or file_count is not None:
        output_facets["outputStatistics"] = ost.OutputStatisticsOutputDatasetFacet(
            rowCount=row_count, size=size_bytes, fileCount=file_count, producer=PRODUCER)
    return OutputDataset(namespace=namespace, name=name, facets=facets,
                         outputFacets=output_facets)


def folder_stats(uri: str) -> tuple[int | None, int | None]:
    """(bytes, files) of the Parquet files under a folder, or (None, None) when unreadable."""
    try:
        import pyarrow.fs as pafs

        from privacy_ray.runs import filesystem_for

        fs, path = filesystem_for(uri)
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
        files = [i for i in infos if i.type == pafs.FileType.File and i.path.endswith(".parquet")]
        return sum(i.size or 0 for i in files), len(files)
    except Exception:  # statistics are informative only
        return None, None


# --------------------------------------------------------------------------- run and job facets


@dataclass(frozen=True)
class ParentRun:
    """The run (of a scheduler, a workflow) that started this one."""

    namespace: str
    job_name: str
    run_id: str  # a UUID

    @classmethod
    def parse(cls, value: str) -> ParentRun:
        """From ``namespace/job_name/run_uuid`` (the OPENLINEAGE_PARENT_ID convention)."""
        import uuid

        parts = value.strip().split("/")
        try:
            if len(parts) < 3:
                raise ValueError(value)
            uuid.UUID(parts[-1])
        except ValueError as e:
            msg = (f"parent run {value!r} is not namespace/job_name/run_uuid; fix "
                   "OPENLINEAGE_PARENT_ID")
            raise ConfigError(msg) from e
        return cls(parts[0], "/".join(parts[1:-1]), parts[-1])

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ParentRun | None:
        environ = os.environ if environ is None else environ
        value = environ.get("OPENLINEAGE_PARENT_ID")
        return cls.parse(value) if value else None


def _strip_credentials(url: str, base: Path | None = None) -> str:
    """The remote as an absolute URI without credentials (the facet's ``url`` must be a URI):
    scp-like ``git@host:org/repo`` becomes ``ssh://``, a local path (a clone of a clone) becomes
    ``file://``, resolved against ``base`` when relative."""
    if url.startswith("git@") or re.match(r"^[\w.-]+@[\w.-]+:", url):
        user_host, _, path = url.partition(":")
        return f"ssh://{user_host}/{path}"
    parts = urlsplit(url)
    if not parts.scheme or len(parts.scheme) == 1:  # a path (or a Windows drive letter)
        return ((base or Path.cwd()) / url).resolve().as_uri()
    if parts.username or parts.password:
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return url


def _git(args: list[str], cwd: Path) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        out = subprocess.run([git, *args], cwd=cwd, capture_output=True, text=True, timeout=3,
                             check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


@cache
def source_code_location() -> dict[str, str | None] | None:
    """Where the running code comes from: git URL, commit and branch of the package's checkout,
    or ``GIT_COMMIT`` / ``GIT_REPO_URL`` in an image without ``.git``; None when unknown."""
    here = Path(__file__).resolve().parent
    root = _git(["rev-parse", "--show-toplevel"], here)
    if root:
        remote = _git(["config", "--get", "remote.origin.url"], Path(root))
        url = _strip_credentials(remote, Path(root)) if remote else Path(root).as_uri()
        return {"url": url, "version": _git(["rev-parse", "--verify", "-q", "HEAD"], Path(root)),
                "branch": _git(["rev-parse", "--abbrev-ref", "HEAD"], Path(root)),
                "path": str(here.relative_to(root)) if here.is_relative_to(root) else None}
    if os.environ.get("GIT_REPO_URL"):
        return {"url": _strip_credentials(os.environ["GIT_REPO_URL"]),
                "version": os.environ.get("GIT_COMMIT"), "branch": None, "path": None}
    return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def job_facets(description: str | None = None) -> dict[str, Any]:
    """``jobType`` (batch) and, when known, ``sourceCodeLocation`` and ``documentation``."""
    from openlineage.client.facet_v2 import (
        documentation_job,
        job_type_job,
        source_code_location_job,
    )

    facets: dict[str, Any] = {"jobType": job_type_job.JobTypeJobFacet(
        processingType="BATCH", integration=INTEGRATION, jobType="JOB", producer=PRODUCER)}
    scl = source_code_location()
    if scl:
        facets["sourceCodeLocation"] = source_code_location_job.SourceCodeLocationJobFacet(
            type="git", url=scl["url"], repoUrl=scl["url"], path=scl.get("path"),
            version=scl.get("version"), branch=scl.get("branch"), producer=PRODUCER)
    if description:
        facets["documentation"] = documentation_job.DocumentationJobFacet(
            description=description, producer=PRODUCER)
    return facets


def run_facets(nominal_time: str, parent: ParentRun | None,
               tags: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``nominalTime``, ``processing_engine`` (Ray), ``parent`` and ``tags``."""
    from openlineage.client.facet_v2 import (
        nominal_time_run,
        parent_run,
        processing_engine_run,
        tags_run,
    )

    facets: dict[str, Any] = {
        "nominalTime": nominal_time_run.NominalTimeRunFacet(nominalStartTime=nominal_time,
                                                            producer=PRODUCER),
        "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
            version=_version("ray") or "unknown", name="Ray",
            openlineageAdapterVersion=_version("openlineage-python"), producer=PRODUCER),
    }
    if parent is not None:
        facets["parent"] = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=parent.run_id),
            job=parent_run.Job(namespace=parent.namespace, name=parent.job_name),
            producer=PRODUCER)
    if tags:
        facets["tags"] = tags_run.TagsRunFacet(tags=[
            tags_run.TagsRunFacetFields(key=k, value=str(v), source="PRIVACY_RAY")
            for k, v in tags.items()], producer=PRODUCER)
    return facets


def error_facet(error: BaseException | str) -> Any:
    """``errorMessage``: the one-line message and, for an exception, its stack trace."""
    from openlineage.client.facet_v2 import error_message_run

    if isinstance(error, BaseException):
        message = f"{type(error).__name__}: {error}"
        stack = "".join(traceback.format_exception(error)) if error.__traceback__ else None
    else:
        message, stack = str(error), None
    return error_message_run.ErrorMessageRunFacet(
        message=message, programmingLanguage="python", stackTrace=stack, producer=PRODUCER)


# --------------------------------------------------------------------------- emitter


@dataclass
class _Run:
    run_id: str  # OpenLineage run UUID
    job_name: str
    facets: dict[str, Any]
    job_facets: dict[str, Any]
    inputs: list[Any] = field(default_factory=list)
    outputs: list[Any] = field(default_factory=list)


class LineageEmitter:
    """Sends a run's OpenLineage events through the configured transport, never raising.

    ``events_emitted`` and ``transport_failures`` count what happened; ``last_error`` holds the
    latest transport error. Use it as a context manager (or call :meth:`close`) so a remote run
    folder receives ``lineage.jsonl``.
    """

    def __init__(self, cfg: LineageConfig, run_folder_uri: str | None = None, *,
                 environ: Mapping[str, str] | None = None) -> None:
        self.cfg = cfg
        self.run_folder_uri = run_folder_uri
        self.events_emitted = 0
        self.transport_failures = 0
        self.last_error: str | None = None
        self.run: _Run | None = None
        self._environ = os.environ if environ is None else environ
        self._staged: Path | None = None  # local file for a remote run folder
        self.target: str | None = None
        disabled = str(self._environ.get("OPENLINEAGE_DISABLED", "")).strip().lower() == "true"
        self._client = None if (not cfg.enabled or disabled) else self._make_client()

    @property
    def enabled(self) -> bool:
        return self._client is not None

    def _make_client(self) -> Any:
        from openlineage.client import OpenLineageClient

        transport = self._make_transport()
        return OpenLineageClient(transport=transport)

    def _make_transport(self) -> Any:
        kind = self.cfg.transport
        if kind == "file":
            from openlineage.client.transport.file import FileConfig, FileTransport

            if self.run_folder_uri is None:
                msg = ("lineage.transport file writes into a run folder, but none was given; "
                       "pass run_folder_uri or set lineage.transport to http or console")
                raise ConfigError(msg)
            if "://" in self.run_folder_uri and not self.run_folder_uri.startswith("file://"):
                staging = Path(tempfile.mkdtemp(prefix="privacy-ray-lineage-"))
                self._staged = staging / LINEAGE_FILE
                path = str(self._staged)
                self.target = f"{self.run_folder_uri.rstrip('/')}/{LINEAGE_FILE}"
            else:
                folder = self.run_folder_uri.removeprefix("file://")
                Path(folder).expanduser().mkdir(parents=True, exist_ok=True)
                path = str(Path(folder).expanduser() / LINEAGE_FILE)
                self.target = path
            return FileTransport(FileConfig(log_file_path=path, append=True))
        if kind == "http":
            from openlineage.client.transport.http import (
                ApiKeyTokenProvider,
                HttpConfig,
                HttpTransport,
                TokenProvider,
            )

            url = self._environ.get("OPENLINEAGE_URL") or self.cfg.url
            if not url:
                msg = ("lineage.transport is http but no endpoint is set; set OPENLINEAGE_URL "
                       "or lineage.url (e.g. http://localhost:5000 for Marquez)")
                raise ConfigError(msg)
            key = self._environ.get("OPENLINEAGE_API_KEY")
            auth = ApiKeyTokenProvider({"apiKey": key}) if key else TokenProvider({})
            endpoint = self._environ.get("OPENLINEAGE_ENDPOINT") or "api/v1/lineage"
            self.target = f"{url.rstrip('/')}/{endpoint}"
            try:
                return HttpTransport(HttpConfig(url=url, endpoint=endpoint, timeout=HTTP_TIMEOUT_S,
                                                auth=auth, retry=dict(HTTP_RETRY)))
            except ValueError as e:
                msg = f"lineage URL {url!r} is not valid ({e}); set an http(s):// URL"
                raise ConfigError(msg) from e
        from openlineage.client.transport.console import ConsoleConfig, ConsoleTransport

        console_log = logging.getLogger("openlineage.client.transport.console")
        if console_log.getEffectiveLevel() > logging.INFO:
            console_log.setLevel(logging.INFO)
        if not console_log.handlers:
            console_log.addHandler(logging.StreamHandler(sys.stderr))
        self.target = "console"
        return ConsoleTransport(ConsoleConfig())

    # ---- sending

    def emit(self, event: RunEvent) -> bool:
        """Send one event; on a transport error log it, count it and carry on."""
        if self._client is None:
            return False
        try:
            self._client.emit(event)
        except Exception as e:  # a lineage backend must never fail the pipeline
            self.transport_failures += 1
            self.last_error = f"{type(e).__name__}: {e}"
            log.warning("OpenLineage %s event not delivered to %s: %s",
                        getattr(event.eventType, "value", event.eventType), self.target,
                        self.last_error)
            return False
        self.events_emitted += 1
        return True

    def _event(self, run: _Run, state: str, extra_run_facets: Mapping[str, Any] | None = None,
               ) -> RunEvent:
        from openlineage.client.event_v2 import Job, Run, RunEvent, RunState

        facets = {**run.facets, **(extra_run_facets or {})}
        return RunEvent(
            eventType=RunState[state], eventTime=_now(),
            run=Run(runId=run.run_id, facets=facets),
            job=Job(namespace=self.cfg.namespace, name=run.job_name, facets=run.job_facets),
            inputs=list(run.inputs), outputs=list(run.outputs), producer=PRODUCER)

    def _new_run(self, job_name: str, inputs: Iterable[Any], outputs: Iterable[Any],
                 parent: ParentRun | None, nominal_time: datetime | str | None,
                 tags: Mapping[str, str], description: str | None) -> _Run:
        from openlineage.client.uuid import generate_new_uuid

        if isinstance(nominal_time, datetime):
            nominal = nominal_time.astimezone(UTC).isoformat()
        else:
            nominal = nominal_time or _now()
        parent = parent if parent is not None else ParentRun.from_env(self._environ)
        return _Run(str(generate_new_uuid()), job_name, run_facets(nominal, parent, tags),
                    job_facets(description), list(inputs), list(outputs))

    def start(self, run_id: str, job_name: str | None = None, inputs: Iterable[Any] = (),
              outputs: Iterable[Any] = (), parent: ParentRun | None = None, *,
              nominal_time: datetime | str | None = None, run_dir: str | None = None,
              description: str | None = None) -> str:
        """START of a pipeline run; returns its OpenLineage run UUID.

        ``run_id`` is the privacy-ray run id (kept in the ``tags`` facet with the run folder);
        ``job_name`` defaults to ``lineage.job_name``.
        """
        tags = {"privacy_ray.run_id": run_id, "privacy_ray.version": __version__}
        if run_dir or self.run_folder_uri:
            tags["privacy_ray.run_dir"] = str(run_dir or self.run_folder_uri)
        self.run = self._new_run(job_name or self.cfg.job_name, inputs, outputs, parent,
                                 nominal_time, tags, description)
        self.emit(self._event(self.run, "START"))
        return self.run.run_id

    def _finish(self, state: str, inputs: Iterable[Any] | None, outputs: Iterable[Any] | None,
                extra: Mapping[str, Any] | None = None) -> None:
        if self.run is None:  # nothing started: no lifecycle to end (and never raise here)
            log.warning("OpenLineage %s without a started run; no event sent", state)
            return
        if inputs is not None:
            self.run.inputs = list(inputs)
        if outputs is not None:
            self.run.outputs = list(outputs)
        self.emit(self._event(self.run, state, extra))
        self._sync()

    def complete(self, inputs: Iterable[Any] | None = None,
                 outputs: Iterable[Any] | None = None) -> None:
        """COMPLETE of the current run; datasets given here replace those given at START."""
        self._finish("COMPLETE", inputs, outputs)

    def fail(self, error: BaseException | str, inputs: Iterable[Any] | None = None,
             outputs: Iterable[Any] | None = None) -> None:
        """FAIL of the current run, with the ``errorMessage`` facet."""
        self._finish("FAIL", inputs, outputs, {"errorMessage": error_facet(error)})

    def erasure(self, store_uri: str, *, removed: int,
                shard_counts: Mapping[str, int] | None = None, erasure_id: str | None = None,
                request_id: str | None = None, store_version: int | None = None,
                previous_version: int | None = None, rows_after: int | None = None,
                error: BaseException | str | None = None, parent: ParentRun | None = None,
                job_name: str = ERASURE_JOB) -> str:
        """START and COMPLETE (or FAIL) of one erasure in a vector store; returns the run UUID.

        The store is both input and output (its rows were deleted: ``lifecycleStateChange``
        ALTER). No user id or user key goes into lineage, only counts and ids of the erasure.
        """
        tags = {"privacy_ray.erasure.removed": str(int(removed)),
                "privacy_ray.version": __version__}
        optional = {"privacy_ray.erasure.id": erasure_id,
                    "privacy_ray.erasure.request_id": request_id,
                    "privacy_ray.store.version": store_version,
                    "privacy_ray.store.previous_version": previous_version}
        tags.update({k: str(v) for k, v in optional.items() if v is not None})
        for shard, n in sorted((shard_counts or {}).items()):
            tags[f"privacy_ray.erasure.shard.{shard}"] = str(int(n))
        run = self._new_run(job_name, [input_dataset(store_uri)],
                            [output_dataset(store_uri, row_count=rows_after, lifecycle="ALTER")],
                            parent, None, tags,
                            "Erase one data subject's vectors and rows from the vector store")
        self.emit(self._event(run, "START"))
        if error is None:
            self.emit(self._event(run, "COMPLETE"))
        else:
            self.emit(self._event(run, "FAIL", {"errorMessage": error_facet(error)}))
        self._sync()
        return run.run_id

    def erasure_from_record(self, record: Mapping[str, Any], **kwargs: Any) -> str:
        """:meth:`erasure` from the record ``VectorStore.erase_user`` returns."""
        return self.erasure(
            str(record.get("store")), removed=int(record.get("total", 0)),
            shard_counts=record.get("counts"), erasure_id=record.get("erasure_id"),
            request_id=record.get("request_id"), store_version=record.get("store_version"),
            previous_version=record.get("previous_version"), **kwargs)

    # ---- closing

    def _sync(self) -> None:
        """Copy the staged file into a remote run folder (after each finished run)."""
        if self._staged is None or not self._staged.exists() or self.target is None:
            return
        try:
            from privacy_ray.runs import filesystem_for

            fs, path = filesystem_for(self.target)
            with fs.open_output_stream(path) as out:
                out.write(self._staged.read_bytes())
        except Exception as e:  # lineage never fails the pipeline
            self.transport_failures += 1
            self.last_error = f"{type(e).__name__}: {e}"
            log.warning("could not copy lineage events to %s: %s", self.target, self.last_error)

    def close(self) -> None:
        """Flush the transport; a remote run folder receives the staged file."""
        if self._client is not None:
            try:
                self._client.close(HTTP_TIMEOUT_S)
            except Exception as e:  # pragma: no cover - transports close quietly
                log.warning("closing the OpenLineage client failed: %s", e)
        self._sync()
        if self._staged is not None:
            shutil.rmtree(self._staged.parent, ignore_errors=True)
            self._staged = None

    def stats(self) -> dict[str, Any]:
        """Counters for the run summary."""
        return {"transport": self.cfg.transport if self.enabled else "disabled",
                "target": self.target, "events_emitted": self.events_emitted,
                "transport_failures": self.transport_failures, "last_error": self.last_error,
                "run_uuid": self.run.run_id if self.run else None}

    def __enter__(self) -> LineageEmitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
