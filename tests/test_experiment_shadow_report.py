"""`llmplane experiment report` on a shadow experiment: prod's 70B evaluates its shadow 1.1.0 beside the canary
experiment, and the report reads what the real shadow comparator (components/serving/scripts/shadow_compare.py),
run between two stand-in vLLM servers of known behaviour, exported to a real Prometheus (Debian's, scraping every
second). A shadow that answers like stable is ready to canary; one that is slower, truncated and answering
something else is not, with each reason; neither changes a weight. Expected values are worked out from the
planted answers."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from llmplane.components.serving.shadow_compare import SCRIPT
from llmplane.experiments import shadow, shadow_report
from llmplane.experiments.prometheus import Client
from llmplane.spec import load_spec
from llmplane.spec.models import Experiment
from llmplane.stacks.cli import main
from llmplane.stacks.environments import read_stack_config
from llmplane.stacks.experiment_report import Result, experiment_report
from llmplane.toolchain import prerequisites
from llmplane.toolchain.localstack import LOOPBACK, Server, free_port, wait_until

from tests.shadow_arms import Arm, Comparator, Reply, both

ROOT = Path(__file__).resolve().parents[1]
MODEL, STABLE, SHADOW = "llama-3-70b", "1.0.0", "1.1.0"
NAME = "llama-70b-shadow-1-1"
CANARY_EXPERIMENT = ("guardrails: [error_rate, ttft]\n          minimumDetectableEffect: 0.05\n          maxDays: 14\n"
                     "          steps: [10, 25, 50, 100]\n")
SHADOW_EXPERIMENT = (f"        - name: {NAME}\n          strategy: shadow\n          control: {STABLE}\n"
                     f"          treatments: [{SHADOW}]\n          primary: e2e_latency\n"
                     "          guardrails: [error_rate]\n          minimumDetectableEffect: 0.05\n"
                     "          maxDays: 7\n")
SAME = "Paris is the capital of France and its largest city"
SAT, LAY = "The cat sat on the mat.", "the cat lay on the mat"
"""A greedy answer reworded: ROUGE-L F1 2 x 5 / (6 + 6)."""
OTHER = "Lorem ipsum dolor"
"""What a shadow with a broken chat template answers: no word in common with stable's."""


@dataclass
class Scenario:
    comparator: Comparator
    prometheus: Server
    environments: Path
    at: float = 0.0

    def report(self) -> Result:
        return experiment_report("prod", MODEL, self.prometheus.url, name=NAME, window="10m",
                                 environments=self.environments, at=self.at)


def _start(work: Path) -> Scenario:
    """The comparator of prod's 70B between stand-ins of 1.0.0 and 1.1.0, and a Prometheus scraping it."""
    stable, shadow_arm = Arm().start(), Arm().start()
    config = work / "compare.json"
    config.write_text(json.dumps({"model": MODEL, "stable": {"version": STABLE, "url": stable.url},
                                  "shadows": [{"version": SHADOW, "url": shadow_arm.url}]}))
    api, metrics, port = free_port(), free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--config", str(config), "--host", LOOPBACK, "--port", str(api),
         "--metrics-port", str(metrics), "--queue", "256"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    comparator = Comparator(f"http://{LOOPBACK}:{api}", f"http://{LOOPBACK}:{metrics}", process, stable, shadow_arm)
    (work / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [{"job_name": "shadow-compare",
                            "static_configs": [{"targets": [f"{LOOPBACK}:{metrics}"]}]}]}))
    prometheus = Server("prometheus", [str(prerequisites.binary("prometheus")),
                                       f"--config.file={work / 'prometheus.yml'}",
                                       f"--storage.tsdb.path={work / 'data'}",
                                       f"--web.listen-address={LOOPBACK}:{port}", "--log.level=warn"],
                        work, f"http://{LOOPBACK}:{port}", "/-/ready")
    text = (ROOT / "environments" / "Pulumi.prod.yaml").read_text()
    assert text.count(CANARY_EXPERIMENT) == 1
    environments = work / "environments"
    environments.mkdir()
    (environments / "Pulumi.prod.yaml").write_text(text.replace(CANARY_EXPERIMENT,
                                                                CANARY_EXPERIMENT + SHADOW_EXPERIMENT))
    return Scenario(comparator, prometheus, environments)


def _count(url: str, expr: str) -> float:
    return sum(value for _, value in Client(url).query(expr))


