"""`llmplane experiment report` finds a planted feedback improvement within the traffic its power calculation
predicted: ratings posted to the real feedback service (components/serving/scripts/feedback_server.py) on
127.0.0.1 through its HTTP API, with the client id the gateway's API-key filter forwards, counted per arm, scraped
every second by Debian's Prometheus and judged by the report on prod's 70B experiment with task success as its
primary metric and the refusal rate as its guardrail.

The feedback is planted exactly: every block of 50 ratings of the control has 40 successes, 9 failures and a
refusal (task success 40/49), every block of the treatment 44 successes, 5 failures and a refusal (44/49, +10 %,
twice the minimum detectable effect; refusals alike). Ratings come as the weights send answers, 90:10, one
treatment block and nine control blocks a round, and the report looks after each round at the last scrape. At
block boundaries each arm's estimate is its planted rate, so the power calculation's prediction does not wander
with chance and "within" can be pinned to the look: the promote comes at the first look whose traffic reaches the
prediction, and at no look before.
"""

from __future__ import annotations

import http.client
import json
import math
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from llmplane.components.gateway.tenant_budgets import CLIENT_HEADER
from llmplane.components.serving.feedback import PATH, SCRIPT
from llmplane.experiments.metrics import FEEDBACK_TOTAL
from llmplane.experiments.prometheus import Client
from llmplane.stacks.experiment_report import Result, experiment_report
from llmplane.toolchain import prerequisites
from llmplane.toolchain.localstack import LOOPBACK, Server, free_port, wait_until

ROOT = Path(__file__).resolve().parents[1]
MODEL, CONTROL, TREATMENT = "llama-3-70b", "1.0.0", "1.0.1"
PROD_EXPERIMENT = "primary: time_per_output_token\n          guardrails: [error_rate, ttft]"
FEEDBACK_EXPERIMENT = "primary: task_success\n          guardrails: [refusal_rate]"
BLOCKS = {CONTROL: {"success": 40, "failure": 9, "refusal": 1}, TREATMENT: {"success": 44, "failure": 5, "refusal": 1}}
"""The planted ratings of one block of 50 answers per arm."""
ROUND = {CONTROL: 9, TREATMENT: 1}
"""Blocks per arm per round: prod's weights, 90 and 10."""
IDENTITY = {CLIENT_HEADER: "search.searchApiKey"}
"""What the gateway forwards for the search tenant's key (the service takes the tenant from nothing else)."""
ENOUGH = 200
"""Task-success ratings the treatment has before the first look whose prediction counts (as the TTFT test)."""


def _block(version: str) -> list[str]:
    """One block of an arm's labels, spread evenly (the failures and the refusal among the successes)."""
    counts = BLOCKS[version]
    size = sum(counts.values())
    labels = [label for label, count in counts.items() for _ in range(count)]
    order = sorted(range(size), key=lambda i: (i * 37) % size)  # 37 is prime to 50: a permutation
    return [labels[i] for i in order]


@dataclass
class Feedback:
    """The feedback service and the Prometheus scraping it; what has been posted per arm and label."""

    api_port: int
    prometheus: Server
    environments: Path
    posted: dict[tuple[str, str], int] = field(default_factory=dict)

    def post(self, ratings: list[tuple[str, str]]) -> None:
        """Post (version, label) ratings through the HTTP API on eight kept-alive connections; each accepted."""
        def send(chunk: list[tuple[str, str]]) -> None:
            connection = http.client.HTTPConnection(LOOPBACK, self.api_port, timeout=10)
            try:
                for index, (version, label) in enumerate(chunk):
                    body = json.dumps({"response_id": f"chatcmpl-{version}-{index}", "model": MODEL,
                                       "version": version, "label": label})
                    connection.request("POST", PATH, body, {"Content-Type": "application/json", **IDENTITY})
                    answer = connection.getresponse()
                    assert (answer.status, json.loads(answer.read())) == (202, {"accepted": True})
            finally:
                connection.close()

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(send, [ratings[i::8] for i in range(8)]))
        for version, label in ratings:
            self.posted[version, label] = self.posted.get((version, label), 0) + 1

    def scraped(self) -> float:
        """Wait until Prometheus has scraped every posted rating; the time of that scrape."""
        def counted() -> bool:
            seen = {(labels["version"], labels["label"]): value
                    for labels, value in Client(self.prometheus.url).query(f"sum by (version, label) "
                                                                          f"({FEEDBACK_TOTAL})")}
            return seen == self.posted

        wait_until(counted, 20, "the posted ratings scraped", period=0.1)
        [(_, stamp)] = Client(self.prometheus.url).query(f"max(timestamp({FEEDBACK_TOTAL}))")
        return stamp

    def report(self, at: float) -> Result:
        return experiment_report("prod", MODEL, self.prometheus.url, window="5m", environments=self.environments,
                                 at=at)

    def units(self, version: str) -> int:
        """Task-success ratings posted for the arm (successes and failures)."""
        return self.posted.get((version, "success"), 0) + self.posted.get((version, "failure"), 0)


