"""The Ray adapter: the only place that turns stages and their resources into Ray calls.

A stateless stage becomes a task (``map_batches`` with a callable object); a stage with state
(``Stage.stateful``) becomes an actor pool (``compute=ActorPoolStrategy(min_size, max_size)``)
whose ``setup()`` runs once per actor. Consecutive stateless stages with identical resources form
one chain run by one ``map_batches``: each batch is converted from Arrow to pandas and back once
for the chain, not once per stage (for the four text stages that cut the CPU spent outside the
stage functions by about half). Each wrapper is a class named after its stages, so the Ray
dashboard shows ``MapBatches(embed)`` or ``MapBatches(validate_raw+normalize+features+redact)``
rather than ``MapBatches(<lambda>)``. Per-batch counts and timings go to the pipeline's
long-lived stats actor, one call per batch and chain, sent without waiting for the reply.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from privacy_ray.config import RAY_SYSTEM_CONFIG
from privacy_ray.stages.base import Stage, StageStats, apply_stage

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import ray.data

    from privacy_ray.config import RuntimeConfig, StageResources

log = logging.getLogger(__name__)

def init_ray(runtime: RuntimeConfig, address: str | None = None) -> dict[str, Any]:
    """Connect to ``address`` (or ``runtime.ray_address`` / RAY_ADDRESS) or start a local Ray.

    Returns a small description (mode, address, dashboard URL) for the run summary.
    """
    import ray

    target = address or runtime.ray_address or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        ctx = ray.get_runtime_context()
        configure_ray_data(runtime)
        return {"mode": "existing", "address": ctx.gcs_address, "dashboard_url": None}
    kwargs: dict[str, Any] = {
        "logging_level": logging.WARNING,
        "log_to_driver": runtime.log_level == "DEBUG",
        "configure_logging": True,
    }
    if target:
        info = ray.init(address=target, **kwargs)
        mode = "cluster"
    else:
        if runtime.ray_num_cpus:
            kwargs["num_cpus"] = runtime.ray_num_cpus
        if runtime.ray_object_store_memory_mb:
            kwargs["object_store_memory"] = runtime.ray_object_store_memory_mb * 1024 * 1024
        if runtime.metrics_export_port:
            kwargs["_metrics_export_port"] = runtime.metrics_export_port
        kwargs["include_dashboard"] = False
        kwargs["_system_config"] = dict(RAY_SYSTEM_CONFIG)
        info = ray.init(**kwargs)
        mode = "embedded"
    dashboard = getattr(info, "dashboard_url", None) or None
    configure_ray_data(runtime)
    return {"mode": mode, "address": target or "local", "dashboard_url": dashboard}


def configure_ray_data(runtime: RuntimeConfig) -> None:
    """This process's Ray Data settings (they live in the driver, which plans and schedules)."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.op_resource_reservation_enabled = runtime.ray_data_op_reservation


class PipelineStats:
    """One long-lived actor per pipeline: its Prometheus metrics and each run's stage stats.

    Detached, so that the metrics outlive each run (a gauge vanishes from the node's endpoint
    when the process that set it exits) and a run starts no process of its own. Stage runners
    report every batch without waiting for the reply: a Ray task blocked in ``ray.get`` hands
    its CPU back, and Ray starts another task on it (three busy processes on two cores). The
    driver collects a run's stats once every stage has counted every row (:func:`collect_stats`).
    """

    #: Runs whose stats are kept until taken. A driver that dies mid-run never takes its run's
    #: stats, and reports can still arrive after a timed-out take: past this many runs the
    #: oldest are dropped, so the long-lived actor does not grow with every such run.
    MAX_OPEN_RUNS = 64

    def __init__(self, pipeline: str) -> None:
        self._pipeline = pipeline
        self._runs: dict[str, dict[str, StageStats]] = {}
        self._nodes: dict[str, dict[str, set[str]]] = {}

    def record(self, run_id: str, batch: list[tuple[str, StageStats]],
               node_id: str | None = None) -> None:
        """One batch's stats for each stage of a chain."""
        from privacy_ray import metrics

        if run_id not in self._runs:
            for stale in list(self._runs)[: max(0, len(self._runs) - self.MAX_OPEN_RUNS + 1)]:
                self._runs.pop(stale)
                self._nodes.pop(stale, None)
        stats = self._runs.setdefault(run_id, {})
        nodes = self._nodes.setdefault(run_id, {})
        for stage, st in batch:
            stats.setdefault(stage, StageStats()).add(st)
            if node_id:
                nodes.setdefault(stage, set()).add(node_id)
            metrics.record_stage_batch(self._pipeline, stage, st.rows_in, st.quarantined,
                                       st.seconds)

    def take(self, run_id: str, stages: list[str], rows: int | None
             ) -> tuple[dict[str, StageStats], dict[str, list[str]]] | None:
        """The run's stats and nodes per stage, once each of ``stages`` has counted ``rows``
        rows, and then forgotten; None while reports are still on their way. ``rows=None``
        takes whatever has arrived."""
        stats = self._runs.get(run_id, {})
        if rows is not None and any(stats.get(s, StageStats()).rows_in < rows for s in stages):
            return None
        self._runs.pop(run_id, None)
        nodes = self._nodes.pop(run_id, {})
        return stats, {stage: sorted(ids) for stage, ids in nodes.items()}

    def record_run(self, summary: dict[str, Any]) -> None:
        from privacy_ray import metrics

        metrics.record_run(self._pipeline, summary)

    def record_store(self, store: str, per_shard: dict[str, int]) -> None:
        from privacy_ray import metrics

        metrics.record_store(store, per_shard)


