"""The vLLM dashboard: the issue's panels, each split by model and version."""

from __future__ import annotations

import json
import re

import pytest
from llmplane.monitoring import dashboards


@pytest.fixture(scope="module")
def board() -> dict:
    return dashboards.build()


def panels(board: dict) -> list[dict]:
    return [p for p in board["panels"] if p["type"] != "row"]


def test_the_command_line_writes_the_dashboard_json(tmp_path):
    dashboards.main(["--out", str(tmp_path / "out")])
    written = json.loads((tmp_path / "out" / "llmplane-vllm.json").read_text())
    assert written["uid"] == "llmplane-vllm"
    assert written == dashboards.build()


def test_the_issue_s_panels_are_there(board):
    assert {p["title"] for p in panels(board)} >= {
        "Request rate", "Time to first token", "Inter-token latency", "End-to-end latency",
        "Waiting and running requests", "KV-cache usage", "Prefix-cache hit rate", "Tokens per second",
        "Errors", "GPU utilisation", "GPU memory used", "Cost per million tokens",
    }


def test_latency_panels_show_p50_p90_p99(board):
    for title in ("Time to first token", "Inter-token latency", "End-to-end latency"):
        panel = next(p for p in panels(board) if p["title"] == title)
        assert [t["expr"].split(",")[0] for t in panel["targets"]] == [
            "histogram_quantile(0.5", "histogram_quantile(0.9", "histogram_quantile(0.99"]


def test_every_metric_panel_splits_by_model_and_version(board):
    """...or, for the tenants' usage and cost, by tenant."""
    for panel in panels(board):
        for target in panel["targets"]:
            expr = target["expr"]
            if "llmplane:gateway_" in expr or "llmplane:tenant_" in expr:
                assert all("tenant" in {g.strip() for g in by.split(",")}
                           for by in re.findall(r"\bby \(([^)]*)\)", expr)), panel["title"]
                assert "{{tenant}}" in target["legendFormat"], panel["title"]
                continue
            if panel["type"] == "logs":
                assert 'model=~"$model", version=~"$version"' in expr, panel["title"]
                continue
            groupings = re.findall(r"\bby \(([^)]*)\)", expr)
            assert groupings and all({"model", "version"} <= {g.strip() for g in by.split(",")}
                                     for by in groupings), f"{panel['title']}: {expr}"
            assert "{{model}} {{version}}" in target["legendFormat"], panel["title"]


def test_panels_query_the_dashboard_s_data_source_variables(board):
    for panel in panels(board):
        assert panel["datasource"]["uid"] in {"${prometheus}", "${loki}"}
    names = [v["name"] for v in board["templating"]["list"]]
    assert names == ["prometheus", "loki", "model", "version", "gpu_hourly_usd"]


def test_queries_lists_every_promql_and_logql_expression(board):
    listed = dashboards.queries(board)
    targets = [(p["datasource"]["type"], t["expr"]) for p in panels(board) for t in p["targets"]]
    assert listed["promql"] == [e for kind, e in targets if kind == "prometheus"]
    assert listed["logql"] == [e for kind, e in targets if kind == "loki"]
    assert len(listed["promql"]) >= 12 and len(listed["logql"]) >= 3
