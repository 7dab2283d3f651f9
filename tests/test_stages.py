"""Stage plumbing and raw / derived validation on hand-made batches, without Ray."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from privacy_ray.stages.base import (
    QUARANTINE_COLUMN,
    Stage,
    add_reason,
    apply_stage,
    check_wiring,
    quarantined_mask,
)
from privacy_ray.stages.quality import validate_derived_batch
from privacy_ray.stages.validate import validate_raw_batch

NOW = pd.Timestamp("2026-06-01", tz="UTC")


def raw(**overrides) -> dict:
    row = {
        "message_id": "m1",
        "conversation_id": "c1",
        "user_id": "u1",
        "channel": "chat",
        "timestamp": "2026-05-01T10:00:00Z",
        "text": "please delete my data",
        "label": None,
    }
    row.update(overrides)
    return row


def reasons(df: pd.DataFrame) -> list:
    return [r if isinstance(r, str) else None for r in df[QUARANTINE_COLUMN]]


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"text": None}, "text_null"),
        ({"text": ""}, "text_empty"),
        ({"text": "   \n\t"}, "text_empty"),
        ({"text": 12345}, "text_not_string"),
        ({"text": b"\xff\xfe bad"}, "text_invalid_utf8"),
        ({"text": "x" * 101}, "text_too_long"),
        ({"timestamp": "not a date"}, "timestamp_unparseable"),
        ({"timestamp": "2030-01-01T00:00:00Z"}, "timestamp_future"),
        ({"timestamp": "1970-01-01T00:00:00Z"}, "timestamp_too_old"),
        ({"channel": "fax"}, "channel_unknown"),
        ({"label": "spam"}, "label_unknown"),
        ({"message_id": None}, "message_id_null"),
    ],
)
def test_raw_validation_reason_codes(override, reason):
    df = pd.DataFrame([raw(), raw(**{"message_id": "m2", **override})])
    out = validate_raw_batch(df, max_text_chars=100, now=NOW)
    assert reasons(out) == [None, reason]


def test_raw_validation_keeps_good_rows_typed():
    df = pd.DataFrame(
        [raw(), raw(message_id=7, text=b"caf\xc3\xa9 data", label="none", timestamp=None)]
    )
    out = validate_raw_batch(df, max_text_chars=100, now=NOW)
    assert reasons(out) == [None, None]
    assert out.loc[1, "message_id"] == "7" and out.loc[1, "text"] == "café data"
    assert str(out["timestamp"].dtype) == "datetime64[ns, UTC]" or "UTC" in str(
        out["timestamp"].dtype
    )


def test_duplicate_ids_and_several_reasons():
    df = pd.DataFrame([raw(), raw(text=None, channel="fax")])
    out = validate_raw_batch(df, max_text_chars=100, now=NOW)
    assert reasons(out)[1].split(";") == ["text_null", "channel_unknown", "duplicate_message_id"]


class Upper(Stage):
    name = "upper"
    inputs = ("text",)
    outputs = ("upper",)

    def process(self, batch):
        batch = batch.copy()
        batch["upper"] = batch["text"].str.upper()
        add_reason(batch, batch["text"] == "bad", "is_bad")
        return batch


class Dropper(Stage):
    name = "dropper"

    def process(self, batch):
        return batch.iloc[:-1]


def test_apply_stage_skips_quarantined_rows_and_counts():
    batch = pd.DataFrame({"text": ["a", "bad", "c"], QUARANTINE_COLUMN: [None, None, "earlier"]})
    out, stats = apply_stage(Upper(), batch)
    assert len(out) == 3
    assert (stats.rows_in, stats.rows_out, stats.quarantined) == (3, 3, 1)
    assert quarantined_mask(out).sum() == 2
    passed = out[out["text"] == "c"].iloc[0]
    assert passed[QUARANTINE_COLUMN] == "earlier" and pd.isna(passed["upper"])


def test_apply_stage_refuses_to_lose_rows():
    with pytest.raises(RuntimeError, match="rows were lost"):
        apply_stage(Dropper(), pd.DataFrame({"text": ["a", "b"]}))


def test_check_wiring_reports_missing_columns():
    class NeedsUpper(Stage):
        name = "needs_upper"
        inputs = ("upper",)

    assert check_wiring([Upper(), NeedsUpper()], ["text"]) == []
    problems = check_wiring([NeedsUpper(), Upper()], ["text"])
    assert len(problems) == 1 and "needs_upper" in problems[0] and "upper" in problems[0]


def test_derived_validation():
    good = np.ones(584, dtype=np.float32) / np.sqrt(292)
    rows = pd.DataFrame(
        {
            "f_chars": [10.0, np.inf, 3.0, 4.0, 5.0],
            "embedding": [good, good, np.ones(10, dtype=np.float32), good * np.nan, good * 10],
        }
    )
    out = validate_derived_batch(rows)
    assert reasons(out) == [
        None,
        "feature_non_finite",
        "embedding_wrong_dim",
        "embedding_non_finite",
        "embedding_norm_out_of_bounds",
    ]


def test_quarantined_rows_keep_raw_values_and_typed_columns_stay_typed():
    import json

    from privacy_ray.stages.base import RECORD_COLUMN
    from privacy_ray.stages.validate import ValidateRaw

    df = pd.DataFrame([raw(), raw(message_id="m2", timestamp="yesterday-ish")])
    out, stats = apply_stage(ValidateRaw(100), df)
    assert stats.quarantined == 1
    bad = out[quarantined_mask(out)].iloc[0]
    assert json.loads(bad[RECORD_COLUMN])["timestamp"] == "yesterday-ish"
    out2, _ = apply_stage(Upper(), out)  # passes the bad row through a later stage
    assert "UTC" in str(out2["timestamp"].dtype)
    import pyarrow as pa

    pa.Table.from_pandas(out2)  # one type per column: Arrow accepts the batch


def test_consecutive_task_stages_with_equal_resources_form_one_chain():
    from privacy_ray.config import Settings
    from privacy_ray.engine import chains
    from privacy_ray.stages.base import Stage

    def stage(name: str, stateful: bool = False) -> Stage:
        return type(name, (Stage,), {"name": name, "stateful": stateful})()

    settings = Settings()
    stages = [stage("validate_raw"), stage("normalize"), stage("features"), stage("redact"),
              stage("embed", stateful=True), stage("validate_derived"),
              stage("classify", stateful=True)]
    names = [[s.name for s in c] for c in chains(stages, settings.resources_for)]
    assert names == [["validate_raw", "normalize", "features", "redact"], ["embed"],
                     ["validate_derived"], ["classify"]]
    # a different batch size (or CPU count) breaks the chain where it changes
    settings.pipeline.resources["features"] = settings.resources_for("features").model_copy(
        update={"batch_size": 512})
    names = [[s.name for s in c] for c in chains(stages[:4], settings.resources_for)]
    assert names == [["validate_raw", "normalize"], ["features"], ["redact"]]


def test_run_stats_are_taken_once_every_stage_has_counted_every_row():
    from privacy_ray.engine import PipelineStats
    from privacy_ray.stages.base import StageStats

    actor = PipelineStats("test")  # the actor's class, called directly
    actor.record("run-a", [("normalize", StageStats(rows_in=6, rows_out=6, batches=1)),
                           ("features", StageStats(rows_in=6, rows_out=6, batches=1))], "node-1")
    actor.record("run-b", [("normalize", StageStats(rows_in=9, rows_out=9, batches=1))])
    # run-a has 10 rows: one batch is still on its way
    assert actor.take("run-a", ["normalize", "features"], 10) is None
    actor.record("run-a", [("normalize", StageStats(rows_in=4, rows_out=4, quarantined=1)),
                           ("features", StageStats(rows_in=4, rows_out=4))], "node-2")
    stats, nodes = actor.take("run-a", ["normalize", "features"], 10)
    assert stats["normalize"].rows_in == 10 and stats["normalize"].quarantined == 1
    assert nodes == {"normalize": ["node-1", "node-2"], "features": ["node-1", "node-2"]}
    # taken runs are forgotten; other runs are untouched; None takes what has arrived
    assert actor.take("run-a", ["normalize"], 10) is None
    assert actor.take("run-b", ["normalize", "features"], 9) is None
    stats, _ = actor.take("run-b", ["normalize", "features"], None)
    assert set(stats) == {"normalize"} and stats["normalize"].rows_in == 9


def test_stats_actor_forgets_the_oldest_runs_nobody_took():
    from privacy_ray.engine import PipelineStats
    from privacy_ray.stages.base import StageStats

    actor = PipelineStats("test")
    for i in range(PipelineStats.MAX_OPEN_RUNS + 3):  # drivers that died before taking
        actor.record(f"run-{i}", [("normalize", StageStats(rows_in=1))], "node-1")
    assert len(actor._runs) == len(actor._nodes) == PipelineStats.MAX_OPEN_RUNS
    assert actor.take("run-0", ["normalize"], None) == ({}, {})  # the oldest went first
    last = f"run-{PipelineStats.MAX_OPEN_RUNS + 2}"
    assert actor.take(last, ["normalize"], 1)[0]["normalize"].rows_in == 1


@pytest.mark.parametrize("reserve", [False, True])
def test_ray_data_operator_reservation_follows_the_config(reserve):
    import ray.data

    from privacy_ray.config import RuntimeConfig
    from privacy_ray.engine import configure_ray_data

    ctx = ray.data.DataContext.get_current()
    before = ctx.op_resource_reservation_enabled
    try:
        configure_ray_data(RuntimeConfig(ray_data_op_reservation=reserve))
        assert ctx.op_resource_reservation_enabled is reserve
        assert ctx.enable_progress_bars is False
    finally:
        ctx.op_resource_reservation_enabled = before


@pytest.mark.parametrize(("n", "chunk", "expected"),
                         [(20000, 2048, 2000), (5000, 2048, 1667), (4096, 2048, 2048),
                          (10, 2048, 10), (1, 2048, 1)])
def test_synthetic_chunks_come_out_even(n, chunk, expected):
    from privacy_ray.sources import even_chunk_rows

    rows = even_chunk_rows(n, chunk)
    assert rows == expected and rows <= chunk
    n_chunks = -(-n // rows)
    assert n_chunks == -(-n // chunk)  # as many chunks as before, the last one no runt
    assert n - (n_chunks - 1) * rows >= rows - n_chunks


def test_sink_table_has_one_chunk_and_string_columns_whatever_the_batch_dtypes():
    import pyarrow as pa

    from privacy_ray.pipelines.sink import _arrow_table

    arrow_text = pd.ArrowDtype(pa.large_string())  # as Ray Data's blocks convert to pandas
    parts = [pd.DataFrame({"text": pd.array(["a", None], dtype=arrow_text),
                           "channel": pd.Series(["chat", "email"], dtype="str"),
                           "note": [None, None],
                           "n": pd.array([1, 2], dtype=pd.ArrowDtype(pa.int64()))}),
             pd.DataFrame({"text": pd.array(["b", "c"], dtype=arrow_text),
                           "channel": pd.Series(["web", None], dtype="str"),
                           "note": ["x", None],
                           "n": pd.array([3, 4], dtype=pd.ArrowDtype(pa.int64()))})]
    table = _arrow_table(pd.concat(parts, ignore_index=True))
    assert table.schema.field("text").type == pa.string()
    assert table.schema.field("channel").type == pa.string()
    assert table.schema.field("note").type == pa.string()
    assert all(col.num_chunks == 1 for col in table.columns)
    assert table.to_pydict() == {"text": ["a", None, "b", "c"],
                                 "channel": ["chat", "email", "web", None],
                                 "note": [None, None, "x", None], "n": [1, 2, 3, 4]}
    only_nulls = _arrow_table(pd.DataFrame({"note": [None, None]}))
    assert only_nulls.schema.field("note").type == pa.string()


def test_actor_pools_must_leave_room_for_the_largest_task():
    from privacy_ray.config import Settings
    from privacy_ray.engine import check_fits
    from privacy_ray.errors import ConfigError
    from privacy_ray.stages.base import Stage

    def stage(name: str, stateful: bool = False) -> Stage:
        return type(name, (Stage,), {"name": name, "stateful": stateful})()

    stages = [stage("validate_raw"), stage("normalize"), stage("embed", stateful=True),
              stage("classify", stateful=True)]
    settings = Settings()
    check_fits(stages, settings.resources_for, cluster_cpus=2)  # the defaults fit 2 CPUs
    with pytest.raises(ConfigError, match=r"hold 1 CPUs \(embed: 2 x 0.375, classify: 1 x "
                       r"0.25\).*pipeline.resources.validate_raw.num_cpus asks for 1 more"):
        check_fits(stages, settings.resources_for, cluster_cpus=1.5)
    settings.pipeline.resources["embed"] = settings.resources_for("embed").model_copy(
        update={"min_actors": 3})
    with pytest.raises(ConfigError, match="embed: 3 x 0.375"):
        check_fits(stages, settings.resources_for, cluster_cpus=2)


def test_single_embed_actor_takes_every_core_of_a_single_node(ray_session):
    from privacy_ray.config import StageResources
    from privacy_ray.engine import actor_threads

    cores = int(ray_session.cluster_resources()["CPU"])
    assert actor_threads(StageResources(num_cpus=1)) == cores
    # a pool of several actors, or a GPU actor, keeps one thread per CPU it reserves
    assert actor_threads(StageResources(num_cpus=1, max_actors=2)) == 1
    assert actor_threads(StageResources(num_cpus=1, num_gpus=1)) == 1


def test_stage_span_covers_batches_on_parallel_workers():
    from privacy_ray.stages.base import StageStats

    total = StageStats()
    # two workers, batches overlapping in time: summed seconds 6, span 4
    total.add(StageStats(rows_in=10, batches=1, seconds=3.0, first_started=100.0,
                         last_ended=103.0))
    total.add(StageStats(rows_in=10, batches=1, seconds=3.0, first_started=101.0,
                         last_ended=104.0))
    assert total.seconds == 6.0 and total.span_seconds == 4.0
    assert StageStats().span_seconds == 0.0



class _PidStage(Stage):
    """An actor stage that tags each row with the process that handled it."""

    name = "pid"
    outputs = ("pid",)
    stateful = True

    def process(self, batch: pd.DataFrame) -> pd.DataFrame:
        import os

        return batch.assign(pid=os.getpid())


class _Double(Stage):
    name = "double"
    outputs = ("y",)

    def process(self, batch: pd.DataFrame) -> pd.DataFrame:
        return batch.assign(y=batch["x"] * 2)


def test_actor_pool_shares_one_large_block(ray_session):
    """An actor gets a whole block; blocks are cut to the pool's batch size so a pool of two
    shares even a dataset that arrives as one block. The cut runs inside the upstream task,
    whatever CPUs that task asks (a separate one-CPU task would never start on a cluster
    whose actor pools leave less than a CPU free)."""
    from privacy_ray.config import StageResources
    from privacy_ray.engine import apply

    resources = {"double": StageResources(num_cpus=0.1, batch_size=256),
                 "pid": StageResources(num_cpus=0.25, batch_size=8, min_actors=2, max_actors=2)}
    ds = ray_session.data.from_pandas(pd.DataFrame({"x": range(256)}))  # one block
    ds = apply(ds, [_Double(), _PidStage()], resources.__getitem__,
               source=StageResources(num_cpus=0.1)).materialize()
    assert "MapBatches(double)->StreamingRepartition" in ds.stats()
    out = ds.to_pandas()
    assert sorted(out["x"]) == list(range(256)) and (out["y"] == out["x"] * 2).all()
    assert out["pid"].nunique() == 2
