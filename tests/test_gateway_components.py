"""The gateway components under Pulumi mocks: what they register, that tenant keys stay secrets, and that what
they build satisfies the gateway policies (and a route built the old way does not)."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import yaml
from llmplane.components.gateway.inference_pool import EPP_IMAGE, ModelInferencePool, ModelInferencePoolArgs, epp_config
from llmplane.components.gateway.route_refs import pool_backend_ref
from llmplane.components.gateway.tenant_budgets import TenantBudget
from llmplane.components.gateway.tenants import GatewayTenants, GatewayTenantsArgs
from llmplane.policies.base import Context
from llmplane.policies.gateway import RULES as GATEWAY_RULES
from llmplane.stacks.environments import read_stack_config
from llmplane.stacks.plan import run_plan
from llmplane.stacks.plan_policies import views

TENANTS = [TenantBudget("search", ("llama-3-8b",), ("searchApiKey",), tokens_per_minute=10_000, priority=10),
           TenantBudget("batch", ("llama-3-8b",), ("batchApiKey",), tokens_per_day=1_000_000)]


def _route(name: str, backend_refs: list[dict]) -> None:
    k8s.apiextensions.CustomResource(
        f"{name}-route", api_version="gateway.networking.k8s.io/v1", kind="HTTPRoute",
        metadata={"name": "llama-3-8b", "namespace": "llmplane", "labels": {"llmplane.dev/model": "llama-3-8b"}},
        spec={"parentRefs": [{"name": "llmplane", "namespace": "llmplane-gateway"}],
              "rules": [{"backendRefs": backend_refs}]})


def _program(backend_refs: list[dict]):
    def program() -> None:
        ModelInferencePool("c1-llama-3-8b-1.0.0", ModelInferencePoolArgs(
            model="llama-3-8b", version="1.0.0", namespace="llmplane",
            selector={"app.kubernetes.io/instance": "llama-3-8b-v1-0-0"}, tracing_endpoint="http://jaeger:4317"))
        GatewayTenants("c1-tenants", GatewayTenantsArgs(
            tenants=TENANTS, api_keys={"searchApiKey": pulumi.Output.secret("sk-search"),
                                       "batchApiKey": pulumi.Output.secret("sk-batch")},
            routes={"llama-3-8b": "llama-3-8b"}, routes_namespace="llmplane", gateway_name="llmplane",
            gateway_namespace="llmplane-gateway"))
        _route("c1", backend_refs)
    return program


def _plan(backend_refs: list[dict]):
    return run_plan(read_stack_config("local"), _program(backend_refs))


def _one(plan, type_: str):
    found = plan.of_type(type_)
    assert len(found) == 1, [r.name for r in found]
    return found[0].inputs


def test_a_version_gets_a_pool_whose_picker_scores_prefix_queue_and_kv_cache():
    plan = _plan([pool_backend_ref("llama-3-8b", "1.0.0", 100)])
    pool = _one(plan, "kubernetes:inference.networking.k8s.io/v1:InferencePool")
    assert pool["metadata"]["name"] == "llama-3-8b-v1-0-0"
    assert pool["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/instance": "llama-3-8b-v1-0-0"}}
    assert pool["spec"]["targetPorts"] == [{"number": 8000}]
    assert pool["spec"]["endpointPickerRef"] == {"name": "llama-3-8b-v1-0-0-epp", "port": {"number": 9002},
                                                 "failureMode": "FailClose"}
    deployment = _one(plan, "kubernetes:apps/v1:Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == EPP_IMAGE and "@sha256:" in container["image"]
    args = container["args"]
    assert args[args.index("--pool-name") + 1] == "llama-3-8b-v1-0-0"
    assert args[args.index("--pool-group") + 1] == "inference.networking.k8s.io"
    config = yaml.safe_load(_one(plan, "kubernetes:core/v1:ConfigMap")["data"]["config.yaml"])
    assert config == epp_config()
    assert {p["pluginRef"] for p in config["schedulingProfiles"][0]["plugins"]} == {
        "prefix-cache-scorer", "queue-scorer", "kv-cache-utilization-scorer"}
    assert {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://jaeger:4317"} in container["env"]


def test_tenant_keys_are_secrets_and_each_route_admits_its_tenants_only():
    plan = _plan([pool_backend_ref("llama-3-8b", "1.0.0", 100)])
    secrets = {r.inputs["metadata"]["name"]: r.inputs for r in plan.of_type("kubernetes:core/v1:Secret")}
    assert secrets["tenant-search-api-keys"]["stringData"] == "[secret]"
    assert "sk-search" not in str([r.inputs for r in plan.resources])
    auth = _one(plan, "kubernetes:gateway.envoyproxy.io/v1alpha1:SecurityPolicy")
    assert [ref["name"] for ref in auth["spec"]["apiKeyAuth"]["credentialRefs"]] == [
        "tenant-search-api-keys", "tenant-batch-api-keys"]
    budgets = _one(plan, "kubernetes:gateway.envoyproxy.io/v1alpha1:BackendTrafficPolicy")
    assert [(r["limit"]["requests"], r["limit"]["unit"]) for r in budgets["spec"]["rateLimit"]["global"]["rules"]] \
        == [(10000, "Minute"), (1000000, "Day")]


def test_what_the_components_build_passes_the_gateway_policies():
    plan = _plan([pool_backend_ref("llama-3-8b", "1.0.0", 100)])
    resources = views(plan)
    assert [f for rule in GATEWAY_RULES for f in rule.run(resources, Context("prod"))] == []


def test_a_route_to_the_service_beside_a_pool_is_caught():
    plan = _plan([{"name": "llama-3-8b-v1-0-0", "port": 8000, "weight": 100}])
    findings = [f for rule in GATEWAY_RULES for f in rule.run(views(plan), Context("prod"))]
    assert [f.message for f in findings] == [
        "HTTPRoute llmplane/llama-3-8b sends traffic to Service 'llama-3-8b-v1-0-0' directly, bypassing its "
        "InferencePool"]


def test_a_version_held_by_kedas_interceptor_beside_a_pool_is_no_bypass():
    held = {"kind": "Service", "name": "keda-add-ons-http-interceptor-proxy", "namespace": "keda", "port": 8080,
            "weight": 10}
    plan = _plan([held])
    assert [f for rule in GATEWAY_RULES for f in rule.run(views(plan), Context("prod"))] == []
