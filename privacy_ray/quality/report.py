"""The run's quality report: ``quality_report.json`` for machines, ``quality_report.html`` for
people.

The HTML page is self-contained (inline CSS and SVG, no script, no external resource), so it
can be mailed or attached to an audit as one file. It shows the score and the run-level checks,
every expectation with its pass rate, the quarantine reasons with counts and a few redacted
examples, feature distributions as inline SVG histograms, and drift against the reference run.
Everything taken from the data is HTML-escaped; example texts are redacted again and cut short.

The JSON keeps a sample of each feature (``feature_samples``) so a later run can use this one
as its drift reference.
"""

from __future__ import annotations

import functools
import html
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from privacy_ray.quality import QualityConfig
    from privacy_ray.runs import RunFolder

REPORT_JSON = "quality_report.json"
REPORT_HTML = "quality_report.html"
REPORT_VERSION = 1
EXAMPLE_MAX_CHARS = 200
HIST_BINS = 20
#: Rows of the quarantine read at most when looking for examples.
EXAMPLE_SCAN_ROWS = 200_000


# --------------------------------------------------------------------------- data


def reason_descriptions() -> dict[str, str]:
    """What each quarantine reason code means (from the row-level stages)."""
    from privacy_ray.stages.quality import DERIVED_REASONS
    from privacy_ray.stages.validate import RAW_REASONS

    return {**RAW_REASONS, **DERIVED_REASONS}


@functools.cache
def _redactor() -> Any:
    from privacy_ray.text import make_redactor

    return make_redactor("regex")


def redact_example(text: Any, max_chars: int = EXAMPLE_MAX_CHARS) -> str:
    """An example text safe to show: PII replaced by placeholders, then cut to ``max_chars``."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ""
    # Redact before cutting (a cut could split a PII value so the pattern no longer sees it);
    # the bound only keeps pathological texts cheap and lies far beyond what is shown.
    redacted = _redactor().redact(str(text)[:20_000])
    return redacted if len(redacted) <= max_chars else redacted[: max_chars - 1] + "…"


def quarantine_examples_from_run(run_uri: str, per_reason: int = 3,
                                 max_chars: int = EXAMPLE_MAX_CHARS
                                 ) -> dict[str, list[dict[str, str]]]:
    """Up to ``per_reason`` redacted examples per reason code from a run's quarantine."""
    import pyarrow.dataset as pads

    from privacy_ray.runs import filesystem_for, join

    if per_reason <= 0:
        return {}
    fs, root = filesystem_for(run_uri)
    path = join(root, "quarantine")
    if fs.get_file_info(path).type.name != "Directory":
        return {}
    dataset = pads.dataset(path, filesystem=fs, format="parquet")
    columns = [c for c in ("message_id", "quarantine_reason", "text") if c in dataset.schema.names]
    if "quarantine_reason" not in columns:
        return {}
    examples: dict[str, list[dict[str, str]]] = {}
    scanned = 0
    for batch in dataset.to_batches(columns=columns):
        for row in batch.to_pylist():
            for code in str(row.get("quarantine_reason") or "").split(";"):
                code = code.split(":", 1)[0].strip()
                if code and len(examples.setdefault(code, [])) < per_reason:
                    examples[code].append({"message_id": str(row.get("message_id") or ""),
                                           "text": redact_example(row.get("text"), max_chars)})
        scanned += batch.num_rows
        if scanned >= EXAMPLE_SCAN_ROWS:
            break
    return examples


