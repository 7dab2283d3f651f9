"""The store's on-disk layout, manifest, atomic publication, garbage collection and erasure log.

Layout::

    STORE/manifest.json              the current version (the only file readers start from)
    STORE/v000007/manifest.json      a copy of each version's manifest (for GC and rollback)
    STORE/v000007/shard-000.faiss    FAISS index of shard 0 as written in version 7
    STORE/v000007/shard-000.parquet  its metadata rows
    STORE/erasures.jsonl             one JSON line per erasure / retention run

A commit writes the changed shards into a fresh version directory (each file: temporary name,
fsync, rename), then that version's manifest copy, then ``manifest.json`` last (temporary
name, fsync, rename). A crash anywhere before the last rename leaves the previous manifest and
every file it names untouched, so the previous version still loads. Unchanged shards are not
rewritten: the new manifest names the files of the version that last wrote them.

Readers read ``manifest.json`` once and load exactly the files it names, verifying each
file's SHA-256, so they see one whole version. Old versions stay until ``versions_kept`` newer
ones exist; a commit that erased data deletes every older version at once, so erased vectors
do not survive in them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from collections.abc import Iterable
from typing import Any

from privacy_ray.errors import StoreError
from privacy_ray.store.storage import TMP_MARK, Storage

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ERASURE_LOG = "erasures.jsonl"
#: Test-only fault injection: the writing process exits (as if killed) at the named point.
FAULT_ENV = "PRIVACY_RAY_STORE_FAULT"
FAULT_POINTS = ("after_first_shard", "after_shard_write", "before_manifest_rename",
                "after_manifest_rename")
_VERSION_DIR = re.compile(r"^v(\d{6,})$")


def fault_point(name: str) -> None:
    """Exit the process abruptly when ``PRIVACY_RAY_STORE_FAULT`` names this point.

    Used by the reliability tests to kill a writer between a shard write and the manifest
    rename; ``os._exit`` skips every cleanup, like SIGKILL.
    """
    if os.environ.get(FAULT_ENV) == name:
        os._exit(137)


def version_dir(version: int) -> str:
    return f"v{version:06d}"


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def package_version() -> str:
    try:
        from importlib.metadata import version

        return version("privacy-ray")
    except Exception:  # pragma: no cover - not installed as a distribution
        return "0+unknown"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dumps(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")


def read_manifest(storage: Storage, version: int | None = None) -> dict[str, Any]:
    """The current manifest, or that of ``version``. Errors say which file and what to do."""
    rel = MANIFEST if version is None else f"{version_dir(version)}/{MANIFEST}"
    try:
        raw = storage.read_bytes(rel)
    except FileNotFoundError as e:
        if version is None:
            msg = (f"no vector store at {storage.root_uri} ({MANIFEST} not found); build one "
                   f"with the conversations pipeline or VectorStore.create")
        else:
            kept = ", ".join(str(v) for v in list_versions(storage)) or "none"
            msg = (f"store version {version} is not on disk at {storage.root_uri} (removed by "
                   f"garbage collection or an erasure purge); versions kept: {kept}")
        raise StoreError(msg) from e
    try:
        manifest = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        msg = f"manifest {storage.uri(rel)} is not valid JSON; restore it from a backup"
        raise StoreError(msg) from e
    fmt = manifest.get("format_version") if isinstance(manifest, dict) else None
    if fmt != FORMAT_VERSION:
        msg = (f"manifest {storage.uri(rel)} has format version {fmt!r}; this privacy-ray reads "
               f"format {FORMAT_VERSION}: upgrade privacy-ray or rebuild the store")
        raise StoreError(msg)
    return manifest


def list_versions(storage: Storage) -> list[int]:
    """Versions that have a manifest copy on disk, ascending."""
    out = []
    for name in storage.list_dir(""):
        m = _VERSION_DIR.match(name)
        if m and storage.exists(f"{name}/{MANIFEST}"):
            out.append(int(m.group(1)))
    return sorted(out)


def next_version(storage: Storage, current: int) -> int:
    """A version number above the current one and above any directory left by a crash."""
    highest = current
    for name in storage.list_dir(""):
        m = _VERSION_DIR.match(name)
        if m:
            highest = max(highest, int(m.group(1)))
    return highest + 1


def read_verified(storage: Storage, rel: str, expected_sha256: str | None) -> bytes:
    """Read a file named by a manifest and check its checksum; errors name the file."""
    data = storage.read_bytes(rel)
    if expected_sha256 and sha256(data) != expected_sha256:
        msg = (f"shard file {storage.uri(rel)} is corrupted (sha256 {sha256(data)[:12]}... does "
               f"not match the manifest's {expected_sha256[:12]}...); restore it from a backup "
               f"or rebuild the store")
        raise StoreError(msg)
    return data


def write_shard_files(
    storage: Storage, version: int, shard_no: int, index_bytes: bytes, meta_bytes: bytes,
    *, count: int, index_kind: str, extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write one shard's two files into the version directory; returns its manifest entry."""
    vdir = version_dir(version)
    index_rel = f"{vdir}/shard-{shard_no:03d}.faiss"
    meta_rel = f"{vdir}/shard-{shard_no:03d}.parquet"
    storage.write_atomic(index_rel, index_bytes)
    storage.write_atomic(meta_rel, meta_bytes)
    entry = {
        "shard": shard_no,
        "count": count,
        "index_kind": index_kind,
        "index_file": index_rel,
        "index_sha256": sha256(index_bytes),
        "index_bytes": len(index_bytes),
        "meta_file": meta_rel,
        "meta_sha256": sha256(meta_bytes),
        "meta_bytes": len(meta_bytes),
        "written_in_version": version,
    }
    entry.update(extra or {})
    return entry


