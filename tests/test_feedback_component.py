"""The feedback service as deployed, under Pulumi mocks: an authenticated `/feedback` route on the gateway, a pod
only the gateway may call and only Prometheus may scrape, the server and its configuration as shipped, and the
policy pack satisfied."""

from __future__ import annotations

import importlib.util
import json

import pulumi
import pytest
from llmplane.components.gateway.tenant_budgets import CLIENT_HEADER, TenantBudget, secret_name
from llmplane.components.gateway.tenants import GatewayTenants, GatewayTenantsArgs
from llmplane.components.serving.feedback import SCRIPT, FeedbackService, FeedbackServiceArgs
from llmplane.stacks.environments import read_stack_config
from llmplane.stacks.plan import Plan, run_plan
from llmplane.stacks.plan_policies import evaluate

from tests.planning import DEPLOYMENT, HTTP_ROUTE, NETWORK_POLICY, SERVICE, SERVICE_MONITOR

SECURITY_POLICY = "kubernetes:gateway.envoyproxy.io/v1alpha1:SecurityPolicy"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"


def _args(**changes) -> FeedbackServiceArgs:
    values = {"versions": {"llama-3-70b": ["1.0.0", "1.0.1"]},
              "tenants": {"search": ["llama-3-70b"], "batch-eval": ["llama-3-70b"]},
              "namespace": "llmplane", "hostnames": ["llm.example.com", "c1.llm.example.com"],
              "gateway_name": "llmplane", **changes}
    return FeedbackServiceArgs(**values)


def _program() -> None:
    GatewayTenants("c1-tenants", GatewayTenantsArgs(
        tenants=[TenantBudget("search", ("llama-3-70b",), ("searchApiKey",), tokens_per_minute=10_000),
                 TenantBudget("batch-eval", ("llama-3-70b",), ("batchApiKey",), tokens_per_day=1_000_000)],
        api_keys={"searchApiKey": pulumi.Output.secret("sk-search"), "batchApiKey": pulumi.Output.secret("sk-b")},
        routes={}, routes_namespace="llmplane", gateway_name="llmplane", gateway_namespace="llmplane-gateway"))
    FeedbackService("c1-feedback", _args())


@pytest.fixture(scope="module")
def plan() -> Plan:
    return run_plan(read_stack_config("local"), _program)


def _one(plan: Plan, type_: str) -> dict:
    [found] = [r.inputs for r in plan.of_type(type_) if "feedback" in r.name]
    return found


def test_clients_post_to_feedback_on_the_gateway_and_reach_the_service(plan: Plan):
    route = _one(plan, HTTP_ROUTE)
    assert route["spec"]["parentRefs"] == [{"name": "llmplane", "namespace": "llmplane-gateway"}]
    assert route["spec"]["hostnames"] == ["llm.example.com", "c1.llm.example.com"]
    assert route["spec"]["rules"] == [{"matches": [{"path": {"type": "Exact", "value": "/feedback"},
                                                    "method": "POST"}],
                                       "backendRefs": [{"name": "llmplane-feedback", "port": 8080}]}]
    service = _one(plan, SERVICE)
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"api": 8080, "metrics": 9090}


def test_the_route_takes_the_tenants_keys_and_forwards_the_header_the_server_reads(plan: Plan):
    policy = _one(plan, SECURITY_POLICY)
    assert policy["spec"]["targetRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute",
                                             "name": "llmplane-feedback"}]
    auth = policy["spec"]["apiKeyAuth"]
    assert {ref["name"] for ref in auth["credentialRefs"]} == {secret_name("search"), secret_name("batch-eval")}
    spec = importlib.util.spec_from_file_location("feedback_server_constants", SCRIPT)
    server = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(server)
    assert auth["forwardClientIDHeader"] == CLIENT_HEADER == server.CLIENT_HEADER


def test_only_the_gateway_calls_it_only_monitoring_scrapes_it_and_it_reaches_only_dns_and_https(plan: Plan):
    policy = _one(plan, NETWORK_POLICY)["spec"]
    assert policy["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "feedback",
                                                     "app.kubernetes.io/instance": "llmplane-feedback"}}
    assert policy["ingress"] == [
        {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "llmplane-gateway"}}}],
         "ports": [{"port": 8080, "protocol": "TCP"}]},
        {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
         "ports": [{"port": 9090, "protocol": "TCP"}]},
    ]
    assert {p["port"] for rule in policy["egress"] for p in rule["ports"]} == {53, 443}
    monitor = _one(plan, SERVICE_MONITOR)["spec"]
    assert monitor["endpoints"][0]["port"] == "metrics"


def test_the_pod_runs_the_shipped_server_with_its_configuration_and_a_hash_pinned_client(plan: Plan):
    files = _one(plan, CONFIG_MAP)["data"]
    assert files["feedback_server.py"] == SCRIPT.read_text(encoding="utf-8")
    assert json.loads(files["config.json"]) == {
        "models": {"llama-3-70b": ["1.0.0", "1.0.1"]},
        "tenants": {"batch-eval": ["llama-3-70b"], "search": ["llama-3-70b"]}}
    assert files["requirements.txt"].startswith("prometheus-client==0.26.0 --hash=sha256:")
    pod = _one(plan, DEPLOYMENT)["spec"]["template"]["spec"]
    [install], [server] = pod["initContainers"], pod["containers"]
    assert "--require-hashes" in install["command"]
    assert server["command"][:2] == ["python3", "/etc/llmplane-feedback/feedback_server.py"]
    assert all("@sha256:" in c["image"] for c in (install, server))


def test_the_policy_pack_finds_nothing_to_refuse(plan: Plan):
    assert [v for v in evaluate(plan) if "feedback" in v["urn"]] == []


@pytest.mark.parametrize(("changes", "message"), [
    ({"versions": {}}, "FeedbackService: versions is empty; give the versions of at least one model under "
                       "experiment, or do not deploy the service"),
    ({"versions": {"llama-3-70b": []}}, "FeedbackService: versions of llama-3-70b is empty; give the versions "
                                        "that answer users"),
    ({"tenants": {}}, "FeedbackService: tenants is empty; the tenant of a rating comes from its API key, so give "
                      "the tenants that call the models under experiment"),
    ({"tenants": {"search": ["llama-3-8b"]}}, "FeedbackService: tenants name llama-3-8b, which versions does not "
                                              "list; list only models under experiment"),
    ({"replicas": 0}, "FeedbackService: replicas is 0; give at least 1"),
])
def test_impossible_arguments_are_refused_with_what_to_do(changes: dict, message: str):
    with pytest.raises(ValueError) as refused:
        _args(**changes)
    assert str(refused.value) == message