def _run(scenario: Scenario, prompts: dict[str, tuple[Reply, Reply, float]]) -> None:
    """Mirror each prompt once (with its temperature) after two scrapes of the series at 0, and read at the scrape
    that holds every comparison."""
    url = scenario.prometheus.url
    wait_until(lambda: _count(url, f'count_over_time({shadow.MIRRORED}{{outcome="queued"}}[1m])') >= 2, 30,
               "two scrapes of the comparator")
    for prompt, (stable, shadow_reply, temperature) in prompts.items():
        both(scenario.comparator, prompt, stable, shadow_reply)
        scenario.comparator.mirror(prompt, temperature=temperature)
    wait_until(lambda: _count(url, f"{shadow.SIMILARITY}_count") == len(prompts), 30, "the comparisons scraped",
               period=0.1)
    [(_, scenario.at)] = Client(url).query(f"max(timestamp({shadow.SIMILARITY}_count))")


def _alike() -> dict[str, tuple[Reply, Reply, float]]:
    """40 greedy requests (30 answered alike, 10 reworded) and 10 sampled ones answered alike; same speed."""
    prompts = {f"same-{i}": (Reply(SAME, tokens=10, delay=0.05), Reply(SAME, tokens=10, delay=0.05), 0.0)
               for i in range(30)}
    prompts |= {f"reworded-{i}": (Reply(SAT, tokens=6, delay=0.05), Reply(LAY, tokens=6, delay=0.05), 0.0)
                for i in range(10)}
    prompts |= {f"sampled-{i}": (Reply(SAME, tokens=10, delay=0.05), Reply(SAME, tokens=10, delay=0.05), 0.7)
                for i in range(10)}
    return prompts


def _broken() -> dict[str, tuple[Reply, Reply, float]]:
    """30 greedy requests the shadow answers more slowly (170 ms against 50), in 3 tokens against 10, and with
    words stable never uses."""
    return {f"broken-{i}": (Reply(SAME, tokens=10, delay=0.05), Reply(OTHER, tokens=3, delay=0.17), 0.0)
            for i in range(30)}


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Scenario]]:
    started: dict[str, Scenario] = {}
    try:
        for name in ("alike", "broken"):
            started[name] = _start(tmp_path_factory.mktemp(f"shadow-{name}"))
        for scenario in started.values():
            scenario.prometheus.wait_ready(30)
        _run(started["alike"], _alike())
        _run(started["broken"], _broken())
        yield started
    finally:
        for scenario in started.values():
            scenario.prometheus.stop()
            scenario.comparator.stop()


def _row(result: Result, metric: str) -> shadow_report.Judged:
    [row] = [j for j in result.evaluation.judged[SHADOW] if j.metric.name == metric]
    return row


def test_a_shadow_that_answers_like_stable_is_ready_to_canary(scenarios):
    result = scenarios["alike"].report()
    evaluation = result.evaluation
    assert isinstance(evaluation, shadow_report.ShadowEvaluation), "a shadow experiment gets the shadow report"
    assert evaluation.verdict == "ready to canary", result.markdown
    assert result.diff is None and result.edited is None and evaluation.weights_after is None
    summary = evaluation.summaries[SHADOW]
    assert summary.mirrored["queued"] == 50 and summary.mirrored["dropped"] == 0
    greedy, sampled, every = (summary.agreement[k] for k in ("greedy", "sampled", "all"))
    assert (greedy.pairs, sampled.pairs, every.pairs) == (40, 10, 50)
    assert (greedy.exact.mean, every.exact.mean) == (pytest.approx(30 / 40), pytest.approx(40 / 50))
    assert greedy.similarity.mean == pytest.approx((30 + 10 * 10 / 12) / 40)
    assert greedy.similarity.low >= shadow_report.MIN_SIMILARITY
    assert evaluation.reasons[SHADOW][0].startswith("no metric is worse beyond the tolerance of 5.0%; mean "
                                                    "similarity on greedy requests 0.958")
    assert not any(row.blocks for row in evaluation.judged[SHADOW])
    assert _row(result, "output_tokens").metric.change.estimate == pytest.approx(0)


def test_a_slow_truncated_shadow_answering_something_else_is_not_ready(scenarios):
    result = scenarios["broken"].report()
    evaluation = result.evaluation
    assert evaluation.verdict == "not ready", result.markdown
    reasons = evaluation.reasons[SHADOW]
    assert [r.split(" (")[0] for r in reasons[:2]] == [
        "end-to-end latency is worse beyond the tolerance of 5.0%", "output tokens is worse beyond the tolerance "
        "of 5.0%"]
    assert reasons[1].endswith("(-70.00 %)"), "3 tokens against 10"
    assert reasons[2].startswith("mean similarity on greedy requests 0.000") and reasons[2].endswith(
        "is not wholly at or above 0.5")
    assert len(reasons) == 3, "refusals and failed calls are alike"
    latency = _row(result, "latency").metric
    assert latency.stable.mean < 0.17 <= latency.shadow.mean
    assert result.diff is None and evaluation.weights_after is None


