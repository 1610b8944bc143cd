"""End to end: a real Prometheus and a real log store on 127.0.0.1 watch one simulated model per fault mode.

Each mode runs as its own model (`chat-<mode>`, baseline 1.0.0 and canary
1.1.0), all at once, so one Prometheus proves every alert in about a minute.
The rules are the shipped ones with windows and `for` durations divided by
60 (5m becomes 5s) and a 1s scrape and evaluation interval. The simulators' request logs are pushed in
Loki's push format, with the labels our Alloy configuration attaches, to VictoriaLogs (Apache-2.0, which
implements Loki's push API; Loki is AGPL and not run here) and read back by those labels. LogQL itself is
proven by Grafana's own grammar in tests/test_logql.py.
"""

from __future__ import annotations

import json
import math
import shutil
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from llmplane.components.observability.stack import alloy_stream_labels
from llmplane.monitoring import dashboards, rules, scaling_queries
from llmplane.toolchain.localstack import (
    LOKI_PUSH_PATH,
    Server,
    get_json,
    start_prometheus,
    start_simulator,
    start_victoria_logs,
    victoria_logs_binary,
    wait_until,
)
from llmplane.toolchain.logship import Shipper
from llmplane.toolchain.simulator import MODES, behaviours

if shutil.which("prometheus") is None:
    raise RuntimeError("prometheus is missing: run `make test-setup` (apt-get install prometheus)")

ALLOY_LABELS = alloy_stream_labels()
"""The labels the Alloy configuration we deploy gives every pod's log stream."""
TIME_SCALE = 60
MODELS = {mode: f"chat-{mode.replace('_', '-')}" for mode in MODES}
VERSIONS = ("1.0.0", "1.1.0")
EXPECTED_ALERTS = {
    "normal": set(),
    "overload": {"VllmTtftBudgetBurnFast", "VllmTtftBudgetBurnSlow", "VllmQueueBacklog",
                 "VllmKvCacheSaturated", "VllmPreemptions"},
    "error_burst": {"VllmErrorBudgetBurnFast", "VllmErrorBudgetBurnSlow"},
    "slow_canary": {"VllmCanaryWorseThanBaseline"},
    "gpu_fault": {"GpuXidErrors", "VllmNoReadyReplicas"},
}
ALERT_DEADLINE_SECONDS = 150
# Grafana fills these in; here every model and version is selected.
VARIABLES = {"$__rate_interval": "20s", "$__auto": "1m", "$gpu_hourly_usd": "4",
             "$model": ".+", "$version": ".+"}


def fill(expr: str) -> str:
    for variable, value in VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


