"""`llmplane experiment report` on a real Prometheus (Debian's) scraping simulated arms of known behaviour: a
planted 10 % TTFT regression is found within the traffic the report's own power calculation predicted, and a
guardrail breach (the canary failing a fifth of its requests) yields a rollback verdict and the rollback diff.

Each scenario runs the vLLM simulator in this process with short outputs (so the arms see ~200 requests a second
and a verdict comes in seconds) and its own Prometheus scraping every second; both start together.
"""

from __future__ import annotations

import io
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from llmplane.monitoring import rules
from llmplane.stacks.cli import main
from llmplane.stacks.experiment_report import Result, experiment_report
from llmplane.toolchain.localstack import Server, start_prometheus
from llmplane.toolchain.simulator import TTFT_REGRESSION, Engine, Simulator, serve

ROOT = Path(__file__).resolve().parents[1]
MODEL, CONTROL, TREATMENT = "llama-3-70b", "1.0.0", "1.0.1"
FAST = Engine(output_tokens=(1, 4))
"""Short answers: many requests a second per arm, the prefill (hence TTFT) unchanged."""
PROD_EXPERIMENT = "primary: time_per_output_token\n          guardrails: [error_rate, ttft]"


@dataclass
class Scenario:
    prometheus: Server
    environments: Path

    def report(self) -> Result:
        return experiment_report("prod", MODEL, self.prometheus.url, window="5m", environments=self.environments)


def _environment(folder: Path, experiment: str) -> Path:
    """prod's environment file, with its 70B experiment's primary and guardrails as given."""
    text = (ROOT / "environments" / "Pulumi.prod.yaml").read_text()
    assert PROD_EXPERIMENT in text
    folder.mkdir()
    (folder / "Pulumi.prod.yaml").write_text(text.replace(PROD_EXPERIMENT, experiment))
    return folder


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Scenario]]:
    started: list[tuple[Simulator, object, Server]] = []
    result = {}
    experiments = {"ttft_regression": "primary: ttft\n          guardrails: [error_rate]",
                   "canary_errors": PROD_EXPERIMENT}
    try:
        for mode, experiment in experiments.items():
            work = tmp_path_factory.mktemp(mode)
            simulator = Simulator(MODEL, CONTROL, TREATMENT, mode, io.StringIO(), seed=27, engine=FAST)
            server = serve(simulator, "127.0.0.1", 0)
            threading.Thread(target=simulator.run, daemon=True).start()
            prometheus = start_prometheus(work, [f"http://127.0.0.1:{server.server_port}/targets"],
                                          rules.AlertParams())
            started.append((simulator, server, prometheus))
            result[mode] = Scenario(prometheus, _environment(work / "environments", experiment))
        for _, _, prometheus in started:
            prometheus.wait_ready(30)
        yield result
    finally:
        for simulator, server, prometheus in started:
            prometheus.stop()
            simulator.stop()
            server.shutdown()


def test_a_planted_ttft_regression_is_found_within_the_traffic_the_power_calculation_predicted(scenarios):
    """'Within': the fixed-horizon requests (both arms) the report predicted at its first look with 200 requests a
    side, before any verdict, bound the requests seen when the verdict comes."""
    scenario, predicted, deadline = scenarios["ttft_regression"], math.nan, time.monotonic() + 50
    while time.monotonic() < deadline:
        result = scenario.report()
        evaluation = result.evaluation
        arms = evaluation.readings["ttft"]
        seen = arms[CONTROL].n + arms[TREATMENT].n
        if math.isnan(predicted) and min(a.n for a in arms.values()) >= 200:
            predicted = evaluation.needs[TREATMENT].total_units
        if evaluation.verdict != "hold":
            break
        time.sleep(2)
    assert evaluation.verdict == "roll back", result.markdown
    assert evaluation.reasons[TREATMENT] == ["ttft is significantly worse"]
    primary = evaluation.comparisons[0]
    assert primary.metric == "ttft" and primary.relative.low <= TTFT_REGRESSION - 1 <= primary.relative.high
    assert seen <= predicted, f"found after {seen:.0f} requests; predicted {predicted:.0f}"
    print(f"\nplanted +10 % TTFT: rolled back after {seen:.0f} requests (both arms), power calculation predicted "
          f"{predicted:.0f} for a 5 % effect; estimate {primary.relative.estimate:+.1%}")
    assert f"- {TREATMENT}: **roll back**: ttft is significantly worse" in result.markdown


