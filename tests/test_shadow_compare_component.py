"""The shadow comparator as deployed, under Pulumi mocks: the route's mirror reaches its Service, its pod calls the
model's versions at their Services and nothing else but DNS and the wheel index, only the gateway may call it and
only monitoring scrape it, it runs the shipped server with the libraries the tests ran, and the policy pack has
nothing to refuse."""

from __future__ import annotations

import json
from importlib.metadata import version

import pytest
from llmplane.components.serving.shadow_compare import (
    POD_LABELS,
    SCRIPT,
    ShadowComparator,
    ShadowComparatorArgs,
    mirror_backend_ref,
)
from llmplane.stacks.environments import read_stack_config
from llmplane.stacks.plan import Plan, run_plan
from llmplane.stacks.plan_policies import evaluate

from tests.planning import DEPLOYMENT, NETWORK_POLICY, SERVICE, SERVICE_MONITOR

CONFIG_MAP = "kubernetes:core/v1:ConfigMap"


def _args(**changes) -> ShadowComparatorArgs:
    values = {"model_name": "llama-3-8b", "stable_version": "1.0.0", "shadow_versions": ["1.1.0"],
              "namespace": "llmplane", **changes}
    return ShadowComparatorArgs(**values)


@pytest.fixture(scope="module")
def plan() -> Plan:
    return run_plan(read_stack_config("local"), lambda: ShadowComparator("c1-llama-3-8b-shadow", _args()))


def _one(plan: Plan, type_: str) -> dict:
    [found] = [r.inputs for r in plan.of_type(type_) if "shadow" in r.name]
    return found


def test_the_mirror_reaches_the_comparators_api(plan: Plan):
    service = _one(plan, SERVICE)
    assert mirror_backend_ref("llama-3-8b") == {"name": "shadow-compare-llama-3-8b", "port": 8080}
    assert service["metadata"]["name"] == "shadow-compare-llama-3-8b"
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"api": 8080, "metrics": 9090}


def test_it_calls_stable_and_the_shadow_at_their_services(plan: Plan):
    files = _one(plan, CONFIG_MAP)["data"]
    assert files["shadow_compare.py"] == SCRIPT.read_text(encoding="utf-8")
    assert json.loads(files["config.json"]) == {
        "model": "llama-3-8b", "stable": {"version": "1.0.0", "url": "http://llama-3-8b-v1-0-0:8000"},
        "shadows": [{"version": "1.1.0", "url": "http://llama-3-8b-v1-1-0:8000"}]}


def test_only_the_gateway_calls_it_and_it_reaches_only_the_models_pods_dns_and_https(plan: Plan):
    policy = _one(plan, NETWORK_POLICY)["spec"]
    assert policy["ingress"] == [
        {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "llmplane-gateway"}}}],
         "ports": [{"port": 8080, "protocol": "TCP"}]},
        {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
         "ports": [{"port": 9090, "protocol": "TCP"}]},
    ]
    assert policy["egress"][0] == {"to": [{"podSelector": {"matchLabels": {"llmplane.dev/model": "llama-3-8b"}}}],
                                   "ports": [{"port": 8000, "protocol": "TCP"}]}
    assert {p["port"] for rule in policy["egress"] for p in rule["ports"]} == {53, 443, 8000}
    assert _one(plan, SERVICE_MONITOR)["spec"]["endpoints"][0]["port"] == "metrics"


def test_one_pod_runs_the_shipped_server_with_the_libraries_the_tests_ran(plan: Plan):
    deployment = _one(plan, DEPLOYMENT)["spec"]
    assert deployment["replicas"] == 1
    pod = deployment["template"]
    assert POD_LABELS.items() <= pod["metadata"]["labels"].items()
    [install], [server] = pod["spec"]["initContainers"], pod["spec"]["containers"]
    assert "--require-hashes" in install["command"]
    assert server["command"][:2] == ["python3", "/etc/llmplane-shadow/shadow_compare.py"]
    assert all("@sha256:" in c["image"] for c in (install, server))
    pins = {line.split("==")[0]: line.split("==")[1].split()[0]
            for line in _one(plan, CONFIG_MAP)["data"]["requirements.txt"].splitlines()}
    assert pins == {"prometheus-client": version("prometheus-client"), "rapidfuzz": version("rapidfuzz")}


def test_without_prometheus_operator_there_is_no_service_monitor():
    plan = run_plan(read_stack_config("local"), lambda: ShadowComparator(
        "c1-llama-3-8b-shadow", _args(service_monitor=False)))
    assert plan.of_type(SERVICE_MONITOR) == []
    assert len(plan.of_type(DEPLOYMENT)) == 1


def test_the_policy_pack_finds_nothing_to_refuse(plan: Plan):
    assert [v for v in evaluate(plan) if "shadow" in v["urn"]] == []


@pytest.mark.parametrize(("changes", "message"), [
    ({"shadow_versions": []}, "ShadowComparator llama-3-8b: no shadow version; deploy a comparator only for a model "
                              "with a version of role shadow"),
    ({"shadow_versions": ["1.0.0"]}, "ShadowComparator llama-3-8b: 1.0.0 is both stable and a shadow; compare a "
                                     "shadow with a different stable version"),
    ({"queue": 0}, "ShadowComparator llama-3-8b: queue 0 and workers 4 must be at least 1"),
])
def test_impossible_arguments_are_refused_with_what_to_do(changes: dict, message: str):
    with pytest.raises(ValueError) as refused:
        _args(**changes)
    assert str(refused.value) == message