def feature_profile(values: Sequence[float], bins: int = HIST_BINS) -> dict[str, Any]:
    """Summary statistics and a histogram of one feature's sample."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if not len(arr):
        return {"count": 0}
    distinct = np.unique(arr)
    if len(distinct) <= bins:  # discrete: one bar per value
        edges = np.append(distinct, distinct[-1] + 1) if len(distinct) > 1 else np.array(
            [distinct[0] - 0.5, distinct[0] + 0.5])
        counts = [int((arr == v).sum()) for v in distinct]
        hist = {"values": [float(v) for v in distinct], "counts": counts}
    else:
        counts_np, edges = np.histogram(arr, bins=bins)
        hist = {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts_np]}
    q = np.quantile(arr, [0.05, 0.5, 0.95])
    return {
        "count": int(len(arr)),
        "mean": float(arr.mean()),
        "std": float(arr.std()),
        "min": float(arr.min()),
        "p05": float(q[0]),
        "p50": float(q[1]),
        "p95": float(q[2]),
        "max": float(arr.max()),
        "histogram": hist,
    }


def _compact(values: Sequence[float]) -> list[float]:
    return [float(f"{float(v):.6g}") for v in values]


def _as_dict(check: Any) -> dict[str, Any]:
    return check.to_dict() if hasattr(check, "to_dict") else dict(check)


def build_report(
    summary: Mapping[str, Any],
    expectations: Sequence[Mapping[str, Any]],
    checks: Sequence[Any],
    quarantine_examples: Mapping[str, Sequence[Mapping[str, Any]]],
    feature_samples: Mapping[str, Sequence[float]],
    keep_samples: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The report as one JSON-ready dict (what ``quality_report.json`` holds).

    Every sampled feature gets a profile and a histogram; the raw sample is kept only for
    ``keep_samples`` (default: all), the features a later run compares against (drift).
    """
    from privacy_ray import __version__
    from privacy_ray.quality.score import SCORE_FORMULA

    check_dicts = [_as_dict(c) for c in checks]
    statuses = {c.get("status") for c in check_dicts}
    gate = "failed" if "fail" in statuses else "warned" if "warn" in statuses else "passed"
    reasons = dict(summary.get("quarantine_reasons") or {})
    descriptions = reason_descriptions()
    quality = summary.get("quality") or {}
    rows_in = summary.get("records_in")
    rows_out = summary.get("records_out")
    rows_q = summary.get("records_quarantined")
    return {
        "report_version": REPORT_VERSION,
        "generated_by": f"privacy-ray {__version__}",
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_id": summary.get("run_id"),
        "run_dir": summary.get("run_dir"),
        "records": {
            "in": rows_in, "out": rows_out, "quarantined": rows_q,
            "reconciled": (None if None in (rows_in, rows_out, rows_q)
                           else rows_in == rows_out + rows_q),
        },
        "quality_score": summary.get("quality_score", quality.get("score")),
        "score_formula": SCORE_FORMULA,
        "score_components": quality.get("components", {}),
        "gate": gate,
        "checks": check_dicts,
        "expectations": [dict(e) for e in expectations],
        "feature_coverage": dict(summary.get("feature_coverage") or {}),
        "drift": summary.get("drift"),
        "quarantine": {
            "reasons": reasons,
            "descriptions": {k: descriptions.get(k, "") for k in reasons},
            "examples": {k: [dict(x) for x in v] for k, v in quarantine_examples.items()},
        },
        "labels": dict(summary.get("labels") or {}),
        "gx_seconds": quality.get("gx_seconds", {}),
        "features": {k: feature_profile(v) for k, v in sorted(feature_samples.items())},
        "feature_samples": {k: _compact(v) for k, v in sorted(feature_samples.items())
                            if keep_samples is None or k in keep_samples},
    }


def write_report(
    run_folder: RunFolder,
    summary: Mapping[str, Any],
    expectations: Sequence[Mapping[str, Any]],
    checks: Sequence[Any],
    quarantine_examples: Mapping[str, Sequence[Mapping[str, Any]]],
    feature_samples: Mapping[str, Sequence[float]],
    keep_samples: Sequence[str] | None = None,
) -> tuple[str, str]:
    """Write ``quality_report.json`` and ``quality_report.html``; return their URIs."""
    report = build_report(summary, expectations, checks, quarantine_examples, feature_samples,
                          keep_samples)
    json_uri = run_folder.write_text(REPORT_JSON, json.dumps(report, indent=1, sort_keys=True,
                                                             default=str) + "\n")
    html_uri = run_folder.write_text(REPORT_HTML, render_html(report))
    return json_uri, html_uri


