"""The daily conversations pipeline: validate -> flatten -> redact -> embed -> classify -> store.

Conversations (multi-turn records) are validated, flattened to one text with turn markers
(``store.flatten``: customer turns only, or every turn), redacted, embedded with MiniLM (the same
encoder as the main pipeline's embed stage) and given a conversation-level privacy intent: the
classifier runs over the customer turns alone, since the agent's replies ("I can help you delete
your account") would otherwise pull every conversation towards the customer's request labels.
The result is upserted into the sharded FAISS store by ``conversation_id``, so running the same
day twice replaces rather than duplicates.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from privacy_ray.config import CHANNELS, ResolvedConfig, Settings, dump_yaml
from privacy_ray.errors import InputError, ReconciliationError
from privacy_ray.runs import RunFolder, join
from privacy_ray.stages.base import (
    QUARANTINE_COLUMN,
    Stage,
    StageStats,
    add_reason,
    quarantined_mask,
)

CONVERSATION_COLUMNS = ("conversation_id", "user_id", "channel", "started_at", "turns")
STORE_COLUMNS = ("conversation_id", "user_id", "date", "channel", "intent", "confidence",
                 "snippet", "vector")
CONVERSATION_REASONS = {
    "conversation_id_null": "conversation_id is missing",
    "turns_missing": "turns is missing or not a list of {role, text}",
    "no_customer_turn": "no turn by the customer holds text",
    "started_at_unparseable": "started_at cannot be parsed",
    "started_at_future": "started_at lies in the future",
    "channel_unknown": "channel is not one of chat, email, ticket, social",
    "duplicate_conversation_id": "conversation_id already seen in this batch",
}


def _turns(value: Any) -> list[dict[str, Any]] | None:
    """Turns as a list of dicts, from a list, a NumPy array (Arrow) or a JSON string."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        return None
    return value


def flatten_turns(turns: list[dict[str, Any]], mode: str) -> str:
    """One text with turn markers: ``[customer] ...`` / ``[agent] ...`` per line."""
    lines = []
    for t in turns:
        role = str(t.get("role") or "customer")
        text = str(t.get("text") or "").strip()
        if not text or (mode == "customer_only" and role != "customer"):
            continue
        lines.append(f"[{role}] {text}")
    return "\n".join(lines)


def customer_text(turns: list[dict[str, Any]]) -> str:
    return "\n".join(str(t.get("text") or "").strip() for t in turns
                     if t.get("role") == "customer" and str(t.get("text") or "").strip())


class ValidateConversations(Stage):
    """Row-level checks of conversation records; bad rows go to quarantine with reasons."""

    name = "validate_conversations"
    inputs = ("conversation_id", "turns", "started_at", "channel")

    def process(self, batch: pd.DataFrame) -> pd.DataFrame:
        batch = batch.copy()
        add_reason(batch, batch["conversation_id"].isna(), "conversation_id_null")
        # plain lists: pandas would turn equal-length lists of turns into 2-D arrays
        turns = [_turns(v) for v in batch["turns"].tolist()]
        missing = pd.Series([t is None for t in turns], index=batch.index)
        add_reason(batch, missing, "turns_missing")
        no_customer = pd.Series([t is not None and not customer_text(t) for t in turns],
                                index=batch.index)
        add_reason(batch, no_customer, "no_customer_turn")
        started = pd.to_datetime(batch["started_at"], utc=True, errors="coerce", format="mixed")
        add_reason(batch, started.isna(), "started_at_unparseable")
        add_reason(batch, started > pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1),
                   "started_at_future")
        add_reason(batch, batch["channel"].notna() & ~batch["channel"].isin(CHANNELS),
                   "channel_unknown")
        dup = batch["conversation_id"].notna() & batch["conversation_id"].duplicated()
        add_reason(batch, dup, "duplicate_conversation_id")
        batch["turns"] = pd.Series([json.dumps(t, default=str) if t is not None else None
                                    for t in turns], index=batch.index, dtype=object)
        batch["started_at"] = started.astype("datetime64[ns, UTC]")
        return batch


