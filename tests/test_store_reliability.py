"""Reliability of the vector store: killed writers, corrupted files, readers during updates,
and erasures that really forget."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from privacy_ray.errors import StoreError
from privacy_ray.store import VectorStore, read_erasure_log, shard_of
from privacy_ray.store.manifest import FAULT_ENV, list_versions

DIM = 16
MODEL = ("test-hash-encoder", "v1")


class HashingEncoder:
    """Deterministic bag-of-words encoder (a seeded random vector per word)."""

    model_id, model_hash = MODEL

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for i, t in enumerate(texts):
            for tok in t.lower().split():
                seed = int.from_bytes(
                    hashlib.blake2b(tok.encode(), digest_size=4).digest(), "little"
                )
                out[i] += np.random.default_rng(seed).standard_normal(DIM)
        return out


WORDS = (
    "delete",
    "account",
    "data",
    "copy",
    "export",
    "marketing",
    "stop",
    "consent",
    "cookies",
    "breach",
    "parcel",
    "refund",
    "invoice",
    "password",
    "address",
    "phone",
    "email",
    "change",
    "correct",
    "wrong",
    "policy",
    "share",
    "sell",
)


def make_frame(n: int, seed: int = 0, prefix: str = "c", users: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, 6)) + f" ref{prefix}{i}" for i in range(n)]
    return pd.DataFrame(
        {
            "conversation_id": [f"{prefix}{i}" for i in range(n)],
            "user_id": [f"user-{i % users}" for i in range(n)],
            "date": pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC"),
            "channel": rng.choice(["chat", "email"], n),
            "intent": "none",
            "confidence": 0.9,
            "snippet": texts,
            "vector": list(HashingEncoder().encode(texts)),
        }
    )


def answers(store: VectorStore, q: np.ndarray) -> list[list[tuple[str, float]]]:
    return [[(h.conversation_id, round(h.score, 5)) for h in hs] for hs in store.search(q, k=10)]


WRITER = textwrap.dedent("""
    import sys
    import pandas as pd
    from privacy_ray.store import VectorStore
    path, data, erase = sys.argv[1], sys.argv[2], sys.argv[3]
    store = VectorStore.open(path)
    store.upsert(pd.read_parquet(data))
    if erase:
        store.erase_user(erase, commit=False)
    store.commit()
""")


def run_writer(path: Path, data: Path, erase: str = "", fault: str | None = None):
    env = dict(os.environ)
    env.pop(FAULT_ENV, None)
    if fault:
        env[FAULT_ENV] = fault
    return subprocess.run(
        [sys.executable, "-c", WRITER, str(path), str(data), erase],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def base_store(tmp_path):
    path = tmp_path / "store"
    store = VectorStore.create(str(path), dim=DIM, embedding_model=MODEL)
    store.upsert(make_frame(200))
    store.commit()
    more = tmp_path / "more.parquet"
    make_frame(100, seed=5, prefix="n").to_parquet(more)
    q = np.random.default_rng(3).standard_normal((8, DIM)).astype(np.float32)
    return path, more, q, answers(store, q)


@pytest.mark.parametrize(
    "fault", ["after_first_shard", "after_shard_write", "before_manifest_rename"]
)
def test_killed_writer_leaves_previous_version_loadable(base_store, fault):
    path, more, q, before = base_store
    proc = run_writer(path, more, erase="user-1", fault=fault)
    assert proc.returncode == 137, proc.stderr
    assert any(path.glob("v000003/*"))  # the killed writer did write something
    reopened = VectorStore.open(str(path), embedding_model=MODEL)
    assert reopened.version == 2 and len(reopened) == 200
    assert answers(reopened, q) == before
    assert read_erasure_log(reopened.storage) == []  # nothing erased, nothing logged
    # the next writer succeeds and cleans up what the killed one left
    proc = run_writer(path, more, erase="user-1")
    assert proc.returncode == 0, proc.stderr
    after = VectorStore.open(str(path))
    assert after.version == 4 and after.manifest["previous_version"] == 2
    every = pd.concat([make_frame(200), pd.read_parquet(more)])
    assert len(after) == int((every["user_id"] != "user-1").sum()) == 300 - 38
    assert not list(path.rglob("*.tmp-*"))
    assert not (path / "v000003").exists()
    assert list_versions(after.storage) == [4]  # erasure: nothing older survives


def test_writer_killed_after_publishing_erasure_repairs_log_and_purges(base_store):
    path, more, _, _ = base_store
    proc = run_writer(path, more, erase="user-2", fault="after_manifest_rename")
    assert proc.returncode == 137, proc.stderr
    store = VectorStore.open(str(path))
    assert store.version == 3
    record = store.manifest["erasures"][0]
    assert read_erasure_log(store.storage) == []  # killed before the log append
    assert 2 in list_versions(store.storage)  # and before garbage collection
    seen = []
    store.on_erase.append(seen.append)
    store.upsert(make_frame(3, seed=9, prefix="z"))
    store.commit()
    log = read_erasure_log(store.storage)
    assert log == [record] == seen
    assert list_versions(store.storage) == [3, 4]  # v2 held user-2's rows: gone
    copy = json.loads((path / "v000003" / "manifest.json").read_text())["erasures"][0]
    assert copy == record and record["total"] == 38


@pytest.mark.parametrize("suffix", [".faiss", ".parquet"])
def test_corrupted_shard_file_fails_with_one_line_naming_it(base_store, suffix):
    path, _, _, _ = base_store
    victim = sorted(path.glob(f"v000002/shard-*{suffix}"))[1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(StoreError) as err:
        VectorStore.open(str(path))
    msg = str(err.value)
    assert "\n" not in msg and str(victim) in msg and "corrupted" in msg
    proc = subprocess.run(
        [sys.executable, "-m", "privacy_ray", "index", "stats", "--store", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(victim) in lines[0] and "Traceback" not in proc.stderr


def test_missing_or_truncated_files_are_named(base_store):
    path, _, _, _ = base_store
    victim = sorted(path.glob("v000002/shard-*.parquet"))[0]
    victim.unlink()
    with pytest.raises(StoreError, match=f"{victim}.* is missing"):
        VectorStore.open(str(path))
    (path / "manifest.json").write_text('{"format_version": 1, "store_')
    with pytest.raises(StoreError, match="manifest.json is not valid JSON"):
        VectorStore.open(str(path))


READER_WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    import pandas as pd
    from privacy_ray.store import VectorStore
    path, batches, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    store = VectorStore.open(path)
    rng = np.random.default_rng(0)
    for b in range(1, batches + 1):
        df = pd.DataFrame({
            "conversation_id": [f"b{b}-{j}" for j in range(per)],
            "user_id": [f"u{j}" for j in range(per)],
            "date": "2026-02-01",
            "vector": list(rng.standard_normal((per, 16)).astype("float32")),
        })
        store.upsert(df)
        store.commit()
""")