def test_the_command_prints_the_shadow_report_and_applies_nothing(scenarios, capsys, tmp_path):
    """Read now (Prometheus extrapolates to the query's time, so counts are not pinned here)."""
    scenario = scenarios["alike"]
    before = (scenario.environments / "Pulumi.prod.yaml").read_text()
    summary = tmp_path / "summary.json"
    code = main(["experiment", "report", "prod", MODEL, "--experiment", NAME, "--prometheus",
                 scenario.prometheus.url, "--window", "10m", "--environments", str(scenario.environments),
                 "--apply", "--summary", str(summary)])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith(f"## Shadow experiment `{NAME}` on `{MODEL}`: **")
    for heading in (f"### Shadow {SHADOW} against stable {STABLE}", "| end-to-end latency |", "| output tokens |",
                    "| refusal rate |", "| failed calls |", "| greedy | ", "| sampled | ", "| all | ", "queued ",
                    "### Verdict", "No weight change: a shadow takes no traffic."):
        assert heading in out
    assert "```diff" not in out
    verdict = json.loads(summary.read_text())
    assert verdict["experiment"] == NAME and verdict["changed"] is False
    assert verdict["verdict"] in ("ready to canary", "not ready")
    assert (scenario.environments / "Pulumi.prod.yaml").read_text() == before
    spec = load_spec(read_stack_config("prod", scenario.environments / "Pulumi.prod.yaml").values, "prod")
    assert [e.strategy for e in spec.models[MODEL].experiments] == ["canary", "shadow"]


def _agreement(pairs: float, exact: float, similarity: float, half: float) -> shadow.Agreement:
    return shadow.Agreement(pairs, shadow.Estimate(pairs, exact, exact - half, exact + half),
                            shadow.Estimate(pairs, similarity, similarity - half, similarity + half))


def test_a_shadow_failing_its_calls_is_not_ready_though_its_answers_agree(tmp_path):
    """The comparator compares only the pairs both arms answered; the failures are judged on their own."""
    experiment = _experiment(tmp_path)
    summary = shadow.ShadowSummary(MODEL, SHADOW, 600, {"queued": 2300}, {"stable": 0, "shadow": 300}, [],
                                   {key: _agreement(2000, 0.9, 0.97, 0.01) for key in ("greedy", "all")})
    evaluation = shadow_report.judge(experiment, {SHADOW: summary}, 0.05)
    [row] = evaluation.judged[SHADOW]
    assert (row.metric.stable.mean, row.metric.shadow.mean) == (0, pytest.approx(300 / 2300))
    assert evaluation.reasons[SHADOW] == ["failed calls is worse beyond the tolerance of 5.0% (+0.1304 (absolute))"]
    assert evaluation.verdict == "not ready"


def test_a_shadow_not_yet_compared_or_with_too_few_pairs_is_not_ready(tmp_path):
    experiment = _experiment(tmp_path)
    empty = shadow.ShadowSummary(MODEL, SHADOW, 600, {}, {}, [], {})
    few = shadow.ShadowSummary(MODEL, SHADOW, 600, {"queued": 5}, {}, [], {"greedy": _agreement(5, 1, 0.95, 0.6)})
    assert shadow_report.judge(experiment, {SHADOW: empty}, 0.05).reasons[SHADOW] == [
        "no mirrored request has been compared yet"]
    assert shadow_report.judge(experiment, {SHADOW: few}, 0.05).reasons[SHADOW] == [
        "mean similarity on greedy requests 0.950, always-valid interval [0.350, 1.550] over 5 pairs, is not "
        "wholly at or above 0.5"]


def _experiment(folder: Path) -> Experiment:
    """The shadow experiment as prod's environment file, with it added, gives it."""
    text = (ROOT / "environments" / "Pulumi.prod.yaml").read_text()
    (folder / "Pulumi.prod.yaml").write_text(text.replace(CANARY_EXPERIMENT, CANARY_EXPERIMENT + SHADOW_EXPERIMENT))
    spec = load_spec(read_stack_config("prod", folder / "Pulumi.prod.yaml").values, "prod")
    [experiment] = [e for e in spec.models[MODEL].experiments if e.name == NAME]
    return experiment
