"""The dashboard's Experiments row: the arms of a model side by side, and its feedback panels computing, on
promtool's real PromQL engine, the score and success rate a known set of ratings gives."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from llmplane.monitoring import dashboards
from llmplane.monitoring import vllm_metrics as vm
from llmplane.toolchain import prerequisites

from tests.test_monitoring_metric_names import metric_names

PROMTOOL = str(prerequisites.binary("promtool"))
"""Debian's promtool, which `make test-setup` installs: missing, the module fails to load and names the command."""


def _row(board: dict, title: str) -> list[dict]:
    panels, inside = [], False
    for panel in board["panels"]:
        if panel["type"] == "row":
            inside = panel["title"] == title
        elif inside:
            panels.append(panel)
    return panels


@pytest.fixture(scope="module")
def row() -> list[dict]:
    return _row(dashboards.build(), "Experiments")


def test_the_row_shows_each_arm_s_latency_errors_and_quality(row: list[dict]):
    assert [p["title"] for p in row] == [
        "Arms: time to first token", "Arms: time per output token", "Arms: error rate", "Arms: feedback score",
        "Arms: task success", "Arms: refusals reported", "Arms: ratings"]
    ttft = row[0]
    assert [t["legendFormat"] for t in ttft["targets"]] == ["{{model}} {{version}} p50", "{{model}} {{version}} p95"]


def test_every_feedback_metric_the_service_exports_is_on_the_row(row: list[dict]):
    read = set().union(*(metric_names(t["expr"]) for p in row for t in p["targets"]))
    for metric in vm.FEEDBACK:
        assert read & set(metric.series_names()), f"{metric.name} is on no panel"


def _expr(row: list[dict], title: str) -> str:
    [panel] = [p for p in row if p["title"] == title]
    [target] = panel["targets"]
    # What Grafana sends with "All" picked for both variables.
    return re.sub(r"\$(model|version)", ".+", target["expr"])


def test_feedback_panels_compute_each_arm_s_score_and_success_rate(row: list[dict], tmp_path: Path):
    """Over an hour: 1.0.0 gets 60 scores summing to 30 (mean 0.5), 180 successes and 60 failures; 1.0.1 gets
    60 scores summing to 45 (mean 0.75), 120 successes and no failure."""
    arm = 'model="llama-3-70b",tenant="search"'
    series = [
        (f'llmplane_feedback_score_sum{{{arm},version="1.0.0"}}', "0+0.5x60"),
        (f'llmplane_feedback_score_count{{{arm},version="1.0.0"}}', "0+1x60"),
        (f'llmplane_feedback_score_sum{{{arm},version="1.0.1"}}', "0+0.75x60"),
        (f'llmplane_feedback_score_count{{{arm},version="1.0.1"}}', "0+1x60"),
        (f'llmplane_feedback_total{{{arm},version="1.0.0",label="success"}}', "0+3x60"),
        (f'llmplane_feedback_total{{{arm},version="1.0.0",label="failure"}}', "0+1x60"),
        (f'llmplane_feedback_total{{{arm},version="1.0.1",label="success"}}', "0+2x60"),
        (f'llmplane_feedback_total{{{arm},version="1.0.1",label="failure"}}', "0+0x60"),
    ]
    arms = ('{model="llama-3-70b", version="1.0.0"}', '{model="llama-3-70b", version="1.0.1"}')
    tests = {"rule_files": [], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in series],
        "promql_expr_test": [
            {"expr": _expr(row, "Arms: feedback score"), "eval_time": "60m",
             "exp_samples": [{"labels": a, "value": v} for a, v in zip(arms, (0.5, 0.75))]},
            {"expr": _expr(row, "Arms: task success"), "eval_time": "60m",
             "exp_samples": [{"labels": a, "value": v} for a, v in zip(arms, (0.75, 1.0))]},
        ],
    }]}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    done = subprocess.run([PROMTOOL, "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
