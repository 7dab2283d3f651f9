"""Sources: where messages come from, as Ray Datasets in the record schema.

Synthetic messages are generated inside Ray read tasks chunk by chunk (nothing materialised on the
driver); files are read with Ray Data's readers from local paths or ``s3://`` through pyarrow
filesystems. Problems that concern the whole input (missing path, unknown format, a truncated
Parquet file, no text column) are :class:`InputError` before anything runs; problems with single
rows (a malformed JSON line, invalid UTF-8) become quarantined rows with a reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from privacy_ray.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import ray.data

    from privacy_ray.config import InputConfig

#: Columns of the message record (DESIGN.md); ``label`` is optional.
MESSAGE_COLUMNS = ("message_id", "conversation_id", "user_id", "channel", "timestamp", "text")
REQUIRED_COLUMNS = ("message_id", "text")
SOURCE_COLUMNS = (*MESSAGE_COLUMNS, "label", "quarantine_reason")
SYNTHETIC_CHUNK_ROWS = 1024
FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
}


@dataclass(frozen=True)
class SourceInfo:
    """What was read, for the run summary and lineage."""

    uri: str
    format: str
    files: tuple[str, ...]
    expected_rows: int | None  # known up front (synthetic, Parquet metadata), else None


# --------------------------------------------------------------------------- synthetic


def _generate_chunk(
    batch: dict[str, Any],
    kind: str,
    seed: int,
    chunk_rows: int,
    n_total: int,
    options: dict[str, Any],
) -> pd.DataFrame:
    """Generate the chunks named in ``batch``; chunk i uses seed ``seed + 7919 i`` and prefixes
    its ids with ``c<i>-`` so ids stay unique across chunks (chunk 0 equals a plain call)."""
    import json

    from privacy_ray.synth import generate_conversations, generate_messages

    generate = generate_messages if kind == "messages" else generate_conversations
    id_columns = ("message_id", "conversation_id") if kind == "messages" else ("conversation_id",)
    frames = []
    for chunk in batch["id"]:
        chunk = int(chunk)
        rows = min(chunk_rows, n_total - chunk * chunk_rows)
        df = generate(rows, seed=seed + chunk * 7919, **options)
        if chunk:
            for col in id_columns:
                df[col] = f"c{chunk}-" + df[col].astype(str)
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    if kind == "conversations":
        out["turns"] = out["turns"].map(lambda t: json.dumps(list(t), default=str))
    return out.drop(columns=[c for c in ("template_family", "register") if c in out.columns])


def even_chunk_rows(n: int, chunk_rows: int) -> int:
    """Rows per chunk when ``n`` rows are cut into chunks of at most ``chunk_rows``, all of
    nearly one size: no short last chunk, so the sink's bundles of several chunks come out
    even and no core waits for a straggler (20,000 rows: ten chunks of 2,000, not nine of
    2,048 and one of 1,568)."""
    n_chunks = max(1, -(-n // chunk_rows))
    return max(1, -(-n // n_chunks))


def synthetic_source(
    n: int,
    seed: int,
    options: dict[str, Any] | None = None,
    chunk_rows: int = SYNTHETIC_CHUNK_ROWS,
    num_cpus: float = 0.25,
    kind: str = "messages",
) -> tuple[ray.data.Dataset, SourceInfo]:
    """``n`` generated messages (or conversations), made in one Ray read task per
    ``chunk_rows``; deterministic per seed, nothing materialised on the driver.

    One read task per chunk, rather than a ``map_batches`` over a dataset of chunk ids: Ray
    Data bundles a map's input rows up to the next stage's batch size, which put every chunk id
    into one task, so the whole input came out of one task as one block and nothing streamed.
    """
    import ray.data

    chunk_rows = even_chunk_rows(n, chunk_rows)
    datasource = _synthetic_datasource(n, seed, options or {}, chunk_rows, kind)
    ds = ray.data.read_datasource(
        datasource, override_num_blocks=datasource.n_chunks, num_cpus=num_cpus
    )
    return ds, SourceInfo(
        uri=f"synthetic://{kind}?n={n}&seed={seed}", format="synthetic", files=(),
        expected_rows=n,
    )


#: Rough in-memory bytes per generated message, for Ray Data's size estimates.
_SYNTHETIC_ROW_BYTES = 600


def _synthetic_datasource(n: int, seed: int, options: dict[str, Any], chunk_rows: int,
                          kind: str) -> Any:
    """A Ray Data ``Datasource`` of ``n`` generated records with one ``ReadTask`` per chunk
    (defined here so that importing this module does not import Ray)."""
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class SyntheticDatasource(Datasource):
        def __init__(self) -> None:
            self.n_chunks = max(1, -(-n // chunk_rows))

        def get_name(self) -> str:
            return "Synthetic"

        def estimate_inmemory_data_size(self) -> int:
            return n * _SYNTHETIC_ROW_BYTES

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                           data_context: Any = None) -> list[ReadTask]:
            kwargs = {"kind": kind, "seed": seed, "chunk_rows": chunk_rows, "n_total": n,
                      "options": options}
            tasks = []
            for chunk in range(self.n_chunks):
                rows = min(chunk_rows, n - chunk * chunk_rows)
                meta = BlockMetadata(num_rows=rows, size_bytes=rows * _SYNTHETIC_ROW_BYTES,
                                     exec_stats=None, input_files=None)
                tasks.append(ReadTask(
                    lambda chunk=chunk: [_generate_chunk({"id": [chunk]}, **kwargs)], meta))
            return tasks

    return SyntheticDatasource()


# --------------------------------------------------------------------------- files


def detect_format(path: str, fmt: str = "auto") -> str:
    if fmt != "auto":
        return fmt
    lowered = path.lower().rstrip("/")
    for ext, name in FORMATS.items():
        if lowered.endswith(ext):
            return name
    msg = (
        f"cannot tell the format of {path}; use a .parquet, .jsonl or .csv file, or set "
        "input.format (--format) explicitly"
    )
    raise InputError(msg)


def list_input_files(path: str, fmt: str) -> tuple[str, ...]:
    """Files under ``path`` (a file or a directory), or InputError naming the path."""
    import pyarrow.fs as pafs

    try:
        fs, inner = (
            pafs.FileSystem.from_uri(path) if "://" in path else (pafs.LocalFileSystem(), path)
        )
        info = fs.get_file_info(inner)
    except Exception as e:  # pyarrow raises OSError / ArrowInvalid subclasses
        msg = f"cannot open input {path}: {e}; check the path and credentials"
        raise InputError(msg) from e
    if info.type == pafs.FileType.NotFound:
        msg = f"input {path} does not exist; pass an existing file or directory with --input"
        raise InputError(msg)
    if info.type == pafs.FileType.File:
        return (path,)
    selector = pafs.FileSelector(inner, recursive=True)
    suffixes = tuple(ext for ext, name in FORMATS.items() if name == fmt)
    prefix = path[: len(path) - len(inner)] if "://" in path else ""
    files = sorted(
        prefix + f.path
        for f in fs.get_file_info(selector)
        if f.type == pafs.FileType.File
        and f.path.lower().endswith(suffixes)
        and not f.base_name.startswith((".", "_"))
    )
    if not files:
        msg = f"input directory {path} holds no {fmt} files; check the path or --format"
        raise InputError(msg)
    return tuple(files)


def _check_parquet(files: tuple[str, ...]) -> int:
    import pyarrow.parquet as pq

    total = 0
    for f in files:
        try:
            total += pq.ParquetFile(f if "://" not in f else _open(f)).metadata.num_rows
        except Exception as e:
            msg = f"cannot read Parquet file {f} ({type(e).__name__}: {e}); is it truncated?"
            raise InputError(msg.splitlines()[0]) from e
    return total


def _open(uri: str):
    import pyarrow.fs as pafs

    fs, inner = pafs.FileSystem.from_uri(uri)
    return fs.open_input_file(inner)


def parse_jsonl_bytes(data: bytes, path: str) -> pd.DataFrame:
    """Parse JSON Lines; a malformed line becomes a quarantined row carrying its line number."""
    rows: list[dict[str, Any]] = []
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        reason = None
        try:
            record = json.loads(raw.decode("utf-8"))
            if not isinstance(record, dict):
                reason = "json_not_object"
        except UnicodeDecodeError:
            reason = "invalid_utf8"
        except json.JSONDecodeError:
            reason = "json_malformed"
        if reason:
            text = raw.decode("utf-8", errors="replace")[:200]
            record = {
                "message_id": f"{path}:{lineno}",
                "text": text,
                "quarantine_reason": f"{reason}:line={lineno}",
            }
        rows.append(record)
    return pd.DataFrame(rows)


def _read_jsonl_files(batch: dict[str, Any], column_map: dict[str, str]) -> pd.DataFrame:
    """Parse and conform in one step: parsed lines may mix types that Arrow cannot hold."""
    frames = [
        parse_jsonl_bytes(data, str(path))
        for data, path in zip(batch["bytes"], batch["path"], strict=True)
    ]
    frames = [f for f in frames if len(f)]
    parsed = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return _conform(parsed, column_map)


def _conform(batch: pd.DataFrame, column_map: dict[str, str]) -> pd.DataFrame:
    """Rename mapped columns, add missing optional ones, and make every column Arrow-safe.

    Ray Data stores batches as Arrow, which cannot hold a column mixing strings with numbers or
    bytes. So every record column becomes text (timestamps in ISO form), and a ``text`` that is
    not a string is quarantined here (``text_not_string`` / ``text_invalid_utf8``) with its
    ``repr`` kept for the quarantine output.
    """
    if column_map:
        batch = batch.rename(columns=column_map)
    for col in SOURCE_COLUMNS:
        if col not in batch.columns:
            batch[col] = None
    out = pd.DataFrame(
        {c: [None if _is_missing(v) else v for v in batch[c].tolist()] for c in SOURCE_COLUMNS},
        dtype=object,
    )
    reasons = list(out["quarantine_reason"])
    texts = list(out["text"])
    for i, value in enumerate(texts):
        if value is None or isinstance(value, str):
            continue
        if isinstance(value, bytes | bytearray):
            try:
                texts[i] = bytes(value).decode("utf-8")
                continue
            except UnicodeDecodeError:
                code = "text_invalid_utf8"
        else:
            code = "text_not_string"
        texts[i] = repr(value)[:200]
        reasons[i] = f"{reasons[i]};{code}" if reasons[i] else code
    out["text"] = pd.Series(texts, dtype=object)
    out["quarantine_reason"] = pd.Series(reasons, dtype=object)
    for col in SOURCE_COLUMNS:
        if col in ("text", "quarantine_reason"):
            continue
        out[col] = pd.Series([None if v is None else _as_text(v) for v in out[col]],
                             dtype=object)
    return out


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NaT or value is pd.NA:
        return True
    return isinstance(value, float) and value != value


def _as_text(value: Any) -> str:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def check_input(path: str, input_cfg: InputConfig) -> tuple[str, tuple[str, ...]]:
    """Format and files of ``path``, or InputError: cheap checks to run before any model loads."""
    fmt = detect_format(path, input_cfg.format)
    files = list_input_files(path, fmt)
    if fmt == "parquet":
        _check_parquet(files)
        _check_columns(_parquet_columns(files[0]), input_cfg.column_map, files[0])
    return fmt, files


def file_source(
    path: str,
    input_cfg: InputConfig,
    num_cpus: float = 0.25,
) -> tuple[ray.data.Dataset, SourceInfo]:
    """Read Parquet, JSON Lines or CSV from a local path or URI into the record schema."""
    import ray.data

    fmt = detect_format(path, input_cfg.format)
    files = list_input_files(path, fmt)
    expected: int | None = None
    if fmt == "parquet":
        expected = _check_parquet(files)
        _check_columns(_parquet_columns(files[0]), input_cfg.column_map, files[0])
        ds = ray.data.read_parquet(list(files), num_cpus=num_cpus)
    elif fmt == "csv":
        import pyarrow.csv as pacsv

        try:
            ds = ray.data.read_csv(
                list(files),
                num_cpus=num_cpus,
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(
                    column_types={"text": "string", "message_id": "string", "label": "string"}
                ),
            )
            _check_columns(ds.schema().names, input_cfg.column_map, files[0])
        except InputError:
            raise
        except Exception as e:
            msg = f"cannot read CSV input {path}: {str(e).splitlines()[0]}"
            raise InputError(msg) from e
    else:
        ds = ray.data.read_binary_files(list(files), include_paths=True, num_cpus=num_cpus)
        ds = ds.map_batches(_read_jsonl_files, batch_size=1, batch_format="numpy",
                            fn_kwargs={"column_map": dict(input_cfg.column_map)},
                            num_cpus=num_cpus)
        return ds, SourceInfo(uri=path, format=fmt, files=files, expected_rows=expected)
    ds = ds.map_batches(
        _conform,
        batch_format="pandas",
        fn_kwargs={"column_map": dict(input_cfg.column_map)},
        num_cpus=num_cpus,
    )
    return ds, SourceInfo(uri=path, format=fmt, files=files, expected_rows=expected)


def _parquet_columns(file: str) -> list[str]:
    import pyarrow.parquet as pq

    return pq.ParquetFile(file if "://" not in file else _open(file)).schema_arrow.names


def _check_columns(names: list[str], column_map: dict[str, str], file: str) -> None:
    mapped = {column_map.get(n, n) for n in names}
    missing = [c for c in REQUIRED_COLUMNS if c not in mapped]
    if missing:
        msg = (
            f"input {file} has no column(s) {', '.join(missing)} (found: {', '.join(names)}); "
            "map yours with input.column_map, e.g. PRIVACY_RAY_INPUT__COLUMN_MAP='{body: text}'"
        )
        raise InputError(msg)