def test_a_guardrail_breach_yields_a_rollback_verdict_and_diff(scenarios):
    scenario, deadline = scenarios["canary_errors"], time.monotonic() + 30
    while (result := scenario.report()).evaluation.verdict == "hold" and time.monotonic() < deadline:
        time.sleep(1)
    evaluation = result.evaluation
    assert evaluation.verdict == "roll back", result.markdown
    assert evaluation.reasons[TREATMENT][0] == "guardrail breached: error_rate"
    assert evaluation.weights_after == {CONTROL: 100, TREATMENT: 0, "1.1.0": 0}
    assert result.diff is not None
    changed = [line for line in result.diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert changed == ["-          weight: 90", "+          weight: 100",
                       "-          weight: 10", "+          weight: 0"]


def test_the_command_prints_the_markdown_report(scenarios, capsys):
    scenario = scenarios["canary_errors"]
    code = main(["experiment", "report", "prod", MODEL, "--prometheus", scenario.prometheus.url, "--window", "5m",
                 "--environments", str(scenario.environments)])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("## Experiment `llama-70b-vllm-0-31` on `llama-3-70b`: **roll back**")
    for heading in ("### Arms", "### Treatment against control", "### Traffic still needed", "### Verdict",
                    "### Next step: 1.0.0 90 → 100 %, 1.0.1 10 → 0 %", "```diff"):
        assert heading in out


def test_the_command_names_what_is_wrong(scenarios, capsys):
    environments = str(scenarios["canary_errors"].environments)
    assert main(["experiment", "report", "prod", MODEL, "--experiment", "nope", "--prometheus", "http://127.0.0.1:9",
                 "--environments", environments]) == 2
    assert capsys.readouterr().err == ("llmplane: model 'llama-3-70b' has no experiment 'nope' (it has "
                                       "llama-70b-vllm-0-31)\n")
    assert main(["experiment", "report", "prod", MODEL, "--prometheus", "http://127.0.0.1:9",
                 "--environments", environments]) == 1
    assert capsys.readouterr().err.startswith("llmplane: cannot reach Prometheus at http://127.0.0.1:9")


def test_applying_a_rollback_writes_the_weights_and_the_verdict_the_policy_then_holds_to(scenarios, capsys, tmp_path):
    """What the scheduled workflow runs: `--apply` edits the environment file (weights and the recorded verdict),
    `--summary` says what happened; the edited file validates and its plan passes every mandatory policy."""
    import json
    import shutil

    from llmplane.spec import load_spec
    from llmplane.stacks.environments import read_stack_config

    scenario = scenarios["canary_errors"]
    folder = tmp_path / "environments"
    shutil.copytree(scenario.environments, folder)
    summary = tmp_path / "summary.json"
    deadline = time.monotonic() + 60
    while True:
        code = main(["experiment", "report", "prod", MODEL, "--prometheus", scenario.prometheus.url, "--window", "5m",
                     "--environments", str(folder), "--apply", "--summary", str(summary)])
        assert code == 0
        verdict = json.loads(summary.read_text())
        if verdict["changed"] or time.monotonic() > deadline:
            break
        capsys.readouterr()
        time.sleep(1)
    markdown = capsys.readouterr().out.split("## Experiment")[-1]
    assert verdict["verdict"] == "roll back" and verdict["changed"] is True
    spec = load_spec(read_stack_config("prod", folder / "Pulumi.prod.yaml").values, "prod")
    [experiment] = spec.models[MODEL].experiments
    assert (experiment.verdict.decision, experiment.verdict.weight) == ("rollback", 0)
    assert experiment.verdict.report_sha256 == verdict["report_sha256"]
    assert {v.version: v.weight for v in spec.models[MODEL].versions} == {CONTROL: 100, TREATMENT: 0, "1.1.0": 0}
    assert markdown.startswith(" `llama-70b-vllm-0-31` on `llama-3-70b`: **roll back**"), "the report was printed"
    assert main(["plan", "prod", "--environments", str(folder)]) == 0, capsys.readouterr().err


def test_the_scheduled_workflow_opens_the_rollback_pull_request_and_raises_an_alert(scenarios, tmp_path):
    """.ci/experiments.sh, as the daily workflow runs it, in a clone whose prod is the guardrail scenario: a
    branch with the rollback and the recorded verdict is pushed, a pull request labelled rollback is opened with
    the report, and ExperimentGuardrailBreached is posted to the Alertmanager API."""
    import http.server
    import json
    import os
    import subprocess
    import sys

    scenario = scenarios["canary_errors"]
    deadline = time.monotonic() + 60
    while scenario.report().evaluation.verdict != "roll back" and time.monotonic() < deadline:
        time.sleep(1)
    origin, clone = tmp_path / "origin.git", tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--bare", str(ROOT), str(origin)], check=True)
    subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True)
    git = ["git", "-C", str(clone), "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    (clone / "environments" / "Pulumi.prod.yaml").write_text((scenario.environments / "Pulumi.prod.yaml").read_text())
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-am", "the guardrail scenario"], check=True)
    subprocess.run([*git, "push", "-q", "origin", "HEAD:main"], check=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gh").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "gh.log"}\n[ "$1 $2" != "pr view" ]\n')
    (bin_dir / "llmplane").write_text(f'#!/bin/sh\nexec {sys.executable} -m llmplane.stacks.cli "$@"\n')
    for tool in ("gh", "llmplane"):
        (bin_dir / tool).chmod(0o755)
    alerts: list[bytes] = []

    class Alertmanager(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            alerts.append(self.path.encode() + b" " + self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Alertmanager)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        done = subprocess.run(["bash", str(clone / ".ci" / "experiments.sh")], cwd=clone, capture_output=True,
                              text=True, timeout=120, check=False, env={
                                  **os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(clone),
                                  "ENVIRONMENT": "prod", "PROMETHEUS_URL": scenario.prometheus.url,
                                  "ALERTMANAGER_URL": f"http://127.0.0.1:{server.server_port}",
                                  "LLMPLANE": str(bin_dir / "llmplane")})
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "experiments: prod llama-3-70b llama-70b-vllm-0-31: roll back" in done.stdout
    pushed = subprocess.run(["git", "-C", str(origin), "show", "experiments/prod/llama-70b-vllm-0-31:"
                             "environments/Pulumi.prod.yaml"], capture_output=True, text=True, check=True).stdout
    assert "decision: rollback" in pushed.replace('"', "")
    calls = (tmp_path / "gh.log").read_text().splitlines()
    assert calls[-1].startswith("pr create --head experiments/prod/llama-70b-vllm-0-31 --base main --title "
                                "Experiment llama-70b-vllm-0-31 (prod): roll back --body-file ")
    assert calls[-1].endswith("--label experiment --label rollback")
    [alert] = alerts
    path, _, body = alert.partition(b" ")
    assert path == b"/api/v2/alerts"
    assert json.loads(body)[0]["labels"] == {"alertname": "ExperimentGuardrailBreached", "severity": "page",
                                             "environment": "prod", "model": MODEL,
                                             "experiment": "llama-70b-vllm-0-31"}
