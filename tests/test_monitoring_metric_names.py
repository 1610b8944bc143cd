"""Every metric a dashboard, alert or autoscaler reads is in the catalog, and the simulator exposes the catalog."""

from __future__ import annotations

import ast
import io
import re
from pathlib import Path

import pytest
from llmplane.monitoring import dashboards, rules, scaling_queries, tenant_usage
from llmplane.monitoring import vllm_metrics as vm
from llmplane.toolchain.simulator import MODES, Simulator
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
            "offset", "inf", "nan", "le"}


def metric_names(promql: str) -> set[str]:
    """Names of the series a PromQL expression selects."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', promql)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range selectors
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    text = re.sub(r"\$\w+", " ", text)  # dashboard variables
    names = set()
    for match in re.finditer(r"(?<![\w.:])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        name, call = match.groups()
        if not call and name.lower() not in KEYWORDS:
            names.add(name)
    return names


def _rule_queries() -> list[str]:
    return [r["expr"] for g in rules.load()["spec"]["groups"] for r in g["rules"]]


def _recorded() -> set[str]:
    """Series recorded by Prometheus' rules and, from the gateway's access logs, by Loki's ruler."""
    loki = tenant_usage.loki_rule_groups()["groups"]
    return {r["record"] for g in [*rules.load()["spec"]["groups"], *loki] for r in g["rules"] if "record" in r}


def _autoscaler_queries() -> list[str]:
    return list(scaling_queries.triggers("llama-3-8b", "1.1.0").values())


def _variable_selectors() -> list[str]:
    return [re.fullmatch(r"label_values\((.+), \w+\)", q).group(1) for q in dashboards.variable_queries()]


QUERIES = {
    "dashboard": dashboards.queries()["promql"] + _variable_selectors(),
    "alert": _rule_queries(),
    "autoscaler": _autoscaler_queries(),
}


def test_the_parser_finds_names_and_skips_functions_labels_and_keywords():
    expr = ('histogram_quantile(0.99, sum by (model, le) (rate(vllm:x_bucket{le="2.5", a=~"b|c"}[5m])))\n'
            "/ on (model) group_left () clamp_min(2 * up offset 1h, 1e6) * $gpu_hourly_usd")
    assert metric_names(expr) == {"vllm:x_bucket", "up"}


@pytest.mark.parametrize("kind", sorted(QUERIES))
def test_queries_read_only_catalogued_metrics(kind: str):
    known = vm.series_names() | _recorded()
    for query in QUERIES[kind]:
        unknown = metric_names(query) - known
        assert not unknown, f"{kind} query uses {sorted(unknown)}, absent from monitoring/vllm_metrics.py:\n{query}"


def test_every_catalogued_metric_is_read_somewhere():
    used = set().union(*(metric_names(q) for queries in QUERIES.values() for q in queries))
    unused = [m.name for m in vm.ALL if not used & set(m.series_names())]
    assert not unused, f"catalogued but never queried: {unused}"


def test_components_and_stacks_name_only_catalogued_vllm_and_gpu_metrics():
    """Queries written elsewhere (e.g. an autoscaler in components/) are held to the catalog too."""
    known = vm.series_names()
    for path in [*ROOT.glob("components/**/*.py"), *ROOT.glob("stacks/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for name in re.findall(r"\b(?:vllm:[a-z_:]+|DCGM_FI_[A-Z_]+)", node.value):
                    assert name in known, f"{path.relative_to(ROOT)} names {name}, absent from the catalog"


@pytest.mark.parametrize("mode", MODES)
def test_the_simulator_exposes_exactly_the_catalog(mode: str):
    simulator = Simulator("llama-3-8b", "1.0.0", "1.1.0", mode, io.StringIO())
    for step in range(1, 30):
        simulator.step(step * 0.1, 0.1)
    exposed: dict[str, tuple[str, set[str]]] = {}
    for target in ("baseline", "canary", "kube-state-metrics"):
        for family in text_string_to_metric_families(generate_latest(simulator.registries[target]).decode()):
            labels = {k for s in family.samples for k in s.labels if k != "le"}
            exposed[family.name] = (family.type, labels)
    expected = {}
    for metric in vm.ALL:
        # The parser names counter families without their `_total`.
        name = metric.name.removesuffix("_total") if metric.kind is vm.Kind.COUNTER else metric.name
        expected[name] = (metric.kind.value, set(metric.labels))
    assert exposed == expected


def test_the_simulator_serves_vllm_names_with_vllm_labels():
    simulator = Simulator("llama-3-8b", "1.0.0", "1.1.0", "normal", io.StringIO())
    page = generate_latest(simulator.registries["canary"]).decode()
    assert 'vllm:request_success_total{engine="0",finished_reason="error",model_name="llama-3-8b:1.1.0"} 0.0' in page
    assert "vllm:time_to_first_token_seconds_bucket{" in page
    assert 'le="2.5"' in page