def publish(storage: Storage, manifest: dict[str, Any]) -> None:
    """Make ``manifest`` the current version: its copy first, then ``manifest.json`` last."""
    data = dumps(manifest)
    version = int(manifest["store_version"])
    storage.write_atomic(f"{version_dir(version)}/{MANIFEST}", data)
    storage.write_atomic(
        MANIFEST, data, before_rename=lambda: fault_point("before_manifest_rename"))


def kept_versions(storage: Storage, current: dict[str, Any], keep: int) -> list[int]:
    """The current version and its predecessors along the ``previous_version`` chain, at most
    ``keep`` in all, stopping at a version that erased data: no version older than an erasure
    is ever kept, so erased rows do not survive on disk even if a writer died right after
    publishing the erasure. Directories of writers that crashed are not on the chain."""
    kept = [int(current["store_version"])]
    m: dict[str, Any] | None = current
    while m is not None and len(kept) < keep and not m.get("erasures"):
        prev = m.get("previous_version")
        if not prev:
            break
        m = _safe_read(storage, int(prev))
        if m is not None:
            kept.append(int(prev))
    return kept


def collect_garbage(storage: Storage, current: dict[str, Any], *, keep: int) -> list[int]:
    """Delete every file no kept version (see :func:`kept_versions`) names: old versions,
    directories of crashed writers, stray temporary files. Returns the versions removed.
    Call only while holding the writer lock."""
    kept = kept_versions(storage, current, keep)
    referenced: set[str] = set()
    manifests = [current] + [_safe_read(storage, v) for v in kept[1:]]
    for m in manifests:
        if m is None:
            continue
        for e in m.get("shards", []):
            referenced.update((e.get("index_file"), e.get("meta_file")))
        referenced.add(f"{version_dir(int(m['store_version']))}/{MANIFEST}")
    removed = []
    for name in storage.list_dir(""):
        if TMP_MARK in name and name.startswith(MANIFEST):
            storage.delete(name)
            continue
        match = _VERSION_DIR.match(name)
        if not match:
            continue
        files = storage.list_dir(name)
        had_manifest = MANIFEST in files
        for f in files:
            rel = f"{name}/{f}"
            if rel not in referenced:
                storage.delete(rel)
        storage.delete_dir_if_empty(name)
        v = int(match.group(1))
        if v not in kept and had_manifest:
            removed.append(v)
    return sorted(removed)


def _safe_read(storage: Storage, version: int) -> dict[str, Any] | None:
    try:
        return read_manifest(storage, version)
    except StoreError:
        return None


def read_erasure_log(storage: Storage) -> list[dict[str, Any]]:
    if not storage.exists(ERASURE_LOG):
        return []
    lines = storage.read_bytes(ERASURE_LOG).decode("utf-8").splitlines()
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a torn last line after a crash: skip, keep the rest
            if n != len(lines):
                msg = f"erasure log {storage.uri(ERASURE_LOG)} line {n} is not JSON; repair it"
                raise StoreError(msg) from None
    return out


def append_erasures(storage: Storage, records: Iterable[dict[str, Any]]) -> None:
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
    if text:
        storage.append_text(ERASURE_LOG, text)