class FlattenConversations(Stage):
    """``text`` (flattened, for the store) and ``customer_text`` (for the intent)."""

    name = "flatten"
    inputs = ("turns", "started_at")
    outputs = ("text", "customer_text", "date")

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def process(self, batch: pd.DataFrame) -> pd.DataFrame:
        batch = batch.copy()
        turns = [json.loads(t) for t in batch["turns"].tolist()]
        batch["text"] = [flatten_turns(t, self.mode) for t in turns]
        batch["customer_text"] = [customer_text(t) for t in turns]
        batch["date"] = pd.to_datetime(batch["started_at"], utc=True).dt.strftime("%Y-%m-%d")
        return batch


class EmbedAndClassifyConversations(Stage):
    """Redact, embed the flattened text (MiniLM 384-d, for the store) and classify the customer
    turns (584-d + features), in one actor that loads the model once."""

    name = "embed_classify"
    inputs = ("text", "customer_text")
    outputs = ("snippet", "vector", "intent", "confidence")
    stateful: ClassVar[bool] = True

    def __init__(self, settings: Settings, bundle: Any, threads: int = 1) -> None:
        self.settings = settings
        self._bundle_ref = bundle
        self.torch_threads = max(1, int(threads))
        self.encoder = None
        self.bundle = None

    def setup(self) -> None:
        from privacy_ray.model.embedder import SentenceEncoder
        from privacy_ray.stages.model import _resolve

        self.bundle = _resolve(self._bundle_ref)
        self.encoder = SentenceEncoder.from_config(self.settings.embedding,
                                                   torch_threads=self.torch_threads).load()

    def process(self, batch: pd.DataFrame) -> pd.DataFrame:
        from privacy_ray.model.classifier import predict_frame
        from privacy_ray.model.training import prepare_texts
        from privacy_ray.text import make_redactor, normalize_texts

        if self.encoder is None:
            self.setup()
        batch = batch.copy()
        redacted = make_redactor(self.settings.redaction.engine).redact_texts(
            normalize_texts(batch["text"].astype(str)))
        batch["snippet"] = redacted.to_numpy()
        batch["vector"] = list(self.encoder.encode(redacted.tolist()))
        feats, customer = prepare_texts(batch["customer_text"])
        emb = np.hstack([self.encoder.encode(customer.tolist()), self.bundle.project(customer)])
        preds = predict_frame(self.bundle, emb, feats, customer, batch["started_at"].reset_index(
            drop=True), self.settings.classifier)
        batch["intent"] = preds["label"].to_numpy()
        batch["confidence"] = preds["confidence"].to_numpy()
        batch["abstain"] = preds["abstain"].to_numpy()
        return batch.drop(columns=["customer_text"])


def conversation_source(settings: Settings, input_path: str | None, n: int, seed: int,
                        num_cpus: float):  # -> (Dataset, uri)
    """Generated conversations, or Parquet / JSON Lines files with the conversation columns."""
    import ray.data

    from privacy_ray.sources import detect_format, list_input_files, synthetic_source

    if input_path is None:
        ds, info = synthetic_source(n, seed, settings.generator.generator_kwargs(),
                                    chunk_rows=2000, num_cpus=num_cpus, kind="conversations")
        return ds.select_columns(list(CONVERSATION_COLUMNS)), info.uri
    fmt = detect_format(input_path, settings.input.format)
    files = list(list_input_files(input_path, fmt))
    if fmt == "parquet":
        ds = ray.data.read_parquet(files, num_cpus=num_cpus)
    elif fmt == "jsonl":
        ds = ray.data.read_json(files, lines=True, num_cpus=num_cpus)
    else:
        msg = f"conversations are read from Parquet or JSON Lines, not {fmt}; convert {input_path}"
        raise InputError(msg)
    missing = [c for c in ("conversation_id", "turns") if c not in ds.schema().names]
    if missing:
        msg = f"{input_path} has no column(s) {', '.join(missing)}; conversations need " \
              f"{', '.join(CONVERSATION_COLUMNS)}"
        raise InputError(msg)

    def conform(batch: pd.DataFrame) -> pd.DataFrame:
        for col in CONVERSATION_COLUMNS:
            if col not in batch.columns:
                batch[col] = None
        out = batch[list(CONVERSATION_COLUMNS)].copy()
        out["turns"] = out["turns"].map(
            lambda t: t if isinstance(t, str) else json.dumps(_turns(t), default=str))
        return out

    return ds.map_batches(conform, batch_format="pandas", num_cpus=num_cpus), input_path


