"""Run folders that describe themselves: config, counts, timings, catalogue, outputs.

A run folder ``<output_dir>/runs/<run_id>/`` holds ``config.yaml`` (resolved), ``stats.json``
(per-stage counts and timings), ``summary.json``, ``features.json`` (the feature catalogue),
``messages/`` (Parquet partitioned by date), ``quarantine/`` and a ``_SUCCESS`` or ``_INCOMPLETE``
marker. Paths may be local or ``s3://``: all I/O goes through pyarrow filesystems.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SUCCESS_MARKER = "_SUCCESS"
INCOMPLETE_MARKER = "_INCOMPLETE"


def new_run_id(now: datetime | None = None) -> str:
    """Sortable and unique: ``20260126T101500Z-3f9a1c``."""
    now = now or datetime.now(UTC)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def filesystem_for(uri: str):
    """(pyarrow filesystem, path inside it) for a local path, file:// or s3:// URI."""
    import pyarrow.fs as pafs

    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    from pathlib import Path

    return pafs.LocalFileSystem(), str(Path(uri).expanduser().resolve())


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


@dataclass
class RunFolder:
    """One run's folder; ``uri`` is what users see, ``path`` is inside ``fs``."""

    uri: str
    run_id: str

    @classmethod
    def create(cls, output_dir: str, run_id: str | None = None) -> RunFolder:
        run_id = run_id or new_run_id()
        folder = cls(uri=join(output_dir, "runs", run_id), run_id=run_id)
        fs, path = folder.fs_path()
        fs.create_dir(path, recursive=True)
        return folder

    def fs_path(self, *parts: str):
        fs, path = filesystem_for(self.uri)
        return fs, join(path, *parts) if parts else path

    def child(self, *parts: str) -> str:
        return join(self.uri, *parts)

    def write_text(self, name: str, text: str) -> str:
        fs, path = self.fs_path(name)
        with fs.open_output_stream(path) as out:
            out.write(text.encode("utf-8"))
        return self.child(name)

    def write_json(self, name: str, obj: Any) -> str:
        return self.write_text(name, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")

    def mark(self, complete: bool) -> None:
        fs, _ = self.fs_path()
        for marker in (SUCCESS_MARKER, INCOMPLETE_MARKER):
            _, p = self.fs_path(marker)
            if fs.get_file_info(p).type.name == "File":
                fs.delete_file(p)
        self.write_text(SUCCESS_MARKER if complete else INCOMPLETE_MARKER, "")
