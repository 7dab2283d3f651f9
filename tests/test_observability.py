"""Grafana dashboard, Prometheus PodMonitor and the generated reference docs stay in sync with
the metrics and the config defined in the code. No Ray needed."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from privacy_ray import docs_gen
from privacy_ray.config import Settings, flatten_keys, load_config
from privacy_ray.metrics import METRICS
from tests.conftest import REPO_ROOT

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "privacy-ray-dashboard.json"
PODMONITOR = REPO_ROOT / "deploy" / "prometheus" / "podmonitor.yaml"
RAYCLUSTER = REPO_ROOT / "kuberay" / "raycluster.yaml"
SERIES_RE = re.compile(r"\b(ray_privacy_ray_\w+|privacy_ray_\w+)")


def _panels(dashboard: dict) -> list[dict]:
    out = []
    for p in dashboard["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows keep their panels inside
    return out


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def exported() -> dict[str, str]:
    """Every series name Ray exports for our metrics -> the metric defined in the code."""
    return {s: name for name, (kind, _, _) in docs_gen.all_metrics().items()
            for s in docs_gen.exported_series(name, kind)}


# --------------------------------------------------------------------------- series names


def test_exported_series_names_follow_rays_exporter():
    assert docs_gen.exported_series("privacy_ray_records_processed_total", "counter") == [
        "ray_privacy_ray_records_processed_total"]
    assert docs_gen.exported_series("privacy_ray_http_requests", "counter") == [
        "ray_privacy_ray_http_requests_total"]
    assert docs_gen.exported_series("privacy_ray_data_quality_score", "gauge") == [
        "ray_privacy_ray_data_quality_score"]
    assert docs_gen.exported_series("privacy_ray_x_ms", "histogram") == [
        "ray_privacy_ray_x_ms_bucket", "ray_privacy_ray_x_ms_sum", "ray_privacy_ray_x_ms_count"]


def test_serve_metrics_are_read_from_the_serve_source():
    serve = docs_gen.serve_metrics()
    assert serve, "no metrics found in privacy_ray/serve/metrics.py"
    kinds = {kind for kind, _, _ in serve.values()}
    assert "histogram" in kinds and "counter" in kinds
    assert all(name.startswith("privacy_ray_") for name in serve)
    assert not set(serve) & set(METRICS)


def test_serve_metric_parser_resolves_names_and_tags(tmp_path):
    src = tmp_path / "m.py"
    src.write_text(
        'P = "privacy_ray_"\n'
        "class M:\n"
        "    def __init__(self):\n"
        '        tags = ("endpoint", "status")\n'
        '        self.a = metrics.Counter(f"{P}hits", description="Hits.", tag_keys=tags)\n'
        '        self.b = Histogram("privacy_ray_lat_ms", description="Lat.", boundaries=[1])\n'
        "    def observe(self):\n"
        '        tags = {"endpoint": "/"}\n'
        '        self.a.inc(1, tags=tags)\n'
    )
    assert docs_gen.serve_metrics(src) == {
        "privacy_ray_hits": ("counter", "Hits.", ("endpoint", "status")),
        "privacy_ray_lat_ms": ("histogram", "Lat.", ()),
    }


# --------------------------------------------------------------------------- dashboard


def test_dashboard_is_grafana_10_with_a_prometheus_datasource_variable(dashboard):
    assert dashboard["schemaVersion"] >= 36  # Grafana 9.x/10.x schema
    assert dashboard["uid"] == "privacy-ray" and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    for v in variables.values():
        if v["type"] == "query":
            assert v["datasource"]["uid"] == "${datasource}"


def test_every_panel_queries_metrics_defined_in_the_code(dashboard, exported):
    panels = [p for p in _panels(dashboard) if p["type"] != "row"]
    assert len(panels) >= 12
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            names = SERIES_RE.findall(target["expr"])
            assert names, f"panel {panel['title']!r} queries no privacy-ray metric"
            unknown = [n for n in names if n not in exported]
            assert not unknown, (
                f"panel {panel['title']!r} queries {unknown}, which no code defines "
                f"(Ray exports {sorted(exported)})")
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]


def test_dashboard_covers_every_pipeline_metric_and_serve_requests(dashboard, exported):
    queried = {exported[n] for p in _panels(dashboard) for t in p.get("targets", [])
               for n in SERIES_RE.findall(t["expr"])}
    missing = sorted(set(METRICS) - queried)
    assert not missing, f"add a panel for {missing}"
    serve = docs_gen.serve_metrics()
    for kind in ("counter", "histogram"):
        assert any(serve[n][0] == kind for n in queried if n in serve), \
            f"no panel shows a Serve {kind} (requests / latency)"


def test_histogram_quantiles_aggregate_by_le(dashboard):
    for panel in _panels(dashboard):
        for t in panel.get("targets", []):
            if "histogram_quantile" in t["expr"]:
                assert "_bucket" in t["expr"] and re.search(r"by \([^)]*\ble\b", t["expr"])


# --------------------------------------------------------------------------- podmonitor


def test_podmonitor_scrapes_the_metrics_port_of_ray_pods():
    docs = [d for d in yaml.safe_load_all(PODMONITOR.read_text(encoding="utf-8")) if d]
    assert docs
    cluster = yaml.safe_load(RAYCLUSTER.read_text(encoding="utf-8"))
    head = cluster["spec"]["headGroupSpec"]["template"]
    pod_labels = head["metadata"]["labels"]
    ports = {p["name"]: p["containerPort"] for c in head["spec"]["containers"]
             for p in c.get("ports", [])}
    assert ports.get("metrics") == 8080
    for doc in docs:
        assert doc["apiVersion"] == "monitoring.coreos.com/v1"
        assert doc["kind"] == "PodMonitor"
        assert doc["metadata"]["name"] and doc["metadata"]["namespace"]
        assert "release" in doc["metadata"]["labels"]  # kube-prometheus-stack's selector
        spec = doc["spec"]
        assert spec["namespaceSelector"]["matchNames"] == [cluster["metadata"]["namespace"]]
        selector = spec["selector"]
        for key, value in selector.get("matchLabels", {}).items():
            assert pod_labels.get(key) == value, f"pods do not carry {key}={value}"
        node_types = [e for e in selector.get("matchExpressions", [])
                      if e["key"] == "ray.io/node-type"]
        assert node_types and set(node_types[0]["values"]) == {"head", "worker"}
        endpoints = spec["podMetricsEndpoints"]
        assert [e["port"] for e in endpoints] == ["metrics"]
        for e in endpoints:
            assert e.get("path", "/metrics") == "/metrics"
            targets = {r["targetLabel"] for r in e.get("relabelings", [])}
            assert "ray_io_cluster" in targets  # the dashboard's $cluster variable


# --------------------------------------------------------------------------- generated docs


@pytest.mark.parametrize("name", sorted(docs_gen.GENERATED))
def test_committed_docs_equal_the_generator_output(name):
    committed = (docs_gen.DOCS_DIR / name).read_text(encoding="utf-8")
    assert committed == docs_gen.GENERATED[name](), (
        f"docs/{name} is stale; run: python -m privacy_ray.docs_gen")


def test_readme_quotes_the_committed_benchmark_results():
    readme = docs_gen.README_FILE.read_text(encoding="utf-8")
    assert docs_gen.readme_benchmarks_block() in readme, (
        "README.md's benchmark table is stale; run: python -m privacy_ray.docs_gen")


def test_benchmark_pages_quote_the_results_file(tmp_path):
    result = {"mode": "full", "date": "2026-01-02", "command": "bench/run.py",
              "machine": {"cpu_count": 2}, "targets": {"serve_p99_ms": "<= 150"},
              "summary": {"serve_p99_ms": 151.0, "onnx_int8_speedup": None},
              "meets_targets": {"serve_p99_ms": False},
              "sizing": {"records_per_s_per_core": {"embedding_stage_cpu": 20.0,
                                                    "text_stages": 300.0}}}
    (tmp_path / "2026-01-02-h.json").write_text(json.dumps(result))
    (tmp_path / "2026-01-03-h-quick.json").write_text(json.dumps({**result, "mode": "quick"}))
    found = docs_gen.latest_results(tmp_path)
    assert found is not None and found[0] == "2026-01-02-h.json"  # quick runs are not quoted
    assert docs_gen.latest_results(tmp_path, mode="gpu") is None
    page = docs_gen.benchmarks_markdown(tmp_path)
    assert "| Serve p99 latency in ms, 16 clients (`serve_p99_ms`) | 151 | <= 150 | no |" in page
    assert "not measured" in page  # null stays null, never invented
    assert "No GPU results are committed yet" in page
    # 1M messages in 4 h: 69.4/s x (1/20 + 1/300) s / 0.8 = 4.6 cores on one 16-vCPU node
    assert "| 1,000,000 | 5 / 1 |" in page

    # a GPU run (bench_gpu.py) gets its own section and a row in the README; a CPU smoke run of
    # the same script is not quoted
    gpu = {"mode": "gpu", "device": "cuda", "card": "Card X", "date": "2026-01-04", "texts": 100,
           "texts_per_s": {"bare_bs64": 400.0, "ours": 500.0}, "ours_vs_bare": 1.25,
           "ours_batch_size": 256}
    (tmp_path / "2026-01-04-gpu.json").write_text(json.dumps(gpu))
    (tmp_path / "2026-01-05-cpu.json").write_text(json.dumps({**gpu, "device": "cpu"}))
    assert docs_gen.latest_results(tmp_path, mode="gpu")[0] == "2026-01-04-gpu.json"
    page = docs_gen.benchmarks_markdown(tmp_path)
    assert "| bare `SentenceTransformer.encode`, batch size 64 | 400 |" in page
    assert "| `SentenceEncoder` (the embed stage's encoder), batch size 256 | 500 |" in page
    # 50M messages in 4 h = 3,472/s: 6.94 GPUs at 500 texts/s
    assert "6.94 of such a GPU" in page
    block = docs_gen.readme_benchmarks_block(tmp_path)
    assert "bare encode on one Card X" in block and "| 1.25 | |" in block
    assert docs_gen.with_readme_block(f"a\n{docs_gen.README_BLOCK[0]}\nold\n"
                                      f"{docs_gen.README_BLOCK[1]}\nb", block) == f"a\n{block}\nb"


def test_sizing_projection_rounds_nodes_up():
    cores, nodes = docs_gen.sizing_projection(0.05, 10_000_000)
    assert cores == pytest.approx(10_000_000 / 14400 * 0.05 / 0.8)
    assert nodes == 3  # 43.4 cores over 15 usable vCPUs per node


def test_configuration_doc_lists_every_key_with_its_env_var():
    text = docs_gen.configuration_markdown()
    for dotted in flatten_keys(Settings().model_dump(mode="json")):
        if dotted.startswith("pipeline.resources."):
            continue  # documented per entry as pipeline.resources.<stage>.*
        section, key = dotted.split(".")[:2]
        assert f"`{section}.{key}`" in text, dotted
        assert f"`{docs_gen.env_var(f'{section}.{key}')}`" in text, dotted
    assert "`PRIVACY_RAY_PIPELINE__RESOURCES__<STAGE>__NUM_CPUS`" in text


def test_documented_env_vars_are_the_ones_the_loader_reads():
    var = docs_gen.env_var("pipeline.resources.embed.num_cpus")
    assert var == "PRIVACY_RAY_PIPELINE__RESOURCES__EMBED__NUM_CPUS"
    resolved = load_config(environ={var: "0.5", docs_gen.env_var("store.num_shards"): "8"})
    assert resolved.settings.resources_for("embed").num_cpus == 0.5
    assert resolved.settings.store.num_shards == 8


def test_configuration_doc_shows_types_defaults_and_ranges():
    text = docs_gen.configuration_markdown()
    assert ("| `serve.port` | int (>= 1, <= 65535) | `8000` | `PRIVACY_RAY_SERVE__PORT` | "
            "HTTP port. |") in text
    assert "one of `regex`, `presidio`" in text
    assert "| `runtime.ray_address` | str or null | `null` |" in text
    assert "| `embed` | `0.375` | `0.0` | `256` |" in text  # default per-stage resources


def test_metrics_doc_lists_every_metric_as_exported():
    text = docs_gen.metrics_markdown()
    for name, (kind, description, tags) in docs_gen.all_metrics().items():
        shown = docs_gen.exported_series(name, kind)[0]
        if kind == "histogram":
            shown = shown.removesuffix("_bucket") + "_{bucket,sum,count}"
        labels = ", ".join(f"`{t}`" for t in tags) or "-"
        assert f"| `{shown}` | {kind} | {labels} |" in text, name
        assert description.replace("|", "\\|") in text


def test_generator_check_mode_reports_stale_docs(tmp_path, capsys):
    assert docs_gen.main(["--out", str(tmp_path), "--check"]) == 1
    assert "stale" in capsys.readouterr().err
    assert docs_gen.main(["--out", str(tmp_path)]) == 0
    assert docs_gen.main(["--out", str(tmp_path), "--check"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(docs_gen.GENERATED)