def run_conversations(
    resolved: ResolvedConfig,
    store_path: str,
    input_path: str | None = None,
    day: str | None = None,
    n: int = 1000,
    seed: int = 42,
    address: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the daily conversations pipeline into the store at ``store_path``; returns a summary.

    ``day`` (YYYY-MM-DD) keeps only conversations started that day; others are counted as
    ``skipped_other_day``. Every input row ends upserted, quarantined or skipped.
    """
    import ray

    from privacy_ray.engine import (
        StatsSink,
        actor_threads,
        apply,
        collect_stats,
        init_ray,
        pipeline_stats,
        stats_document,
    )
    from privacy_ray.lineage import (
        LineageEmitter,
        input_dataset,
        output_dataset,
        vector_store_column_lineage,
    )
    from privacy_ray.model.embedder import model_fingerprint
    from privacy_ray.model.training import load_default
    from privacy_ray.store import StoreOptions
    from privacy_ray.store.ray_build import build_store_with_ray

    settings = resolved.settings
    say = progress or (lambda _m: None)
    if day is not None:
        try:
            pd.Timestamp(day)
        except ValueError as e:
            raise InputError(f"--date {day!r} is not a date; use YYYY-MM-DD") from e
    if input_path is not None:
        from privacy_ray.sources import detect_format, list_input_files

        list_input_files(input_path, detect_format(input_path, settings.input.format))
    bundle = load_default(settings, progress=say)
    ray_info = init_ray(settings.runtime, address)
    started = time.perf_counter()
    cpus = settings.resources_for("read").num_cpus
    ds, source_uri = conversation_source(settings, input_path, n, seed, cpus)
    folder = RunFolder.create(join(settings.pipeline.output_dir, "conversations"))
    folder.write_text("config.yaml", dump_yaml(settings))
    stats_sink = StatsSink(pipeline_stats("conversations"), folder.run_id)
    lineage = LineageEmitter(settings.lineage.model_copy(
        update={"job_name": "daily_conversations_pipeline"}), folder.uri)
    lineage.start(folder.run_id, inputs=[input_dataset(source_uri)], run_dir=folder.uri,
                  description="daily conversations pipeline into the sharded vector store")
    say(f"conversations run {folder.run_id}: reading {source_uri}")
    try:
        if day is not None:
            ds = ds.map_batches(_mark_other_day, batch_format="pandas", num_cpus=cpus,
                                fn_kwargs={"day": day})
        bundle_ref = ray.put(bundle)
        embed_res = settings.resources_for("embed")
        stages: list[Stage] = [
            ValidateConversations(),
            FlattenConversations(settings.store.flatten),
            EmbedAndClassifyConversations(settings, bundle_ref, actor_threads(embed_res)),
        ]
        text_res = settings.resources_for("normalize")
        resources = {s.name: embed_res if s.stateful else text_res for s in stages}
        ds = apply(ds, stages, resources.__getitem__, stats_sink,
                   source=settings.resources_for("read"))
        done = ds.materialize()
        stage_stats, nodes = collect_stats(stats_sink, [s.name for s in stages], done.count())
        folder.write_json("stats.json", stats_document(stage_stats, nodes))
        rows_in = stage_stats.get(stages[0].name, StageStats()).rows_in
        counts = _write_quarantine(done, folder)
        good = (done.map_batches(_only_good, batch_format="pandas", num_cpus=cpus)
                if counts["good"] else None)
        opts = StoreOptions.from_config(settings.store)
        store_summary: dict[str, Any] = {}
        if good is not None:
            store_summary = build_store_with_ray(
                good.select_columns(list(STORE_COLUMNS)), store_path,
                embedding_model=(settings.embedding.model,
                                 model_fingerprint(settings.embedding.model)),
                options=opts, actor_num_cpus=0.1, route_num_cpus=cpus)
        total = counts["good"] + counts["quarantined"] + counts["skipped"]
        summary = {
            "run_id": folder.run_id, "run_dir": folder.uri, "store": store_path,
            "records_in": rows_in, "upserted": counts["good"],
            "records_quarantined": counts["quarantined"],
            "skipped_other_day": counts["skipped"], "reconciled": rows_in == total,
            "quarantine_reasons": counts["reasons"], "intents": counts["intents"],
            "seconds": round(time.perf_counter() - started, 2),
            "store_version": store_summary.get("store_version"),
            "store_count": store_summary.get("count"), "ray": ray_info,
            "stage_seconds": {k: round(v.seconds, 3) for k, v in stage_stats.items()},
        }
        folder.write_json("summary.json", summary)
        if not summary["reconciled"]:
            raise ReconciliationError(
                f"conversations run {folder.run_id} lost rows: input {rows_in} != upserted "
                f"{counts['good']} + quarantined {counts['quarantined']} + skipped "
                f"{counts['skipped']}")
    except BaseException as e:
        stats_sink.discard()  # a no-op once collect_stats took them
        folder.mark(complete=False)
        lineage.fail(e)
        lineage.close()
        raise
    lineage.complete(outputs=[
        output_dataset(store_path, row_count=counts["good"],
                       column_lineage=vector_store_column_lineage(source_uri)),
        output_dataset(f"{folder.uri}/quarantine", row_count=counts["quarantined"])])
    lineage.close()
    folder.mark(complete=True)
    ray.get(stats_sink.actor.record_run.remote(summary))
    if store_summary.get("per_shard"):
        ray.get(stats_sink.actor.record_store.remote(
            store_path, {shard: e["count"] for shard, e in store_summary["per_shard"].items()}))
    return summary


def _mark_other_day(batch: pd.DataFrame, day: str) -> pd.DataFrame:
    started = pd.to_datetime(batch["started_at"], utc=True, errors="coerce", format="mixed")
    other = started.notna() & (started.dt.strftime("%Y-%m-%d") != day)
    batch = batch.copy()
    add_reason(batch, other, "skipped_other_day")
    return batch


def _only_good(batch: pd.DataFrame) -> pd.DataFrame:
    return batch.loc[~quarantined_mask(batch)]


def _write_quarantine(ds: Any, folder: RunFolder) -> dict[str, Any]:
    """Write quarantined rows (not skipped ones) and count good / quarantined / skipped."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from privacy_ray.text import make_redactor

    counts: dict[str, Any] = {"good": 0, "quarantined": 0, "skipped": 0, "reasons": {},
                              "intents": {}}
    redactor = make_redactor("regex")
    fs, root = folder.fs_path("quarantine")
    for i, batch in enumerate(ds.iter_batches(batch_format="pandas", batch_size=4096)):
        bad = quarantined_mask(batch)
        reasons = batch.loc[bad, QUARANTINE_COLUMN].astype(str)
        skipped = reasons == "skipped_other_day"
        counts["skipped"] += int(skipped.sum())
        counts["good"] += int((~bad).sum())
        for intent, c in batch.loc[~bad, "intent"].value_counts().items():
            counts["intents"][str(intent)] = counts["intents"].get(str(intent), 0) + int(c)
        quarantined = batch.loc[bad].loc[~skipped.to_numpy()]
        counts["quarantined"] += len(quarantined)
        for value in quarantined[QUARANTINE_COLUMN]:
            for code in str(value).split(";"):
                counts["reasons"][code] = counts["reasons"].get(code, 0) + 1
        if len(quarantined):
            cols = {c: quarantined[c].map(lambda v: None if v is None else str(v)).tolist()
                    for c in ("conversation_id", "channel", "started_at", QUARANTINE_COLUMN)
                    if c in quarantined.columns}
            turns = quarantined["turns"].fillna("").astype(str).str.slice(0, 2000)
            cols["turns"] = redactor.redact_texts(turns).tolist()
            fs.create_dir(root, recursive=True)
            with fs.open_output_stream(f"{root}/part-{i:05d}.parquet") as out:
                pq.write_table(pa.table(cols), out)
    return counts
