"""Where store files live: a local directory, or any pyarrow filesystem (``s3://``, ``file://``).

Every write goes to a temporary name first and is renamed into place, so a reader or a crash
never sees a half-written file under its final name. On local directories the data and the
directory are fsynced before and after the rename. Through pyarrow (S3 and friends) a file is
written with one ``PUT`` and renamed with ``move``; S3 objects are never visible half-written.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from privacy_ray.errors import StoreError

TMP_MARK = ".tmp-"


class Storage:
    """Interface over a store root. Paths are relative, '/'-separated."""

    root_uri: str

    def uri(self, rel: str) -> str:
        return f"{self.root_uri.rstrip('/')}/{rel}"

    def read_bytes(self, rel: str) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError

    def write_atomic(
        self, rel: str, data: bytes, before_rename: Callable[[], None] | None = None
    ) -> None:  # pragma: no cover - interface
        """Write ``data`` to a temporary name, then rename it to ``rel``. ``before_rename`` runs
        between the two (a fault-injection point for the crash tests)."""
        raise NotImplementedError

    def exists(self, rel: str) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def list_dir(self, rel: str = "") -> list[str]:  # pragma: no cover - interface
        """Names (not paths) directly under ``rel``; empty when it does not exist."""
        raise NotImplementedError

    def delete(self, rel: str) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def delete_dir_if_empty(self, rel: str) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def makedirs(self, rel: str) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def append_text(self, rel: str, text: str) -> None:
        """Append to a small text file (the erasure log)."""
        old = self.read_bytes(rel) if self.exists(rel) else b""
        self.write_atomic(rel, old + text.encode("utf-8"))

    @contextlib.contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Held while a writer commits. Only local directories can lock; elsewhere run one
        writer at a time (e.g. one pipeline job per store)."""
        yield


class LocalStorage(Storage):
    """A local directory, with fsync and POSIX rename."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root_uri = str(self.root)

    def _p(self, rel: str) -> Path:
        return self.root / rel if rel else self.root

    def read_bytes(self, rel: str) -> bytes:
        try:
            return self._p(rel).read_bytes()
        except FileNotFoundError as e:
            raise FileNotFoundError(self.uri(rel)) from e

    def write_atomic(
        self, rel: str, data: bytes, before_rename: Callable[[], None] | None = None
    ) -> None:
        final = self._p(rel)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f"{final.name}{TMP_MARK}{uuid.uuid4().hex[:12]}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        if before_rename is not None:
            before_rename()
        os.replace(tmp, final)
        _fsync_dir(final.parent)

    def exists(self, rel: str) -> bool:
        return self._p(rel).exists()

    def list_dir(self, rel: str = "") -> list[str]:
        p = self._p(rel)
        return sorted(x.name for x in p.iterdir()) if p.is_dir() else []

    def delete(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._p(rel).unlink()

    def delete_dir_if_empty(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError, OSError):
            self._p(rel).rmdir()

    def makedirs(self, rel: str) -> None:
        self._p(rel).mkdir(parents=True, exist_ok=True)

    def append_text(self, rel: str, text: str) -> None:
        path = self._p(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    @contextlib.contextmanager
    def writer_lock(self) -> Iterator[None]:
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".writer.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                msg = (f"another process is writing store {self.root}; wait for it to finish "
                       f"(one writer at a time)")
                raise StoreError(msg) from e
            yield
        finally:
            os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ArrowStorage(Storage):
    """Any ``pyarrow.fs.FileSystem`` (S3, GCS, HDFS, local via ``file://``)."""

    def __init__(self, filesystem: Any, base_path: str, root_uri: str | None = None) -> None:
        self.fs = filesystem
        self.base = base_path.rstrip("/")
        self.root_uri = root_uri or f"{filesystem.type_name}://{self.base}"

    def _p(self, rel: str) -> str:
        return posixpath.join(self.base, rel) if rel else self.base

    def _info(self, rel: str) -> Any:
        return self.fs.get_file_info(self._p(rel))

    def read_bytes(self, rel: str) -> bytes:
        import pyarrow.fs as pafs

        if self._info(rel).type == pafs.FileType.NotFound:
            raise FileNotFoundError(self.uri(rel))
        with self.fs.open_input_stream(self._p(rel)) as f:
            return f.read()

    def write_atomic(
        self, rel: str, data: bytes, before_rename: Callable[[], None] | None = None
    ) -> None:
        final = self._p(rel)
        self.fs.create_dir(posixpath.dirname(final), recursive=True)
        tmp = f"{final}{TMP_MARK}{uuid.uuid4().hex[:12]}"
        with self.fs.open_output_stream(tmp) as f:
            f.write(data)
        if before_rename is not None:
            before_rename()
        self.fs.move(tmp, final)

    def exists(self, rel: str) -> bool:
        import pyarrow.fs as pafs

        return self._info(rel).type != pafs.FileType.NotFound

    def list_dir(self, rel: str = "") -> list[str]:
        import pyarrow.fs as pafs

        if self._info(rel).type != pafs.FileType.Directory:
            return []
        sel = pafs.FileSelector(self._p(rel), allow_not_found=True, recursive=False)
        return sorted(posixpath.basename(i.path.rstrip("/")) for i in self.fs.get_file_info(sel))

    def delete(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError, OSError):
            self.fs.delete_file(self._p(rel))

    def delete_dir_if_empty(self, rel: str) -> None:
        if not self.list_dir(rel):
            with contextlib.suppress(FileNotFoundError, OSError):
                self.fs.delete_dir(self._p(rel))

    def makedirs(self, rel: str) -> None:
        self.fs.create_dir(self._p(rel), recursive=True)


def open_storage(path: str | os.PathLike[str], filesystem: Any = None) -> Storage:
    """Storage for a local path, a URI (``s3://bucket/store``, ``file:///tmp/x``), or a path on
    an explicit pyarrow ``filesystem``."""
    text = os.fspath(path)
    if filesystem is not None:
        return ArrowStorage(filesystem, text, root_uri=f"{filesystem.type_name}://{text}")
    if "://" in text:
        import pyarrow.fs as pafs

        try:
            fs, base = pafs.FileSystem.from_uri(text)
        except (ValueError, OSError) as e:  # pyarrow's ArrowInvalid is a ValueError
            msg = f"cannot open store location {text}: {e}; use a local path, file:// or s3://"
            raise StoreError(msg) from e
        return ArrowStorage(fs, base, root_uri=text.rstrip("/"))
    return LocalStorage(text)