def pipeline_stats(pipeline: str):  # -> ActorHandle
    """The pipeline's :class:`PipelineStats` actor (created once, then found by name)."""
    import ray

    return ray.remote(num_cpus=0)(PipelineStats).options(
        name=f"privacy_ray_stats_{pipeline}", namespace="privacy_ray", lifetime="detached",
        get_if_exists=True).remote(pipeline)


@dataclass(frozen=True)
class StatsSink:
    """Where a run's stage runners report: the pipeline's stats actor and the run's id."""

    actor: Any
    run_id: str

    def report(self, batch: list[tuple[str, StageStats]]) -> None:
        import ray

        self.actor.record.remote(self.run_id, batch, ray.get_runtime_context().get_node_id())

    def discard(self) -> None:
        """Drop a failed run's partial stats from the long-lived actor."""
        self.actor.take.remote(self.run_id, [], None)


def stats_document(stages: dict[str, StageStats], nodes: dict[str, list[str]],
                   **extra: Any) -> dict[str, Any]:
    """A run's ``stats.json``: counts and timings per stage, the nodes each stage ran on."""
    from dataclasses import asdict

    return {"stages": {name: asdict(st) for name, st in stages.items()}, "nodes": nodes, **extra}


def collect_stats(sink: StatsSink, stages: Sequence[str], rows: int,
                  timeout_s: float = 30.0) -> tuple[dict[str, StageStats], dict[str, list[str]]]:
    """The run's stage stats once every stage has reported ``rows`` rows (each stage sees every
    row, quarantined ones included); after ``timeout_s`` whatever arrived, which then fails the
    run's reconciliation rather than hanging it."""
    import ray

    deadline = time.monotonic() + timeout_s
    while True:
        done = time.monotonic() >= deadline
        got = ray.get(sink.actor.take.remote(sink.run_id, list(stages), None if done else rows))
        if got is not None:
            return got
        time.sleep(0.01)


class _StageRunner:
    """Runs a chain of stages over a batch and reports their counts; subclassed per chain for
    naming."""

    def __init__(self, stages: tuple[Stage, ...], stats: StatsSink | None = None) -> None:
        self._stages = stages
        self._stats = stats
        self._ready = False

    def _ensure_setup(self) -> None:
        if not self._ready:
            for stage in self._stages:
                stage.setup()
            self._ready = True

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        self._ensure_setup()
        reports = []
        for stage in self._stages:
            batch, stats = apply_stage(stage, batch)
            reports.append((stage.name, stats))
        if self._stats is not None:
            self._stats.report(reports)
        return batch


class _ActorStageRunner(_StageRunner):
    """Actor-pool variant: loads the stage's state in the actor's constructor."""

    def __init__(self, stages: tuple[Stage, ...], stats: StatsSink | None = None) -> None:
        super().__init__(stages, stats)
        self._ensure_setup()


def _named(base: type, stages: tuple[Stage, ...]) -> type:
    name = "+".join(stage.name for stage in stages)
    return type(name, (base,), {"__module__": __name__, "__qualname__": name})


def chains(stages: Sequence[Stage],
           resources_for: Callable[[str], StageResources]) -> list[tuple[Stage, ...]]:
    """The stages in order, consecutive stateless ones with identical resources chained."""
    out: list[tuple[Stage, ...]] = []
    for stage in stages:
        prev = out[-1] if out else None
        if (prev is not None and not stage.stateful and not prev[-1].stateful
                and resources_for(stage.name) == resources_for(prev[-1].name)):
            out[-1] = (*prev, stage)
        else:
            out.append((stage,))
    return out


def actor_threads(resources: StageResources) -> int:
    """Intra-op threads for the embedding actor: its CPUs, at least one.

    On a single-node Ray with a one-actor pool it takes every core of the node instead: the
    other stages are light or brief next to the embedding, and a core left idle while the only
    embed actor works is lost throughput (on 2 cores, 2 threads gave 1.5x the records/s of 1).
    ``embedding.torch_threads`` overrides both.
    """
    import ray

    own = max(1, int(resources.num_cpus))
    if (resources.num_gpus or max(resources.max_actors, resources.min_actors) > 1
            or not ray.is_initialized()):
        return own
    alive = [n for n in ray.nodes() if n.get("Alive")]
    if len(alive) != 1:
        return own
    return max(own, int(alive[0].get("Resources", {}).get("CPU", own)))


