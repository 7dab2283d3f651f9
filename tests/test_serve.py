"""The Serve app: real HTTP over loopback against a real Serve app on a tiny MiniLM store.

Unit tests (tokens, options, the shard holder, the merge, the error guard) need no Ray. The
integration tests share one deployment (module fixture) on the session's local Ray: it starts
with shard 1's index file corrupted, records /ready, repairs the file, and then serves the
rest of the module.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from privacy_ray.config import ServeConfig
from privacy_ray.errors import ConfigError, StoreError
from privacy_ray.serve.auth import TokenSet, bearer_token, parse_tokens
from privacy_ray.serve.options import resolve_app_args
from privacy_ray.serve.shards import ShardHolder, merge_hits
from privacy_ray.store import SearchFilter, VectorStore

REPO = Path(__file__).resolve().parents[1]
TOKEN_OLD = "old-token-0123456789abcdef"
TOKEN_NEW = "new-token-fedcba9876543210"
DIM = 16


# --------------------------------------------------------------------------- unit: tokens


def test_tokens_parse_rotate_and_compare(tmp_path):
    assert parse_tokens(" a , b,,a\nc ") == ["a", "b", "c"]
    assert bearer_token("Bearer  xyz ") == "xyz"
    assert bearer_token("bearer xyz") == "xyz"
    assert bearer_token("Basic xyz") is None and bearer_token("Bearer") is None
    env = {"PRIVACY_RAY_API_TOKENS": f"{TOKEN_OLD}, short ,{TOKEN_NEW}"}
    tokens = TokenSet.from_environment(environ=env)
    assert len(tokens) == 2  # the short one is refused
    assert tokens.verify(TOKEN_OLD) and tokens.verify(TOKEN_NEW)
    assert not tokens.verify("short") and not tokens.verify(None) and not tokens.verify("")
    assert not tokens.verify(TOKEN_OLD[:-1]) and not tokens.verify(TOKEN_OLD + "x")

    # a token file is re-read when it changes: rotation without a restart
    f = tmp_path / "tokens"
    f.write_text(f"{TOKEN_OLD}\n{TOKEN_NEW}\n")
    rotating = TokenSet.from_environment(environ={"PRIVACY_RAY_API_TOKENS_FILE": str(f)})
    assert rotating.verify(TOKEN_OLD) and rotating.verify(TOKEN_NEW)
    f.write_text(TOKEN_NEW + "\n")
    os.utime(f, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    assert not rotating.verify(TOKEN_OLD) and rotating.verify(TOKEN_NEW)
    f.unlink()
    assert not rotating.verify(TOKEN_NEW) and not rotating.configured
    assert not TokenSet.from_environment(environ={}).configured


# --------------------------------------------------------------------------- unit: options


def test_build_app_accepts_the_rayservice_args():
    from privacy_ray.config import Settings
    from privacy_ray.k8s.render import serve_config
    from privacy_ray.k8s.values import ManifestValues

    rendered = serve_config(Settings(), ManifestValues())
    app = rendered["applications"][0]
    assert app["import_path"] == "privacy_ray.serve.app:build_app"
    cfg = resolve_app_args(app["args"])
    assert cfg.store_path == Settings().store.path
    assert cfg.options.replicas("shard") == app["args"]["num_replicas"]
    assert cfg.options.replicas("ingress") == app["args"]["num_replicas"]
    # ``serve run module:build_app k=v`` passes strings; extra serve knobs ride in settings
    cfg = resolve_app_args({"store_path": "/data/store", "num_replicas": "3", "model_dir": "m",
                            "settings": {"serve": {"port": 9000, "max_k": 20,
                                                   "shard_replicas": 2}}})
    assert (cfg.options.replicas("ingress"), cfg.options.replicas("shard")) == (3, 2)
    assert cfg.options.max_k == 20 and cfg.settings.serve.port == 9000
    assert cfg.model_dir == "m" and cfg.store_path == "/data/store"
    with pytest.raises(ConfigError, match="max_kk"):
        resolve_app_args({"settings": {"serve": {"max_kk": 3}}, "store_path": "x"})
    with pytest.raises(ConfigError, match="build_app argument"):
        resolve_app_args({"store": "x"})
    with pytest.raises(ConfigError, match="CORS origin"):
        resolve_app_args({"settings": {"serve": {"cors_origins": ["example.com"]}},
                          "store_path": "x"})


def test_options_fit_a_small_embedded_ray():
    opts = ServeConfig()
    assert opts.fit_to_cpus(4, 2.0) is opts  # 1.0 + 0.1 + 0.1 + 4 * 0.1 fits
    small = opts.fit_to_cpus(4, 1.0)
    assert 0 < small.embedder_num_cpus < 0.4 and small.light_cpus(4) + small.embedder_num_cpus <= 1
    with pytest.raises(ConfigError, match="more than"):
        opts.fit_to_cpus(16, 1.0)


# --------------------------------------------------------------------------- unit: shards


def _frame(n: int, seed: int, prefix: str = "c") -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    df = pd.DataFrame({
        "conversation_id": [f"{prefix}-{i}" for i in range(n)],
        "user_id": [f"u-{i % 7}" for i in range(n)],
        "date": pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 60, n),
                                                                        unit="D"),
        "channel": rng.choice(["chat", "email", "ticket", "social"], n),
        "intent": rng.choice(["none", "deletion_request", "access_request"], n),
        "confidence": rng.uniform(0.3, 1, n).round(3),
        "snippet": [f"redacted text {i}" for i in range(n)],
    })
    return df, vectors


def test_shard_holders_answer_like_the_store_and_switch_versions(tmp_path):
    path = str(tmp_path / "store")
    store = VectorStore.create(path, dim=DIM, embedding_model=("test-model", "h1"), num_shards=2)
    df, vectors = _frame(80, seed=1)
    store.upsert(df, vectors=list(vectors))
    v1 = store.commit()
    holders = [ShardHolder(path, s, num_shards=2) for s in range(2)]
    for h in holders:
        assert h.refresh() and h.current.version == v1 and not h.refresh()
    q = np.random.default_rng(5).standard_normal((3, DIM)).astype(np.float32)
    flt = {"channels": ["email", "chat"], "date_from": "2026-01-10"}
    for filters in (None, flt):
        ks = [5, 1, 12]
        per_shard = [h.search(q, ks, [filters] * 3, v1) for h in holders]
        got = merge_hits([p[1] for p in per_shard], ks)
        sf = SearchFilter.of(**filters) if filters else None
        for qi, k in enumerate(ks):
            want = store.search(q[qi], k=k, filters=sf)[0]
            assert [h[1] for h in got[qi]] == [w.conversation_id for w in want]
            assert np.allclose([h[0] for h in got[qi]], [w.score for w in want], atol=1e-5)
            assert [(h[2], h[3], h[4], h[6]) for h in got[qi]] == [
                (w.date, w.channel, w.intent, w.snippet) for w in want]

    # a new version: queries pinned to v1 still get v1 while it is held
    more, more_v = _frame(10, seed=2, prefix="n")
    store.upsert(more, vectors=list(more_v))
    v2 = store.commit()
    h0 = holders[0]
    assert h0.refresh() and h0.versions == [v1, v2]
    assert h0.search(q[:1], [3], [None], v1)[0] == v1
    assert h0.search(q[:1], [3], [None], v2)[0] == v2
    assert h0.search(q[:1], [3], [None], None)[0] == v2
    # a pinned version ahead of what a holder has is loaded on demand
    assert holders[1].search(q[:1], [3], [None], v2)[0] == v2
    # an erasure drops every older version at once
    store.erase_user("u-3")  # committed at once
    v3 = store.version
    assert h0.refresh() and h0.versions == [v3]
    used, hits = h0.search(q[:1], [50], [None], v1)
    assert used == v3
    assert h0.canary()["store_version"] == v3


def test_shard_holder_records_load_errors_and_recovers(tmp_path):
    path = tmp_path / "store"
    store = VectorStore.create(str(path), dim=DIM, embedding_model=("m", "h"), num_shards=2)
    df, vectors = _frame(40, seed=3)
    store.upsert(df, vectors=list(vectors))
    store.commit()
    index_file = path / store.manifest["shards"][1]["index_file"]
    good = index_file.read_bytes()
    index_file.write_bytes(b"garbage" + good[7:])
    holder = ShardHolder(str(path), 1, num_shards=2)
    with pytest.raises(StoreError, match="corrupted"):
        holder.refresh()
    assert not holder.loaded and holder.status()["error"] == "StoreError"
    index_file.write_bytes(good)
    assert holder.refresh() and holder.status()["error"] is None
    assert holder.canary()["count"] == len(holder.current.shard)
    with pytest.raises(StoreError, match="deployed for 3"):
        ShardHolder(str(path), 0, num_shards=3).refresh()


# --------------------------------------------------------------------------- unit: HTTP guard


def _asgi_call(app: Any, method: str, path: str, body: bytes = b"",
               headers: dict[str, str] | None = None,
               chunked: bool = False) -> tuple[int, dict[str, str], bytes]:
    """Drive an ASGI app in-process (no server, no Ray)."""
    hdrs = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if not chunked:
        hdrs.append((b"content-length", str(len(body)).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "path": path, "raw_path": path.encode(), "root_path": "",
             "scheme": "http", "query_string": b"", "headers": hdrs,
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    pieces = [body[i:i + 1000] for i in range(0, len(body), 1000)] if chunked else [body]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1}
                for i, p in enumerate(pieces)]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    out = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, out


def test_http_layer_turns_every_failure_into_json_without_internals():
    from privacy_ray.serve.http import create_http_app
    from privacy_ray.serve.schemas import ClassifyRequest, SearchRequest

    observed: list[tuple[str, str, int]] = []

    class Broken:  # a service whose data path fails with an unexpected error
        async def info(self) -> dict[str, Any]:
            return {"service": "privacy-ray"}

        async def ready(self) -> tuple[bool, dict[str, Any]]:
            return False, {"status": "not_ready", "failing": ["shard-0"]}

        async def search(self, req: SearchRequest) -> dict[str, Any]:
            raise KeyError("/secret/path/shard-000.faiss")

        async def classify(self, req: ClassifyRequest) -> dict[str, Any]:
            return {"predictions": []}

        async def reload(self) -> dict[str, Any]:
            return {"changed": False}

    opts = ServeConfig(max_body_bytes=2048)
    tokens = TokenSet([TOKEN_OLD])
    app = create_http_app(Broken(), opts, tokens, version="0",
                          observe=lambda e, m, s, d: observed.append((e, m, s)))
    auth = {"authorization": f"Bearer {TOKEN_OLD}", "content-type": "application/json"}
    status, _, body = _asgi_call(app, "POST", "/search", b'{"text": "x"}', auth)
    assert status == 500 and b"secret" not in body and b"Traceback" not in body
    assert json.loads(body)["error"] == "internal_error"
    status, _, body = _asgi_call(app, "POST", "/search", b"x" * 4096, auth)
    assert status == 413 and json.loads(body)["error"] == "body_too_large"
    big = b'{"text": "' + b"y" * 4000 + b'"}'
    status, _, body = _asgi_call(app, "POST", "/search", big, auth, chunked=True)
    assert status == 413 and json.loads(body)["error"] == "body_too_large"
    status, _, body = _asgi_call(app, "POST", "/search", b'{"text": "my email is a@b.co", "k": 0}',
                                 auth)
    err = json.loads(body)
    assert status == 422 and err["detail"][0]["loc"] == ["body", "k"]
    assert b"a@b.co" not in body  # the input is never echoed
    status, headers, body = _asgi_call(app, "POST", "/classify", b'{"text": "x"}',
                                       {"content-type": "application/json"})
    assert status == 401 and headers["www-authenticate"] == "Bearer"
    status, _, body = _asgi_call(app, "GET", "/ready")
    assert status == 503 and json.loads(body)["failing"] == ["shard-0"]
    status, _, body = _asgi_call(app, "GET", "/nope")
    assert status == 404 and json.loads(body)["error"] == "not_found"
    assert ("/search", "POST", 500) in observed and ("other", "GET", 404) in observed
    # CORS only for configured origins
    cors = create_http_app(Broken(), ServeConfig(cors_origins=["https://app.example"]), tokens,
                           version="0")
    pre = {"origin": "https://app.example", "access-control-request-method": "POST"}
    status, headers, _ = _asgi_call(cors, "OPTIONS", "/search", headers=pre)
    assert status == 200 and headers["access-control-allow-origin"] == "https://app.example"
    status, headers, _ = _asgi_call(cors, "OPTIONS", "/search",
                                    headers=dict(pre, origin="https://evil.example"))
    assert "access-control-allow-origin" not in headers
    # no tokens configured: data endpoints refuse, health stays open
    closed = create_http_app(Broken(), opts, TokenSet([]), version="0")
    status, _, body = _asgi_call(closed, "POST", "/classify", b'{"text": "x"}', auth)
    assert status == 503 and json.loads(body)["error"] == "auth_not_configured"
    assert _asgi_call(closed, "GET", "/health")[0] == 200


# --------------------------------------------------------------------------- integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """Minimal JSON-over-HTTP client (stdlib only)."""

    def __init__(self, base: str) -> None:
        self.base = base

    def call(self, method: str, path: str, body: Any = None, token: str | None = None,
             raw: bytes | None = None, headers: dict[str, str] | None = None,
             ) -> tuple[int, Any, dict[str, str]]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                status, text, hdrs = resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as e:
            status, text, hdrs = e.code, e.read(), dict(e.headers)
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = text.decode("utf-8", "replace")
        return status, parsed, hdrs


def _conversation_frame(n: int) -> pd.DataFrame:
    from privacy_ray.synth import generate_conversations
    from privacy_ray.text import normalize_texts, redact_texts

    conv = generate_conversations(n, seed=5)
    text = conv["turns"].map(
        lambda turns: "\n".join(t["text"] for t in turns if t["role"] == "customer"))
    return pd.DataFrame({
        "conversation_id": conv["conversation_id"], "user_id": conv["user_id"],
        "date": conv["started_at"], "channel": conv["channel"], "intent": conv["label"],
        "confidence": 0.9, "snippet": redact_texts(normalize_texts(text)),
    })


@pytest.fixture(scope="module")
def served(ray_session, tiny_model_dir, tmp_path_factory):
    """One app over a 120-conversation, 2-shard MiniLM store. Deployed with shard 1's index
    file corrupted (the /ready answer is recorded), then repaired before the tests run."""
    from ray import serve

    from privacy_ray.model.embedder import SentenceEncoder
    from privacy_ray.serve.app import build_app
    from privacy_ray.store import ModelRef

    root = tmp_path_factory.mktemp("serve")
    df = _conversation_frame(120)
    encoder = SentenceEncoder("all-MiniLM-L6-v2", device="cpu").load()
    vectors = encoder.encode(df["snippet"].tolist())
    path = root / "store"
    store = VectorStore.create(str(path), dim=vectors.shape[1],
                               embedding_model=ModelRef.of(encoder), num_shards=2)
    store.upsert(df, vectors=list(vectors))
    store.commit()
    index_file = path / store.manifest["shards"][1]["index_file"]
    good = index_file.read_bytes()
    index_file.write_bytes(good[: len(good) // 2])

    token_file = root / "tokens"
    token_file.write_text(f"{TOKEN_OLD},{TOKEN_NEW}\n")
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        from ray.serve.context import _get_global_client

        port = _get_global_client().http_config.port  # Serve may already be running
    except Exception:
        pass
    app_name = "privacy-ray-test"
    args = {"store_path": str(path), "model_dir": str(tiny_model_dir),
            "settings": {"serve": {"embedder_num_cpus": 0.5, "reload_poll_s": 0.5,
                                   "retry_load_s": 0.2, "api_tokens_file": str(token_file),
                                   "max_k": 50, "max_text_chars": 2000,
                                   "max_texts_per_request": 8, "max_body_bytes": 65536}}}
    serve.run(build_app(args), name=app_name, route_prefix="/")
    client = Client(f"http://127.0.0.1:{port}")
    broken_ready = client.call("GET", "/ready")
    index_file.write_bytes(good)
    deadline = time.monotonic() + 60
    while client.call("GET", "/ready")[0] != 200:
        assert time.monotonic() < deadline, client.call("GET", "/ready")
        time.sleep(0.3)
    yield {"client": client, "store": store, "df": df, "vectors": vectors, "encoder": encoder,
           "broken_ready": broken_ready, "token_file": token_file, "port": port}
    serve.delete(app_name)
    serve.shutdown()


@pytest.mark.slow
def test_ready_is_503_naming_a_shard_that_cannot_load(served):
    status, body, _ = served["broken_ready"]
    assert status == 503, body
    assert body["status"] == "not_ready" and body["failing"] == ["shard-1"]
    assert body["components"]["shard-0"]["ok"] and body["components"]["embedder"]["ok"]
    assert "StoreError" in body["components"]["shard-1"]["reason"]
    assert "Traceback" not in json.dumps(body) and "/shard-" not in json.dumps(body)
    status, body, _ = served["client"].call("GET", "/ready")
    assert status == 200 and body["failing"] == [] and body["status"] == "ready"


@pytest.mark.slow
def test_open_endpoints_info_health_docs(served):
    c = served["client"]
    status, info, _ = c.call("GET", "/")
    store = served["store"]
    assert status == 200 and info["service"] == "privacy-ray" and info["version"]
    assert info["embedding_model"]["id"] == "all-MiniLM-L6-v2"
    assert info["embedding_model"]["hash"] == store.embedding_model.hash
    assert info["store"]["store_version"] == store.version
    assert info["store"]["num_shards"] == 2 and info["store"]["count"] == len(store)
    assert sum(info["store"]["shard_counts"].values()) == len(store)
    assert info["classifier"]["labels"][-1] == "none"
    assert c.call("GET", "/health")[:2] == (200, {"status": "ok"})
    status, page, _ = c.call("GET", "/docs")
    assert status == 200 and "swagger" in page.lower()
    status, spec, _ = c.call("GET", "/openapi.json")
    assert status == 200 and {"/search", "/classify", "/ready"} <= set(spec["paths"])


@pytest.mark.slow
def test_search_by_text_equals_the_store_searched_in_process(served):
    from privacy_ray.text import normalize_texts, redact_texts

    c, store, df = served["client"], served["store"], served["df"]
    query = "Please delete my account and every bit of data, reach me at jo@example.com"
    status, body, _ = c.call("POST", "/search", {"text": query, "k": 5}, token=TOKEN_OLD)
    assert status == 200, body
    assert body["store_version"] == store.version and body["k"] == 5
    cleaned = redact_texts(normalize_texts(pd.Series([query]))).tolist()
    want = store.search(cleaned, k=5, encoder=served["encoder"])[0]
    assert [h["conversation_id"] for h in body["hits"]] == [w.conversation_id for w in want]
    assert np.allclose([h["score"] for h in body["hits"]], [w.score for w in want], atol=1e-4)
    top = body["hits"][0]
    assert set(top) == {"conversation_id", "score", "date", "channel", "intent", "confidence",
                        "snippet"}
    row = df.set_index("conversation_id").loc[top["conversation_id"]]
    assert top["channel"] == row["channel"] and top["intent"] == row["intent"]
    assert top["snippet"] == row["snippet"][:240] and "@" not in "".join(
        h["snippet"] for h in body["hits"])


@pytest.mark.slow
def test_search_by_vector_with_filters(served):
    c, df, vectors = served["client"], served["df"], served["vectors"]
    i = int(np.flatnonzero(df["channel"].to_numpy() == "email")[0])
    vec = [float(x) for x in vectors[i]]
    status, body, _ = c.call("POST", "/search", {"vector": vec, "k": 3}, token=TOKEN_NEW)
    assert status == 200 and body["hits"][0]["conversation_id"] == df["conversation_id"][i]
    assert body["hits"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    day = pd.Timestamp(df["date"][i]).date().isoformat()
    flt = {"channels": ["chat", "social"], "date_from": "2026-01-01"}
    status, body, _ = c.call("POST", "/search", {"vector": vec, "k": 50, "filters": flt},
                             token=TOKEN_NEW)
    assert status == 200 and body["hits"]
    assert {h["channel"] for h in body["hits"]} <= {"chat", "social"}
    assert df["conversation_id"][i] not in {h["conversation_id"] for h in body["hits"]}
    status, body, _ = c.call("POST", "/search", {"vector": vec, "k": 50, "filters": {
        "date_from": day, "date_to": day}}, token=TOKEN_NEW)
    assert status == 200 and all(h["date"][:10] == day for h in body["hits"])
    assert df["conversation_id"][i] in {h["conversation_id"] for h in body["hits"]}


@pytest.mark.slow
def test_classify_equals_the_python_api(served, tiny_model_dir):
    from privacy_ray.api import Classifier
    from privacy_ray.config import Settings

    c = served["client"]
    texts = ["Under GDPR Art. 15 I want a copy of all personal data you hold about me.",
             "Where is my parcel? It was due on Monday.",
             "Please stop selling my information, I'm in California."]
    status, body, _ = c.call("POST", "/classify", {"texts": texts}, token=TOKEN_OLD)
    assert status == 200, body
    want = Classifier(tiny_model_dir, Settings()).classify(texts)
    assert [p["label"] for p in body["predictions"]] == want["label"].tolist()
    for got, (_, row) in zip(body["predictions"], want.iterrows(), strict=True):
        assert got["confidence"] == pytest.approx(row["confidence"], abs=1e-4)
        assert got["abstain"] == bool(row["abstain"])
        assert set(got["probabilities"]) == set(row["probabilities"])
        assert sum(got["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    status, one, _ = c.call("POST", "/classify", {"text": texts[0],
                                                  "received_at": "2026-03-01T10:00:00Z"},
                            token=TOKEN_OLD)
    assert status == 200 and len(one["predictions"]) == 1
    pred = one["predictions"][0]
    assert pred["label"] == body["predictions"][0]["label"]
    if pred["regulation"] == "GDPR":
        assert pred["due_by"].startswith("2026-04-01")
    assert one["model"]["name"] == Path(tiny_model_dir).name


@pytest.mark.slow
def test_auth_missing_wrong_and_rotated_tokens(served):
    c, token_file = served["client"], served["token_file"]
    search = {"text": "what data do you keep about me", "k": 2}
    status, body, headers = c.call("POST", "/search", search)
    assert status == 401 and body["error"] == "unauthorized" and "Bearer" in headers.get(
        "www-authenticate", headers.get("WWW-Authenticate", ""))
    assert c.call("POST", "/search", search, token="wrong-token-000000000000")[0] == 401
    assert c.call("POST", "/search", search, headers={"Authorization": f"Basic {TOKEN_OLD}"}
                  )[0] == 401
    assert c.call("POST", "/classify", {"text": "hi"}, token="nope")[0] == 401
    assert c.call("POST", "/admin/reload")[0] == 401
    assert c.call("POST", "/search", search, token=TOKEN_OLD)[0] == 200
    assert c.call("POST", "/search", search, token=TOKEN_NEW)[0] == 200
    # rotate: drop the old token from the mounted file; no redeploy
    token_file.write_text(TOKEN_NEW + "\n")
    os.utime(token_file, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    assert c.call("POST", "/search", search, token=TOKEN_OLD)[0] == 401
    assert c.call("POST", "/search", search, token=TOKEN_NEW)[0] == 200
    token_file.write_text(f"{TOKEN_OLD},{TOKEN_NEW}\n")
    os.utime(token_file, ns=(time.time_ns(), time.time_ns() + 20_000_000))
    for path in ("/", "/health", "/ready", "/docs", "/openapi.json"):
        assert c.call("GET", path)[0] == 200, path


@pytest.mark.slow
@pytest.mark.parametrize(("path", "body", "field"), [
    ("/search", {"text": "x", "k": 0}, "k"),
    ("/search", {"text": "x", "k": 51}, "k"),
    ("/search", {"text": "x" * 2001}, "text"),
    ("/search", {"text": "x", "vector": [0.1] * 384}, "body"),
    ("/search", {}, "body"),
    ("/search", {"text": "   "}, "body"),
    ("/search", {"vector": [0.1, 0.2]}, "vector"),
    ("/search", {"text": "x", "filters": {"channels": ["fax"]}}, "channels"),
    ("/search", {"text": "x", "filters": {"date_from": "2026-02-01", "date_to": "2026-01-01"}},
     "filters"),
    ("/search", {"text": "x", "colour": "red"}, "colour"),
    ("/classify", {"texts": []}, "texts"),
    ("/classify", {"texts": ["a"] * 9}, "texts"),
    ("/classify", {"text": "a", "texts": ["b"]}, "body"),
])
def test_validation_errors_are_json_422(served, path, body, field):
    status, err, _ = served["client"].call("POST", path, body, token=TOKEN_OLD)
    assert status == 422, err
    assert err["error"] == "validation_error" and err["detail"]
    locs = [".".join(str(p) for p in d["loc"]) for d in err["detail"]]
    assert any(field in loc for loc in locs) or field == "body", locs
    assert "Traceback" not in json.dumps(err)


@pytest.mark.slow
def test_bad_json_large_bodies_and_cors(served):
    c = served["client"]
    status, err, _ = c.call("POST", "/search", raw=b'{"text": ', token=TOKEN_OLD)
    assert status == 422 and err["error"] == "validation_error"
    status, err, _ = c.call("POST", "/classify", raw=b'{"text": "' + b"a" * 70_000 + b'"}',
                            token=TOKEN_OLD)
    assert status == 413 and err["error"] == "body_too_large"
    status, _, headers = c.call("OPTIONS", "/search", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert not any(k.lower() == "access-control-allow-origin" for k in headers)
    status, body, headers = c.call("GET", "/", headers={"Origin": "https://evil.example"})
    assert status == 200 and not any(k.lower().startswith("access-control") for k in headers)


@pytest.mark.slow
def test_store_switch_during_concurrent_queries_loses_nothing(served):
    c, store, df, vectors = served["client"], served["store"], served["df"], served["vectors"]
    start_version = store.version
    probe = [float(x) for x in vectors[7]]
    results: list[tuple[int, int, int]] = []  # (thread, status, store_version)
    stop = threading.Event()

    def loop(tid: int) -> None:
        n = 0
        while not stop.is_set():
            body = ({"vector": probe, "k": 5} if n % 2 else
                    {"text": "I want to see the data you hold on me", "k": 5})
            status, out, _ = c.call("POST", "/search", body, token=TOKEN_NEW)
            results.append((tid, status, out.get("store_version", -1)
                            if isinstance(out, dict) else -1))
            n += 1

    threads = [threading.Thread(target=loop, args=(t,), daemon=True) for t in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    # 1) new conversations, switched through the reload endpoint
    added = pd.DataFrame([dict(df.iloc[7], conversation_id="new-conv-1", channel="social")])
    store.upsert(added, vectors=[vectors[7]])
    v_added = store.commit()
    status, out, _ = c.call("POST", "/admin/reload", token=TOKEN_OLD)
    # "changed" is false when the 0.5 s poll picked the new version up first; either way the
    # reload answers with the committed version
    assert status == 200 and out["store_version"] == v_added
    status, out, _ = c.call("POST", "/search", {"vector": probe, "k": 5}, token=TOKEN_OLD)
    assert "new-conv-1" in {h["conversation_id"] for h in out["hits"]}
    time.sleep(0.5)
    # 2) an erasure, picked up by polling alone
    user = df["user_id"].iloc[7]
    store.erase_user(user)
    v_erased = store.version
    deadline = time.monotonic() + 30
    while c.call("GET", "/")[1]["store"]["store_version"] != v_erased:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    statuses = [s for _, s, _ in results]
    assert len(results) > 20 and statuses.count(200) == len(results), set(statuses)
    for tid in range(4):
        seen = [v for t, _, v in results if t == tid]
        assert seen == sorted(seen), f"thread {tid} went back in versions: {seen}"
    assert {start_version, v_erased} <= {v for _, _, v in results}
    status, out, _ = c.call("POST", "/search", {"vector": probe, "k": 50}, token=TOKEN_OLD)
    erased_ids = set(df.loc[df["user_id"] == user, "conversation_id"]) | {"new-conv-1"}
    assert status == 200 and not erased_ids & {h["conversation_id"] for h in out["hits"]}
    assert c.call("GET", "/ready")[0] == 200


@pytest.mark.slow
def test_request_metrics_reach_rays_metrics_endpoint(served):
    import ray

    node = ray._private.worker.global_worker.node
    port = getattr(node, "metrics_export_port", None)
    if not port:
        pytest.skip("this Ray exports no metrics endpoint")
    c = served["client"]
    c.call("POST", "/search", {"text": "delete me", "k": 1}, token=TOKEN_OLD)
    c.call("POST", "/search", {"text": "delete me", "k": 0}, token=TOKEN_OLD)
    wanted = ("ray_privacy_ray_http_requests_total{", "ray_privacy_ray_http_errors_total{",
              "ray_privacy_ray_http_request_duration_ms_bucket{")
    deadline = time.monotonic() + 40
    text = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            text = ""
        errors = [ln for ln in text.splitlines() if ln.startswith(wanted[1])
                  and 'endpoint="/search"' in ln and 'status="422"' in ln]
        if all(w in text for w in wanted) and errors:
            break
        time.sleep(2)
    else:
        pytest.fail(f"metrics not exported: {[w for w in wanted if w not in text]}")
    assert float(errors[0].rsplit(" ", 1)[1]) >= 1
    assert "_total_total" not in text


# --------------------------------------------------------------------------- CLI


def test_serve_cli_help_and_missing_store(tmp_path):
    from typer.testing import CliRunner

    from privacy_ray.cli import app

    res = CliRunner().invoke(app, ["serve", "--help"])
    assert res.exit_code == 0 and "Examples:" in res.output
    proc = subprocess.run([sys.executable, "-m", "privacy_ray", "serve", "--store",
                           str(tmp_path / "missing")], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert proc.returncode == 2 and "no vector store" in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_serve_cli_starts_prints_the_url_and_stops_on_ctrl_c(served, tiny_model_dir, tmp_path):
    """``privacy-ray serve`` on its own embedded one-CPU Ray (beside the session's)."""
    import signal

    store_copy = tmp_path / "store"
    shutil.copytree(served["store"].uri, store_copy)
    port = _free_port()
    env = dict(os.environ, PRIVACY_RAY_RUNTIME__RAY_NUM_CPUS="1", RAY_USAGE_STATS_ENABLED="0")
    for var in ("RAY_ADDRESS", "PRIVACY_RAY_API_TOKENS", "PRIVACY_RAY_API_TOKENS_FILE"):
        env.pop(var, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "privacy_ray", "serve", "--store", str(store_copy), "--port",
         str(port), "--model", str(tiny_model_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
            lines.append(line)
            if line.startswith("API token"):
                break
        assert any(f"http://127.0.0.1:{port}" in ln for ln in lines), lines
        token = lines[-1].rsplit(" ", 1)[-1].strip()
        c = Client(f"http://127.0.0.1:{port}")
        assert c.call("GET", "/health")[0] == 200
        status, body, _ = c.call("POST", "/search", {"text": "close my account", "k": 2},
                                 token=token)
        assert status == 200 and len(body["hits"]) == 2
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