@dataclass
class Stack:
    prometheus: str
    logs: str
    started: float
    # (mode, alertname, state) ever reported by Prometheus while the test waited
    seen: set[tuple[str, str, str]] = field(default_factory=set)

    def promql(self, expr: str) -> list[dict]:
        answer = get_json(self.prometheus + "/api/v1/query", query=expr)
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def poll_alerts(self) -> None:
        mode_of = {model: mode for mode, model in MODELS.items()}
        for alert in get_json(self.prometheus + "/api/v1/alerts")["data"]["alerts"]:
            mode = mode_of.get(alert["labels"].get("model", ""), "?")
            self.seen.add((mode, alert["labels"]["alertname"], alert["state"]))

    def firing(self, mode: str) -> set[str]:
        return {name for m, name, state in self.seen if m == mode and state == "firing"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp("observability")
    servers: list[Server] = []
    stop = threading.Event()
    try:
        servers.append(logs := start_victoria_logs(workdir, victoria_logs_binary()))
        simulators = [start_simulator(workdir, mode, model) for mode, model in MODELS.items()]
        servers += simulators
        for simulator in simulators:
            simulator.wait_ready(30)
        params = rules.AlertParams(time_scale=TIME_SCALE, evaluation_interval="1s")
        servers.append(prometheus := start_prometheus(workdir, [s.url + "/targets" for s in simulators], params))
        prometheus.wait_ready(60)
        logs.wait_ready(60)
        shipper = Shipper(logs.url + LOKI_PUSH_PATH, [workdir / f"{model}.log" for model in MODELS.values()])
        threading.Thread(target=shipper.run, args=(stop, 1.0), daemon=True).start()
        yield Stack(prometheus.url, logs.url, time.time())
    finally:
        stop.set()
        for server in reversed(servers):
            server.stop()


@pytest.fixture(scope="module")
def alerts(stack: Stack) -> Stack:
    """Wait, within a deadline, until every fault mode fires its alerts."""

    def all_fired() -> bool:
        stack.poll_alerts()
        return all(expected <= stack.firing(mode) for mode, expected in EXPECTED_ALERTS.items())

    try:
        wait_until(all_fired, ALERT_DEADLINE_SECONDS, "expected alerts", period=2)
    except TimeoutError:
        pass  # the tests below say which alert is missing
    # A few more evaluations, so a late false alarm in normal mode would show.
    for _ in range(5):
        time.sleep(1)
        stack.poll_alerts()
    return stack


def test_the_e2e_covers_every_shipped_alert():
    shipped = {r["alert"] for g in rules.load()["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert set().union(*EXPECTED_ALERTS.values()) == shipped


@pytest.mark.parametrize("mode", [m for m in MODES if EXPECTED_ALERTS[m]])
def test_each_fault_mode_fires_its_alerts_and_no_others(alerts: Stack, mode: str):
    assert alerts.firing(mode) == EXPECTED_ALERTS[mode]


def test_normal_mode_stays_quiet(alerts: Stack):
    assert {(name, state) for m, name, state in alerts.seen if m == "normal"} == set()


PER_MODEL_QUERIES = [q for q in dashboards.queries()["promql"] if "tenant" not in q and "llmplane_feedback" not in q]
"""The dashboard's queries of vLLM's and the GPUs' series. The Tenants row reads series Loki's ruler records from
the gateways' access lines, which this stack has no gateway to write: monitoring/tests/tenant_cost.yaml feeds
those series to promtool instead. The Experiments row's ratings come from the feedback service, which this stack
does not run: promtool computes those panels on known ratings (tests/test_experiment_dashboard.py), and
tests/test_experiment_feedback.py reads the service's series from a real Prometheus."""


@pytest.mark.parametrize("expr", PER_MODEL_QUERIES)
def test_every_dashboard_query_returns_data_per_model_and_version(alerts: Stack, expr: str):
    result = alerts.promql(fill(expr))
    assert result, f"no data for {fill(expr)}"
    assert all({"model", "version"} <= set(s["metric"]) for s in result)
    normal = {s["metric"]["version"]: float(s["value"][1]) for s in result
              if s["metric"]["model"] == MODELS["normal"]}
    assert set(normal) == set(VERSIONS), "baseline and canary side by side"
    assert all(math.isfinite(v) for v in normal.values()), normal


def test_the_model_and_version_pickers_list_every_model(alerts: Stack):
    for selector, label in (("vllm:num_requests_running", "model"), ("vllm:num_requests_running", "version")):
        values = get_json(f"{alerts.prometheus}/api/v1/label/{label}/values", **{"match[]": selector})["data"]
        assert set(values) == (set(MODELS.values()) if label == "model" else set(VERSIONS))


@pytest.mark.parametrize("mode", MODES)
def test_autoscaler_queries_return_one_number_per_model_version(alerts: Stack, mode: str):
    for version in VERSIONS:
        for signal, expr in scaling_queries.triggers(MODELS[mode], version).items():
            result = alerts.promql(expr)
            assert len(result) == 1, f"{signal}: {expr} -> {result}"


def logs_query(stack: Stack, query: str) -> list[dict]:
    """Records matching a LogsQL query, one JSON object per line."""
    request = urllib.request.Request(f"{stack.logs}/select/logsql/query",
                                     data=urllib.parse.urlencode({"query": query, "limit": "200"}).encode())
    with urllib.request.urlopen(request, timeout=10) as response:
        return [json.loads(line) for line in response.read().decode().splitlines() if line.strip()]


@pytest.mark.parametrize("mode", MODES)
def test_request_logs_arrive_with_the_labels_our_log_pipeline_attaches(alerts: Stack, mode: str):
    model = MODELS[mode]
    served = [v for v, role in zip(VERSIONS, ("baseline", "canary")) if behaviours(mode)[role].utilisation > 0]
    assert served, "every mode serves at least one version"
    for version in served:
        records = wait_for_records(alerts, f'{{model="{model}", version="{version}"}}')
        for record in records:
            stream = dict(pair.split("=", 1) for pair in record["_stream"].strip("{}").replace('"', "").split(","))
            assert set(stream) == ALLOY_LABELS, stream
            assert (stream["model"], stream["version"]) == (model, version)
            # VictoriaLogs unpacks a JSON log line into fields: the request log's own model_name is one.
            assert record["model_name"] == f"{model}:{version}"


def wait_for_records(stack: Stack, stream_filter: str) -> list[dict]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        records = logs_query(stack, stream_filter)
        if records:
            return records
        time.sleep(1)
    pytest.fail(f"no log records for {stream_filter}")