@pytest.fixture(scope="module")
def feedback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Feedback]:
    work = tmp_path_factory.mktemp("feedback-experiment")
    text = (ROOT / "environments" / "Pulumi.prod.yaml").read_text()
    assert PROD_EXPERIMENT in text
    environments = work / "environments"
    environments.mkdir()
    (environments / "Pulumi.prod.yaml").write_text(text.replace(PROD_EXPERIMENT, FEEDBACK_EXPERIMENT))
    config = work / "feedback.json"
    config.write_text(json.dumps({"models": {MODEL: [CONTROL, TREATMENT]}, "tenants": {"search": [MODEL]}}))
    api, metrics, port = free_port(), free_port(), free_port()
    service = Server("feedback", [sys.executable, str(SCRIPT), "--config", str(config), "--host", LOOPBACK,
                                  "--port", str(api), "--metrics-port", str(metrics)],
                     work, f"http://{LOOPBACK}:{api}", "/healthz")
    (work / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [{"job_name": "feedback", "static_configs": [{"targets": [f"{LOOPBACK}:{metrics}"]}]}]}))
    prometheus = Server("prometheus", [str(prerequisites.binary("prometheus")),
                                       f"--config.file={work / 'prometheus.yml'}",
                                       f"--storage.tsdb.path={work / 'data'}",
                                       f"--web.listen-address={LOOPBACK}:{port}", "--log.level=warn"],
                        work, f"http://{LOOPBACK}:{port}", "/-/ready")
    try:
        service.wait_ready(20)
        prometheus.wait_ready(30)
        yield Feedback(api, prometheus, environments)
    finally:
        prometheus.stop()
        service.stop()


def _round() -> list[tuple[str, str]]:
    """One round of ratings: each arm's blocks at prod's weights."""
    return [(version, label) for version, blocks in ROUND.items() for _ in range(blocks) for label in _block(version)]


def test_a_planted_feedback_improvement_is_promoted_at_the_traffic_the_power_calculation_predicted(feedback):
    """'Within': the task-success ratings (both arms) the report predicted at its first look with 200 treatment
    ratings; every look before the traffic reaches it holds, the first look that reaches it promotes."""
    predicted, seen, found = math.nan, [], None
    for look in range(1, 16):
        ratings = _round()
        if look == 1:
            # One rating of each arm and label first, scraped alone: each series then starts at 1 in Prometheus,
            # and increase() extrapolates it to 0, so the report counts every rating posted.
            firsts = sorted({rating: i for i, rating in reversed(list(enumerate(ratings)))}.values())
            feedback.post([ratings[i] for i in firsts])
            feedback.scraped()
            ratings = [r for i, r in enumerate(ratings) if i not in firsts]
        feedback.post(ratings)
        result = feedback.report(feedback.scraped())
        evaluation = result.evaluation
        arms = evaluation.readings["task_success"]
        assert {v: arms[v].n for v in (CONTROL, TREATMENT)} == pytest.approx(
            {v: feedback.units(v) for v in (CONTROL, TREATMENT)}, rel=1e-6), "the report counts every rating"
        seen.append(arms[CONTROL].n + arms[TREATMENT].n)
        if math.isnan(predicted) and arms[TREATMENT].n >= ENOUGH:
            predicted = evaluation.needs[TREATMENT].total_units
        if found is None and evaluation.comparisons[0].state == "better":
            found = seen[-1]
        if evaluation.verdict != "hold":
            break
    assert evaluation.verdict == "promote", result.markdown
    assert evaluation.reasons[TREATMENT] == ["task_success is significantly better and no guardrail is breached"]
    primary = evaluation.comparisons[0]
    planted = (44 / 49) / (40 / 49) - 1  # BLOCKS: +10 %
    assert primary.metric == "task_success" and primary.relative.low <= planted <= primary.relative.high
    assert seen[-2] < predicted <= seen[-1], (f"promoted after {seen[-1]:.0f} ratings, the look before had "
                                              f"{seen[-2]:.0f}; predicted {predicted:.0f}")
    assert evaluation.weights_after == {CONTROL: 75, TREATMENT: 25, "1.1.0": 0}
    assert result.diff is not None
    changed = [line for line in result.diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert changed == ["-          weight: 90", "+          weight: 75",
                       "-          weight: 10", "+          weight: 25"]
    assert "### Next step: 1.0.0 90 → 75 %, 1.0.1 10 → 25 %" in result.markdown
    print(f"\nplanted +10 % task success: promoted after {seen[-1]:.0f} ratings (both arms), the power calculation "
          f"predicted {predicted:.0f} for a 5 % effect; the mSPRT was significant from {found:.0f}; estimate "
          f"{primary.relative.estimate:+.1%} [{primary.relative.low:+.1%}, {primary.relative.high:+.1%}]")
