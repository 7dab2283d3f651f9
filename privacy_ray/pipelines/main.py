"""The privacy-intent pipeline: source -> stages from config -> sink, on Ray Data.

``build_stages`` turns the configured stage names into stage objects and checks their wiring
before anything runs; ``run_pipeline`` streams the data through them and writes a
self-describing run folder. The result reconciles ``input = output + quarantined``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from privacy_ray.config import ResolvedConfig, Settings, dump_yaml
from privacy_ray.errors import ConfigError, ReconciliationError
from privacy_ray.runs import RunFolder
from privacy_ray.sources import MESSAGE_COLUMNS, SourceInfo
from privacy_ray.stages.base import Stage, StageStats, check_wiring

log = logging.getLogger(__name__)
MODEL_STAGES = ("embed", "classify")


def stage_names() -> dict[str, str]:
    """Every stage the main pipeline knows, with a one-line description."""
    return {
        "validate_raw": "row-level checks: ids, text bounds, timestamps, channel, label, dups",
        "normalize": "Unicode NFC, control characters, whitespace",
        "features": "25+ handcrafted features (f_* columns) on the original text",
        "redact": "replace PII by typed placeholders before anything is embedded or stored",
        "embed": "584-d vector: MiniLM 384 + TF-IDF-SVD 200 (actor pool)",
        "validate_derived": "feature ranges, finiteness, embedding dimension and norms",
        "classify": "label, probabilities, abstain, regulation, due date (actor pool)",
    }


def build_stages(
    settings: Settings,
    bundle: Any = None,
    gx: tuple[Any, Any] = (None, None),
) -> list[Stage]:
    """Stage objects for ``settings.pipeline.stages``; ``bundle`` feeds the model stages and
    ``gx`` holds the raw and derived Great Expectations validators (or None)."""
    from privacy_ray.engine import actor_threads
    from privacy_ray.stages.model import Classify, Embed
    from privacy_ray.stages.quality import ValidateDerived
    from privacy_ray.stages.text import Features, Normalize, Redact
    from privacy_ray.stages.validate import ValidateRaw

    p = settings.pipeline
    factories: dict[str, Callable[[], Stage]] = {
        "validate_raw": lambda: ValidateRaw(p.max_text_chars, gx[0]),
        "normalize": Normalize,
        "features": Features,
        "redact": lambda: Redact(settings.redaction.engine, p.keep_original_text),
        "embed": lambda: Embed(
            settings.embedding, bundle, actor_threads(settings.resources_for("embed"))
        ),
        "validate_derived": lambda: ValidateDerived(
            gx[1], settings.quality.embedding_dim if "embed" in p.stages else None
        ),
        "classify": lambda: Classify(settings.classifier, bundle),
    }
    unknown = [s for s in p.stages if s not in factories]
    if unknown:
        msg = (
            f"unknown stage(s) {', '.join(unknown)} in pipeline.stages; known stages: "
            f"{', '.join(factories)}"
        )
        raise ConfigError(msg)
    if "redact" in p.stages and any(
        s in p.stages[: p.stages.index("redact")] for s in ("embed", "classify")
    ):
        msg = "pipeline.stages must redact PII before embed and classify; move redact earlier"
        raise ConfigError(msg)
    stages = [factories[name]() for name in p.stages]
    problems = check_wiring(stages, MESSAGE_COLUMNS + ("label",))
    if problems:
        raise ConfigError(problems[0])
    return stages


@dataclass
class RunResult:
    """What a run produced; ``to_summary`` is what ``--json`` prints."""

    run_id: str
    run_dir: str
    rows_in: int
    rows_out: int
    rows_quarantined: int
    seconds: float
    stages: dict[str, StageStats]
    counts: dict[str, Any]
    source: SourceInfo
    ray: dict[str, Any]
    complete: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def records_per_second(self) -> float:
        return self.rows_in / self.seconds if self.seconds > 0 else 0.0

    def to_summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "run_dir": self.run_dir,
            "complete": self.complete,
            "records_in": self.rows_in,
            "records_out": self.rows_out,
            "records_quarantined": self.rows_quarantined,
            "reconciled": self.rows_in == self.rows_out + self.rows_quarantined,
            "records_per_second": round(self.records_per_second, 1),
            "seconds": round(self.seconds, 2),
            "stage_seconds": {k: round(v.seconds, 3) for k, v in self.stages.items()},
            "stage_span_seconds": {k: round(v.span_seconds, 3) for k, v in self.stages.items()},
            "quarantine_reasons": self.counts.get("quarantine_reasons", {}),
            "labels": self.counts.get("labels", {}),
            "abstained": self.counts.get("abstained", 0),
            "due_within_7d": self.counts.get("due_within_7d", 0),
            "outputs": {
                "messages": f"{self.run_dir}/messages",
                "quarantine": f"{self.run_dir}/quarantine",
            },
            "source": self.source.uri,
            "ray": self.ray,
            **self.extra,
        }


def _embedding_stats(stages: dict[str, StageStats]) -> dict[str, float]:
    sums = stages["embed"].sums if "embed" in stages else {}
    rows = sums.get("embedding_rows", 0)
    batches = sums.get("embedding_batches", 0)
    if not rows:
        return {}
    return {
        "rows": int(rows),
        "non_finite": int(sums.get("embedding_non_finite", 0)),
        "zero_norm": int(sums.get("embedding_zero_norm", 0)),
        "mean_norm": round(sums.get("embedding_norm_sum", 0) / rows, 4),
        "mean_pairwise_cosine": round(sums.get("embedding_cosine_sum", 0) / batches, 4),
    }


def _validators(settings: Settings) -> tuple[Any, Any]:
    """The GX validators of the raw and derived layers (None when quality is off)."""
    q = settings.quality
    if not q.enabled:
        return None, None
    from privacy_ray.quality.gx_suites import GxBatchValidator
    from privacy_ray.text import catalogue_records

    if "embed" not in settings.pipeline.stages:
        q = q.model_copy(update={"embedding_dim": None})
    return (
        GxBatchValidator.raw(q, settings.pipeline.max_text_chars),
        GxBatchValidator.derived(catalogue_records(), q),
    )


def run_pipeline(
    resolved: ResolvedConfig,
    input_path: str | None = None,
    address: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> RunResult:
    """Run the main pipeline end to end and write the run folder.

    Raises :class:`ReconciliationError` when rows were lost and :class:`QualityGateError` when
    a blocking quality check failed; the run folder is then marked ``_INCOMPLETE``. OpenLineage
    START and COMPLETE / FAIL events go to the configured transport either way.
    """
    from privacy_ray.engine import check_fits, init_ray
    from privacy_ray.lineage import LineageEmitter, input_dataset
    from privacy_ray.sources import check_input, file_source, synthetic_source

    settings = resolved.settings
    say = progress or (lambda _msg: None)
    if input_path:
        check_input(input_path, settings.input)  # fail fast, before a model is loaded
    bundle = None
    if any(s in settings.pipeline.stages for s in MODEL_STAGES):
        from privacy_ray.model.training import load_default

        bundle = load_default(settings, progress=say)
    gx = _validators(settings)
    planned = build_stages(settings, bundle, gx)  # fail on wiring problems before Ray starts
    ray_info = init_ray(settings.runtime, address)
    if ray_info["mode"] == "embedded":  # a cluster may add nodes; this one cannot
        import ray

        check_fits(planned, settings.resources_for, ray.cluster_resources().get("CPU", 0.0))
    started = time.perf_counter()
    read = settings.resources_for("read")
    if input_path:
        ds, source = file_source(input_path, settings.input, read.num_cpus)
    else:
        ds, source = synthetic_source(
            settings.pipeline.n_messages,
            settings.pipeline.seed,
            settings.generator.generator_kwargs(),
            chunk_rows=read.batch_size,
            num_cpus=read.num_cpus,
        )
    folder = RunFolder.create(settings.pipeline.output_dir)
    folder.write_text("config.yaml", dump_yaml(settings))
    folder.write_json("config_sources.json", resolved.sources)
    _write_catalogue(folder)
    say(f"run {folder.run_id}: reading {source.uri}")
    lineage = LineageEmitter(settings.lineage, folder.uri)
    lineage.start(
        folder.run_id,
        inputs=[input_dataset(source.uri)],
        run_dir=folder.uri,
        description="privacy-intent pipeline: validate, featurize, redact, embed, classify",
    )
    try:
        result = _execute(settings, ds, source, folder, bundle, gx, ray_info, started)
    except BaseException as e:
        folder.mark(complete=False)
        lineage.fail(e)
        lineage.close()
        raise
    lineage.complete(**_lineage_datasets(result, settings))
    result.extra["lineage"] = lineage.stats()
    lineage.close()
    folder.write_json("summary.json", result.to_summary())
    return result


def _execute(
    settings: Settings,
    ds: Any,
    source: SourceInfo,
    folder: RunFolder,
    bundle: Any,
    gx: tuple[Any, Any],
    ray_info: dict[str, Any],
    started: float,
) -> RunResult:
    """Stream the stages, then reconcile counts and run the quality gates."""
    import ray

    from privacy_ray.engine import (
        StatsSink,
        apply,
        collect_stats,
        pipeline_stats,
        stats_document,
    )
    from privacy_ray.pipelines.sink import combine_counts, write_batch

    bundle_ref = ray.put(bundle) if bundle is not None else None
    stages = build_stages(settings, bundle_ref, gx)
    stats_sink = StatsSink(pipeline_stats("main"), folder.run_id)
    ds = apply(ds, stages, settings.resources_for, stats_sink,
               source=settings.resources_for("read"))
    ds = ds.map_batches(
        write_batch,
        batch_format="pandas",
        batch_size=settings.resources_for("write").batch_size,
        num_cpus=settings.resources_for("write").num_cpus,
        fn_kwargs={
            "run_uri": folder.uri,
            "partition_by_date": settings.pipeline.partition_by_date,
            "keep_original_text": settings.pipeline.keep_original_text,
        },
    )
    try:
        count_rows = ds.take_all()
    except BaseException:
        stats_sink.discard()
        raise
    seconds = time.perf_counter() - started
    counts = combine_counts(count_rows)
    written = counts["rows_out"] + counts["rows_quarantined"]
    stage_stats, nodes = collect_stats(stats_sink, [s.name for s in stages], written)
    ordered = {s.name: stage_stats.get(s.name, StageStats()) for s in stages}
    first = ordered[stages[0].name] if stages else StageStats()
    rows_in = first.rows_in if stages else written
    result = RunResult(
        run_id=folder.run_id,
        run_dir=folder.uri,
        rows_in=rows_in,
        rows_out=counts["rows_out"],
        rows_quarantined=counts["rows_quarantined"],
        seconds=seconds,
        stages=ordered,
        counts=counts,
        source=source,
        ray=ray_info,
    )
    emb = _embedding_stats(ordered)
    if emb:
        result.extra["embedding_quality"] = emb
    folder.write_json("stats.json",
                      stats_document(ordered, nodes, ray_data_stats=_safe_stats(ds)))
    reconciled = rows_in == result.rows_out + result.rows_quarantined and (
        source.expected_rows is None or source.expected_rows == rows_in
    )
    if not reconciled:
        result.complete = False
        folder.write_json("summary.json", result.to_summary())
        msg = (
            f"run {folder.run_id} lost rows: input {rows_in} (expected "
            f"{source.expected_rows}) != output {result.rows_out} + quarantined "
            f"{result.rows_quarantined}; outputs in {folder.uri} are marked incomplete"
        )
        raise ReconciliationError(msg)
    gate_error = _assess_quality(settings, result, ordered, gx, folder)
    result.complete = gate_error is None
    folder.write_json("summary.json", result.to_summary())
    ray.get(stats_sink.actor.record_run.remote(result.to_summary()))
    if gate_error is not None:
        raise gate_error
    folder.mark(complete=True)
    return result


def _assess_quality(
    settings: Settings,
    result: RunResult,
    stages: dict[str, StageStats],
    gx: tuple[Any, Any],
    folder: RunFolder,
) -> Exception | None:
    """Run-level checks, score and report; returns the gate error of a failed run, if any."""
    if not settings.quality.enabled:
        return None
    from privacy_ray.quality.score import assess_run
    from privacy_ray.text import feature_names

    sums: dict[str, float] = {}
    for st in stages.values():
        for key, value in st.sums.items():
            if key.startswith("gx."):
                sums[key] = sums.get(key, 0.0) + value
    specs = [v.spec for v in gx if v is not None]
    names = feature_names() if "features" in settings.pipeline.stages else []
    assessment = assess_run(
        result.to_summary(), sums, specs, settings.quality, folder, feature_names=names
    )
    result.extra.update(assessment.summary())
    result.extra["_expectations"] = assessment.expectations
    return assessment.error(result.run_id, result.run_dir)


def _lineage_datasets(result: RunResult, settings: Settings) -> dict[str, list[Any]]:
    """Input and output datasets with the facets an auditor needs (schema, counts, checks)."""
    from privacy_ray.lineage import (
        assertions_from_expectations,
        input_dataset,
        message_column_lineage,
        null_counts_from_expectations,
        output_dataset,
        quarantine_column_lineage,
    )
    from privacy_ray.text import feature_names

    expectations = result.extra.pop("_expectations", [])
    messages = f"{result.run_dir}/messages"
    quarantine = f"{result.run_dir}/quarantine"
    inputs = [
        input_dataset(
            result.source.uri,
            list(MESSAGE_COLUMNS) + ["label"],
            row_count=result.rows_in,
            null_counts=null_counts_from_expectations(expectations) if expectations else None,
            assertions=assertions_from_expectations(expectations) if expectations else None,
        )
    ]
    features = feature_names() if "features" in settings.pipeline.stages else []
    outputs = [
        output_dataset(
            messages,
            row_count=result.rows_out,
            column_lineage=message_column_lineage(result.source.uri, features),
        ),
        output_dataset(
            quarantine,
            row_count=result.rows_quarantined,
            column_lineage=quarantine_column_lineage(
                result.source.uri, [*MESSAGE_COLUMNS, "label", "quarantine_reason"]
            ),
        ),
    ]
    return {"inputs": inputs, "outputs": outputs}


def _safe_stats(ds: Any) -> str:
    try:
        return ds.stats()
    except Exception:  # stats are informative only
        return ""


def _write_catalogue(folder: RunFolder) -> None:
    from privacy_ray.text import catalogue_records

    folder.write_json("features.json", catalogue_records())


def summary_table(summary: dict[str, Any]) -> str:
    """A short human summary of a run."""
    lines = [
        f"run {summary['run_id']}  {'complete' if summary['complete'] else 'INCOMPLETE'}",
        f"  records in {summary['records_in']}  out {summary['records_out']}  "
        f"quarantined {summary['records_quarantined']}  "
        f"({summary['records_per_second']} records/s, {summary['seconds']} s)",
    ]
    if summary.get("quarantine_reasons"):
        reasons = ", ".join(f"{k} {v}" for k, v in summary["quarantine_reasons"].items())
        lines.append(f"  quarantine reasons: {reasons}")
    if summary.get("labels"):
        labels = ", ".join(
            f"{k} {v}" for k, v in sorted(summary["labels"].items(), key=lambda kv: -kv[1])
        )
        lines.append(f"  labels: {labels}  (abstained {summary.get('abstained', 0)})")
    lines.append(
        "  stage seconds: " + ", ".join(f"{k} {v}" for k, v in summary["stage_seconds"].items())
    )
    lines.append(f"  outputs: {summary['outputs']['messages']}")
    lines.append(f"  quarantine: {summary['outputs']['quarantine']}")
    return "\n".join(lines)


def summary_json(result: RunResult) -> str:
    return json.dumps(result.to_summary(), sort_keys=True, default=str)
