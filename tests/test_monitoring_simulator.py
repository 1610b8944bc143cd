"""The vLLM simulator's load model: each fault mode shows the symptom its alerts look for."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import urllib.request

import pytest
from llmplane.monitoring import vllm_metrics as vm
from llmplane.toolchain.localstack import free_port, http_ok, wait_until
from llmplane.toolchain.simulator import Simulator


def run(mode: str, seconds: float = 60) -> tuple[Simulator, list[dict]]:
    """Fast-forward a simulator through `seconds` of simulated time."""
    log = io.StringIO()
    simulator = Simulator("llama-3-8b", "1.0.0", "1.1.0", mode, log, seed=1)
    for step in range(1, int(seconds * 10) + 1):
        simulator.step(step * 0.1, 0.1)
    return simulator, [json.loads(line) for line in log.getvalue().splitlines()]


def value(simulator: Simulator, role: str, name: str, **labels: str) -> float:
    sample = simulator.registries[role].get_sample_value(name, labels or None)
    assert sample is not None, f"{role} exposes no {name}{labels}"
    return sample


def served(simulator: Simulator, role: str) -> dict[str, str]:
    version = "1.0.0" if role == "baseline" else "1.1.0"
    return {"model_name": f"llama-3-8b:{version}", "engine": "0"}


def ttft_share_over(simulator: Simulator, role: str, seconds: str) -> float:
    labels = served(simulator, role)
    fast = value(simulator, role, "vllm:time_to_first_token_seconds_bucket", **labels, le=seconds)
    return 1 - fast / value(simulator, role, "vllm:time_to_first_token_seconds_count", **labels)


def error_share(simulator: Simulator, role: str) -> float:
    labels = served(simulator, role)
    counts = {r: value(simulator, role, "vllm:request_success_total", **labels, finished_reason=r)
              for r in vm.FINISHED_REASONS}
    return counts["error"] / sum(counts.values())


@pytest.fixture(scope="module")
def normal() -> tuple[Simulator, list[dict]]:
    return run("normal")


def test_normal_load_is_healthy(normal):
    simulator, _ = normal
    for replica in simulator.replicas:
        role, labels = replica.role, served(simulator, replica.role)
        assert value(simulator, role, "vllm:num_requests_waiting", **labels) == 0
        assert value(simulator, role, "vllm:kv_cache_usage_perc", **labels) < 0.8
        assert value(simulator, role, "vllm:num_preemptions_total", **labels) == 0
        assert ttft_share_over(simulator, role, "2.5") == 0
        assert error_share(simulator, role) == 0
        assert value(simulator, role, "DCGM_FI_DEV_XID_ERRORS", **replica.gpu_labels) == 0


def test_the_canary_gets_less_traffic_than_the_baseline(normal):
    simulator, _ = normal
    requests = {role: sum(value(simulator, role, "vllm:request_success_total", **served(simulator, role),
                                finished_reason=r) for r in vm.FINISHED_REASONS)
                for role in ("baseline", "canary")}
    assert requests["canary"] < 0.7 * requests["baseline"]


def test_every_finished_request_is_one_json_log_line(normal):
    simulator, lines = normal
    finished = sum(value(simulator, role, "vllm:e2e_request_latency_seconds_count", **served(simulator, role))
                   for role in ("baseline", "canary"))
    assert len(lines) == finished > 0
    assert {line["model_name"] for line in lines} == {"llama-3-8b:1.0.0", "llama-3-8b:1.1.0"}
    assert set(lines[0]) >= {"ts", "level", "model_name", "request_id", "status", "finished_reason",
                             "prompt_tokens", "generation_tokens", "ttft_seconds", "e2e_seconds"}


def test_overload_builds_a_queue_fills_the_kv_cache_and_preempts():
    simulator, _ = run("overload")
    for role in ("baseline", "canary"):
        labels = served(simulator, role)
        assert value(simulator, role, "vllm:num_requests_waiting", **labels) > 100
        assert value(simulator, role, "vllm:kv_cache_usage_perc", **labels) > 0.9
        assert value(simulator, role, "vllm:num_preemptions_total", **labels) > 10
        assert ttft_share_over(simulator, role, "2.5") > 0.5


def test_error_burst_fails_a_fifth_of_requests_on_both_versions():
    simulator, lines = run("error_burst")
    for role in ("baseline", "canary"):
        assert 0.1 < error_share(simulator, role) < 0.3
    failed = [line for line in lines if line["finished_reason"] == "error"]
    assert failed and all(line["level"] == "error" and line["status"] == 500 for line in failed)


def test_slow_canary_is_slower_to_first_token_than_its_baseline():
    simulator, _ = run("slow_canary")
    assert ttft_share_over(simulator, "canary", "0.25") > 0.3
    assert ttft_share_over(simulator, "baseline", "0.25") == 0
    assert ttft_share_over(simulator, "canary", "2.5") == 0  # slower, yet within the SLO


def test_gpu_fault_reports_xid_79_and_an_unready_canary_deployment():
    simulator, _ = run("gpu_fault", seconds=5)
    canary = simulator.replicas[1]
    assert value(simulator, "canary", "DCGM_FI_DEV_XID_ERRORS", **canary.gpu_labels) == 79
    keys = {"namespace": "llm", "deployment": "llama-3-8b-1-1-0"}
    assert value(simulator, "kube-state-metrics", "kube_deployment_spec_replicas", **keys) == 1
    assert value(simulator, "kube-state-metrics", "kube_deployment_status_replicas_ready", **keys) == 0


def test_the_command_line_serves_metrics_and_service_discovery(tmp_path):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "llmplane.toolchain.simulator", "--port", str(port),
                                "--mode", "normal", "--log", str(tmp_path / "requests.log")])
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/health"), 20, "simulator")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/targets") as response:
            targets = json.load(response)
        paths = [group["labels"]["__metrics_path__"] for group in targets]
        assert paths == ["/metrics/baseline", "/metrics/canary", "/metrics/kube-state-metrics"]
        assert targets[1]["labels"]["__meta_kubernetes_pod_label_llmplane_dev_model_version"] == "1.1.0"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics/canary") as response:
            assert b'vllm:num_requests_running{engine="0",model_name="llama-3-8b:1.1.0"}' in response.read()
        wait_until(lambda: (tmp_path / "requests.log").stat().st_size > 0, 20, "request log")
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_load_can_be_switched_on_and_off_and_the_queue_follows():
    """The autoscaling loop drives the simulator so: overload builds a queue, idle drains it."""
    simulator, _ = run("overload", seconds=60)
    waiting = value(simulator, "baseline", "vllm:num_requests_waiting", **served(simulator, "baseline"))
    assert waiting > 10
    simulator.set_mode("idle")
    for step in range(601, 601 + 3000):
        simulator.step(step * 0.1, 0.1)
    assert value(simulator, "baseline", "vllm:num_requests_waiting", **served(simulator, "baseline")) == 0