def ray_remote_args(resources: StageResources) -> dict[str, Any]:
    """Per-task/actor resource arguments for ``map_batches``."""
    args: dict[str, Any] = {"num_cpus": resources.num_cpus}
    if resources.num_gpus:
        args["num_gpus"] = resources.num_gpus
    if resources.memory_mb:
        args["memory"] = resources.memory_mb * 1024 * 1024
    return args


def check_fits(stages: Sequence[Stage], resources_for: Callable[[str], StageResources],
               cluster_cpus: float) -> None:
    """Raise :class:`ConfigError` when the actor pools' minimum sizes leave too few CPUs for
    the largest task: the pools hold their CPUs for the whole run, so such a task would wait
    forever and the run would hang instead of failing.

    Only meaningful where the cluster cannot grow (the embedded Ray).
    """
    from privacy_ray.errors import ConfigError

    pools: dict[str, StageResources] = {}  # actor stage -> resources
    tasks: dict[str, float] = {}  # first stage of a task chain (and read, write) -> CPUs
    for chain in chains(stages, resources_for):
        res = resources_for(chain[0].name)
        if chain[0].stateful:
            pools[chain[0].name] = res
        else:
            tasks[chain[0].name] = res.num_cpus
    tasks.update({name: resources_for(name).num_cpus for name in ("read", "write")})
    held = sum(res.min_actors * res.num_cpus for res in pools.values())
    largest_stage = max(tasks, key=tasks.__getitem__)
    largest = tasks[largest_stage]
    if held + largest > cluster_cpus + 1e-9:
        actors = ", ".join(f"{name}: {res.min_actors} x {res.num_cpus:g}"
                           for name, res in pools.items())
        msg = (f"the actor pools hold {held:g} CPUs ({actors}) and "
               f"pipeline.resources.{largest_stage}.num_cpus asks for {largest:g} more, but "
               f"this Ray has {cluster_cpus:g}; lower those num_cpus (CPUs are shares: 0.25 "
               "is fine) or start Ray with more CPUs (runtime.ray_num_cpus)")
        raise ConfigError(msg)


def apply(
    ds: ray.data.Dataset,
    stages: Sequence[Stage],
    resources_for: Callable[[str], StageResources],
    stats: StatsSink | None = None,
    source: StageResources | None = None,
) -> ray.data.Dataset:
    """Append ``stages`` to ``ds``: each chain (:func:`chains`) as one task, an actor stage as an
    actor pool, per the resources ``resources_for(stage name)`` declares. ``source``: the
    resources of the tasks that made ``ds`` (if known, an actor stage first in ``stages`` gets
    its blocks cut in them too, see :func:`cut_blocks`)."""
    from ray.data import ActorPoolStrategy

    upstream = source  # resources of the task making the blocks; None: unknown or an actor
    for chain in chains(stages, resources_for):
        resources = resources_for(chain[0].name)
        common = {"batch_format": "pandas", "batch_size": resources.batch_size}
        common.update(ray_remote_args(resources))
        if chain[0].stateful:
            max_size = max(resources.max_actors, resources.min_actors)
            if upstream is not None:
                ds = cut_blocks(ds, resources.batch_size, upstream)
            ds = ds.map_batches(
                _named(_ActorStageRunner, chain),
                fn_constructor_kwargs={"stages": chain, "stats": stats},
                compute=ActorPoolStrategy(min_size=resources.min_actors, max_size=max_size),
                **common,
            )
        else:
            ds = ds.map_batches(_named(_StageRunner, chain)(chain, stats), **common)
        upstream = None if chain[0].stateful else resources
    return ds


def cut_blocks(ds: ray.data.Dataset, rows: int, upstream: StageResources) -> ray.data.Dataset:
    """``ds`` in blocks of at most ``rows`` rows, cut inside the task that made them.

    An actor takes a block whole, so an actor pool behind big blocks shares the work in big
    pieces: one actor sits idle while another works through the last block (cutting 2,048-row
    blocks to the embed batch of 256: the embed stage ran at 0.97 of bare encode at 20k messages,
    0.90 before). This is ``ds.repartition(target_num_rows_per_block=rows)`` with the
    upstream task's resources: the public call asks Ray's default one CPU, which after a stage
    with other resources keeps Ray Data from fusing the cut into that stage's task, and a
    separate one-CPU task never starts where the actor pools leave less than a CPU free.
    """
    from ray.data import Dataset
    from ray.data._internal.logical.interfaces import LogicalPlan
    from ray.data._internal.logical.operators.map_operator import StreamingRepartition

    op = StreamingRepartition(target_num_rows_per_block=rows,
                              input_dependencies=[ds._logical_plan.dag],
                              ray_remote_args=ray_remote_args(upstream))
    return Dataset._from_parent(ds, LogicalPlan(op, ds.context))