def test_readers_during_updates_see_whole_versions(tmp_path):
    path = tmp_path / "store"
    VectorStore.create(str(path), dim=DIM, embedding_model=MODEL, versions_kept=2)
    batches, per = 12, 20
    expected_batches_per_shard = [
        {b for b in range(1, batches + 1) for j in range(per) if shard_of(f"b{b}-{j}", 4) == s}
        for s in range(4)
    ]
    proc = subprocess.Popen(
        [sys.executable, "-c", READER_WRITER, str(path), str(batches), str(per)],
        stderr=subprocess.PIPE,
        text=True,
    )
    observed: list[int] = []
    errors: list[str] = []
    q = np.ones((1, DIM), dtype=np.float32)

    def check(store: VectorStore) -> None:
        v = store.version
        assert len(store) == per * (v - 1), (v, len(store))
        for s in store.shards:
            got = {int(c.split("-")[0][1:]) for c in s.meta["conversation_id"]}
            assert got == {b for b in expected_batches_per_shard[s.shard_no] if b < v}, v
        assert len(store.search(q, k=5)[0]) == min(5, len(store))
        observed.append(v)

    long_lived = VectorStore.open(str(path))
    check(long_lived)

    def reader() -> None:
        try:
            while proc.poll() is None:
                check(VectorStore.open(str(path)))
        except Exception as e:  # surfaced below with the version it saw
            errors.append(repr(e))

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    while proc.poll() is None:
        long_lived.refresh()
        check(long_lived)
    for t in threads:
        t.join()
    assert proc.returncode == 0, proc.stderr.read()
    assert errors == []
    final = VectorStore.open(str(path))
    check(final)
    assert final.version == batches + 1 and observed[0] == 1


@pytest.mark.parametrize("index_type", ["flat", "ivf", "hnsw"])
def test_erased_user_is_not_found_by_their_own_texts(tmp_path, index_type):
    path = tmp_path / "store"
    store = VectorStore.create(
        str(path),
        dim=DIM,
        embedding_model=MODEL,
        index_type=index_type,
        ivf_min_train_vectors=50,
        exact_search_max_rows=0,
        encoder=HashingEncoder(),
    )
    df = pd.concat([make_frame(300), make_frame(60, seed=1, prefix="p")], ignore_index=True)
    store.upsert(df)
    store.commit()
    assert {s.kind for s in store.shards} == {index_type}
    before = {e["shard"]: e["count"] for e in store.manifest["shards"]}
    theirs = df[df["user_id"] == "user-3"]
    key = store.keyer().hash("user-3")
    hits = store.search(theirs["snippet"].tolist(), k=5)
    assert any(h.user_key == key for hs in hits for h in hs)  # found before the erasure

    rec = store.erase_user("user-3")
    assert rec["total"] == len(theirs)
    for st in (store, VectorStore.open(str(path), encoder=HashingEncoder())):
        for hs in st.search(theirs["snippet"].tolist(), k=len(df)):
            assert key not in {h.user_key for h in hs}
            assert not set(theirs["conversation_id"]) & {h.conversation_id for h in hs}
        after = {e["shard"]: e["count"] for e in st.manifest["shards"]}
        log = read_erasure_log(st.storage)
        assert len(log) == 1 and log[0] == st.manifest["erasures"][0]
        assert {str(s): before[s] - after[s] for s in before} == log[0]["counts"]
        assert sum(before.values()) - st.manifest["count"] == log[0]["total"] == len(theirs)
    # nothing of theirs anywhere on disk
    raw = b"".join(p.read_bytes() for p in path.rglob("*.parquet"))
    import pyarrow.parquet as pq

    for f in path.rglob("*.parquet"):
        assert key not in set(pq.read_table(f).column("user_key").to_pylist())
    assert b"user-3" not in raw