def load_report(run_uri: str) -> dict[str, Any] | None:
    """A run's ``quality_report.json``, or None when it has none."""
    from privacy_ray.runs import filesystem_for, join

    fs, root = filesystem_for(run_uri)
    path = join(root, REPORT_JSON)
    if fs.get_file_info(path).type.name != "File":
        return None
    with fs.open_input_stream(path) as stream:
        return json.loads(stream.read().decode("utf-8"))


# --------------------------------------------------------------------------- HTML

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;
background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px}
.muted{color:#667085}.card{background:#fff;border:1px solid #e3e6eb;border-radius:8px;
padding:16px;margin:12px 0}
.kpis{display:flex;gap:12px;flex-wrap:wrap}.kpi{background:#fff;border:1px solid #e3e6eb;
border-radius:8px;padding:10px 16px;min-width:120px}.kpi b{display:block;font-size:22px}
.score{font-size:40px;font-weight:700}
table{border-collapse:collapse;width:100%;background:#fff}th,td{text-align:left;
padding:6px 8px;border-bottom:1px solid #eef0f3;vertical-align:top}th{font-weight:600;
background:#fafbfc}td.n{text-align:right;font-variant-numeric:tabular-nums}
.pill{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.pass{background:#dcfae6;color:#067647}.warn{background:#fef0c7;color:#93370d}
.fail{background:#fee4e2;color:#b42318}.skipped{background:#eef0f3;color:#475467}
.bar{background:#eef0f3;border-radius:3px;height:8px;width:120px;display:inline-block;
vertical-align:middle;margin-right:6px}.bar i{display:block;height:8px;border-radius:3px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(270px,1fr));gap:12px}
.grid .card{margin:0;padding:10px}code,.ex{font-family:ui-monospace,Menlo,Consolas,monospace;
font-size:12px}.ex{white-space:pre-wrap;word-break:break-word;color:#344054}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if pct:
        return f"{float(value):.2%}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _pill(status: str) -> str:
    return f'<span class="pill {_e(status)}">{_e(status)}</span>'


def _rate_bar(rate: float | None) -> str:
    if rate is None:
        return "–"
    color = "#12b76a" if rate >= 0.99 else "#f79009" if rate >= 0.9 else "#f04438"
    width = max(0.0, min(1.0, float(rate))) * 100
    return (f'<span class="bar"><i style="width:{width:.1f}%;background:{color}"></i></span>'
            f"{rate:.2%}")


def svg_histogram(name: str, profile: Mapping[str, Any], width: int = 260,
                  height: int = 110) -> str:
    """An inline SVG bar chart of a feature profile's histogram."""
    hist = profile.get("histogram") or {}
    counts = list(hist.get("counts") or [])
    if not counts:
        return f'<svg width="{width}" height="{height}" role="img" aria-label="{_e(name)}: ' \
               'no data"><text x="8" y="20" font-size="12">no data</text></svg>'
    pad_l, pad_b, pad_t = 6, 18, 6
    plot_w, plot_h = width - 2 * pad_l, height - pad_b - pad_t
    top = max(counts) or 1
    bar_w = plot_w / len(counts)
    bars = []
    for i, c in enumerate(counts):
        h = plot_h * c / top
        x = pad_l + i * bar_w
        label = (f"{hist['values'][i]:g}: {c}" if "values" in hist
                 else f"[{hist['edges'][i]:.4g}, {hist['edges'][i + 1]:.4g}): {c}")
        bars.append(f'<rect x="{x + 0.5:.1f}" y="{pad_t + plot_h - h:.1f}" '
                    f'width="{max(bar_w - 1, 0.5):.1f}" height="{h:.1f}" fill="#4e79a7">'
                    f"<title>{_e(label)}</title></rect>")
    lo, hi = profile.get("min"), profile.get("max")
    axis = (f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - pad_l}" '
            f'y2="{pad_t + plot_h}" stroke="#98a2b3"/>'
            f'<text x="{pad_l}" y="{height - 4}" font-size="10" fill="#667085">{_fmt(lo)}</text>'
            f'<text x="{width - pad_l}" y="{height - 4}" font-size="10" fill="#667085" '
            f'text-anchor="end">{_fmt(hi)}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="histogram of {_e(name)}">'
            + "".join(bars) + axis + "</svg>")


def _checks_html(checks: Sequence[Mapping[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{_pill(c.get('status', ''))}</td><td><code>{_e(c['name'])}</code></td>"
        f"<td class=n>{_fmt(c.get('value'))}</td><td class=n>{_fmt(c.get('threshold'))}</td>"
        f"<td>{_e(c.get('on_fail'))}</td><td>{_e(c.get('message'))}</td></tr>"
        for c in checks)
    return ("<table><tr><th>status</th><th>check</th><th>value</th><th>threshold</th>"
            f"<th>on fail</th><th>detail</th></tr>{rows}</table>")


def _expectations_html(expectations: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    suites = list(dict.fromkeys(e["suite"] for e in expectations))
    for suite in suites:
        rows = []
        for e in (x for x in expectations if x["suite"] == suite):
            status = "pass" if e.get("success") else "fail"
            rows.append(
                f"<tr><td>{_pill(status)}</td><td><code>{_e(e['key'])}</code><br>"
                f"<span class=muted>{_e(e.get('description'))}</span></td>"
                f"<td><code>{_e(e.get('expectation_type'))}</code></td>"
                f"<td class=n>{_fmt(e.get('evaluated'))}</td>"
                f"<td class=n>{_fmt(e.get('unexpected'))}</td>"
                f"<td class=n>{_fmt(e.get('missing'))}</td>"
                f"<td>{_rate_bar(e.get('pass_rate'))}</td></tr>")
        parts.append(
            f"<h3>{_e(suite)} suite</h3><table><tr><th></th><th>expectation</th><th>GX type</th>"
            "<th>evaluated</th><th>unexpected</th><th>null</th><th>pass rate</th></tr>"
            + "".join(rows) + "</table>")
    return "".join(parts) or "<p class=muted>No GX expectation was evaluated.</p>"


def _quarantine_html(q: Mapping[str, Any]) -> str:
    reasons = q.get("reasons") or {}
    if not reasons:
        return "<p class=muted>No row was quarantined.</p>"
    rows = []
    for code, count in sorted(reasons.items(), key=lambda kv: -kv[1]):
        examples = (q.get("examples") or {}).get(code) or []
        ex = "".join(f'<div class="ex">{_e(x.get("message_id"))}: {_e(x.get("text"))}</div>'
                     for x in examples)
        rows.append(f"<tr><td><code>{_e(code)}</code><br><span class=muted>"
                    f"{_e((q.get('descriptions') or {}).get(code))}</span></td>"
                    f"<td class=n>{_fmt(int(count))}</td><td>{ex or '–'}</td></tr>")
    return ("<table><tr><th>reason</th><th>rows</th><th>examples (redacted)</th></tr>"
            + "".join(rows) + "</table>")


def _features_html(features: Mapping[str, Any], coverage: Mapping[str, float]) -> str:
    if not features:
        return "<p class=muted>No feature sample available.</p>"
    cards = []
    for name, prof in features.items():
        cov = coverage.get(name)
        stats = (f"n {_fmt(prof.get('count'))} · mean {_fmt(prof.get('mean'))} · "
                 f"p50 {_fmt(prof.get('p50'))} · p95 {_fmt(prof.get('p95'))}")
        cov_txt = f" · coverage {_fmt(cov, pct=True)}" if cov is not None else ""
        cards.append(f'<div class="card"><b><code>{_e(name)}</code></b><br>'
                     f"{svg_histogram(name, prof)}<div class=muted>{stats}{cov_txt}</div></div>")
    return f'<div class="grid">{"".join(cards)}</div>'


def _drift_html(drift: Mapping[str, Any] | None) -> str:
    if not drift:
        return "<p class=muted>No reference run configured (quality.reference_run).</p>"
    if drift.get("error"):
        return f"<p>Reference run unusable: {_e(drift['error'])}</p>"
    rows = [f"<tr><td>labels</td><td class=n>{_fmt(drift.get('label_psi'))}</td></tr>"]
    rows += [f"<tr><td><code>{_e(k)}</code></td><td class=n>{_fmt(v)}</td></tr>"
             for k, v in sorted((drift.get("feature_psi") or {}).items(), key=lambda kv: -kv[1])]
    note = ""
    if drift.get("features_not_compared"):
        note = ("<p class=muted>Not compared (absent on one side): "
                f"{_e(', '.join(drift['features_not_compared']))}</p>")
    return (f"<p class=muted>Reference: <code>{_e(drift.get('reference'))}</code>. PSI below "
            "0.1: stable; 0.1-0.25: moderate shift; above 0.25: large shift.</p>"
            f"<table><tr><th>distribution</th><th>PSI</th></tr>{''.join(rows)}</table>{note}")


def render_html(report: Mapping[str, Any]) -> str:
    """The self-contained HTML page of a report dict (see :func:`build_report`)."""
    score = report.get("quality_score")
    color = ("#067647" if score is not None and score >= 90 else
             "#93370d" if score is not None and score >= 75 else "#b42318")
    rec = report.get("records") or {}
    reconciled = rec.get("reconciled")
    kpis = "".join(
        f'<div class="kpi"><span class=muted>{_e(label)}</span><b>{_e(value)}</b></div>'
        for label, value in (
            ("records in", _fmt(rec.get("in"))), ("records out", _fmt(rec.get("out"))),
            ("quarantined", _fmt(rec.get("quarantined"))),
            ("reconciled", "–" if reconciled is None else "yes" if reconciled else "NO"),
            ("gate", report.get("gate", "–"))))
    components = report.get("score_components") or {}
    comp = " · ".join(f"{_e(k)} {float(v):.3f}" for k, v in components.items())
    labels = report.get("labels") or {}
    label_rows = "".join(f"<tr><td><code>{_e(k)}</code></td><td class=n>{_fmt(int(v))}</td></tr>"
                         for k, v in sorted(labels.items(), key=lambda kv: -kv[1]))
    label_html = (f"<table><tr><th>label</th><th>rows</th></tr>{label_rows}</table>"
                  if label_rows else "<p class=muted>No labels.</p>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>Data quality - run {_e(report.get("run_id"))}</title>
<style>{_CSS}</style></head>
<body><main>
<h1>Data quality report</h1>
<div class=muted>run <code>{_e(report.get("run_id"))}</code> · {_e(report.get("run_dir"))} ·
generated {_e(report.get("generated_at"))} by {_e(report.get("generated_by"))}</div>
<div class="card"><span class=muted>quality score</span>
<div class="score" style="color:{color}">{_fmt(score)}<span class=muted
 style="font-size:18px"> / 100</span></div>
<div class=muted>{_e(report.get("score_formula"))}</div><div class=muted>{comp}</div></div>
<div class="kpis">{kpis}</div>
<h2>Run-level checks</h2>{_checks_html(report.get("checks") or [])}
<h2>Expectations (Great Expectations, summed over batches)</h2>
{_expectations_html(report.get("expectations") or [])}
<h2>Quarantine</h2>{_quarantine_html(report.get("quarantine") or {})}
<h2>Labels</h2>{label_html}
<h2>Drift against the reference run</h2>{_drift_html(report.get("drift"))}
<h2>Feature distributions (sample)</h2>
{_features_html(report.get("features") or {}, report.get("feature_coverage") or {})}
</main></body></html>
"""


# --------------------------------------------------------------------------- existing runs


def _read_json(uri: str) -> Any:
    from privacy_ray.runs import filesystem_for

    fs, path = filesystem_for(uri)
    with fs.open_input_stream(path) as stream:
        return json.loads(stream.read().decode("utf-8"))


def _is_file(uri: str) -> bool:
    from privacy_ray.runs import filesystem_for

    fs, path = filesystem_for(uri)
    return fs.get_file_info(path).type.name == "File"


def gx_sums_from_stats(stats: Mapping[str, Any]) -> dict[str, float]:
    """The GX sums of every stage in a run's ``stats.json``, added together."""
    sums: dict[str, float] = {}
    for stage in (stats.get("stages") or {}).values():
        for key, value in (stage.get("sums") or {}).items():
            if key.startswith("gx."):
                sums[key] = sums.get(key, 0.0) + float(value)
    return sums


def report_for_run(run_uri: str, cfg: QualityConfig | None = None,
                   rebuild: bool = False) -> dict[str, Any]:
    """A run's summary and quality report; builds the report from the run folder when it has
    none (or ``rebuild``): GX sums from ``stats.json``, the catalogue from ``features.json``,
    thresholds from ``cfg``, else the run's ``config.yaml`` ``quality`` section."""
    import yaml

    from privacy_ray.errors import InputError
    from privacy_ray.quality import QualityConfig
    from privacy_ray.quality.gx_suites import default_catalogue, derived_suite_spec, raw_suite_spec
    from privacy_ray.quality.score import assess_run
    from privacy_ray.runs import RunFolder, filesystem_for, join

    summary_uri = join(run_uri, "summary.json")
    if not _is_file(summary_uri):
        fs, path = filesystem_for(run_uri)
        what = "is not a run folder" if fs.get_file_info(path).type.name == "Directory" else \
            "does not exist"
        msg = (f"{run_uri} {what} (no summary.json); pass a folder such as "
               "output/runs/RUN_ID from `privacy-ray run`")
        raise InputError(msg)
    summary = _read_json(summary_uri)
    html_uri, json_uri = join(run_uri, REPORT_HTML), join(run_uri, REPORT_JSON)
    if not rebuild and _is_file(json_uri):
        return {"summary": summary, "report": _read_json(json_uri), "report_json": json_uri,
                "report_html": html_uri if _is_file(html_uri) else None, "rebuilt": False}
    config: dict[str, Any] = {}
    if _is_file(join(run_uri, "config.yaml")):
        fs, path = filesystem_for(join(run_uri, "config.yaml"))
        with fs.open_input_stream(path) as stream:
            config = yaml.safe_load(stream.read().decode("utf-8")) or {}
    if cfg is None:
        cfg = QualityConfig.model_validate(config.get("quality") or {})
    stats = _read_json(join(run_uri, "stats.json")) if _is_file(join(run_uri, "stats.json")) \
        else {}
    catalogue = (_read_json(join(run_uri, "features.json"))
                 if _is_file(join(run_uri, "features.json")) else default_catalogue())
    max_chars = int((config.get("pipeline") or {}).get("max_text_chars", 20_000))
    specs = [raw_suite_spec(max_chars, cfg.min_text_chars, cfg.earliest_timestamp,
                            cfg.max_future_days),
             derived_suite_spec(catalogue, cfg.embedding_dim,
                                (cfg.embedding_norm_min, cfg.embedding_norm_max),
                                cfg.max_centroid_cosine, cfg.collapse_min_rows)]
    folder = RunFolder(uri=run_uri, run_id=str(summary.get("run_id", "")))
    assessment = assess_run(summary, gx_sums_from_stats(stats), specs, cfg, folder,
                            feature_names=[str(c["name"]) for c in catalogue])
    return {"summary": summary, "report": _read_json(json_uri),
            "report_json": assessment.report_json, "report_html": assessment.report_html,
            "rebuilt": True}
