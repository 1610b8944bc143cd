"""Inference-aware routing as the environments get it (issue 17): an InferencePool and endpoint picker per version
that answers users, routes that split by the spec's weights over those pools and name who answered, vLLM's own key
put on by the gateway, failover to the model's other clusters and then its fallback model, in the spec's order."""

from __future__ import annotations

import json

from components.gateway.routing import FAILOVER_HEADER, SERVED_BY_HEADER
from stacks.plan import Plan, PlannedResource
from stacks.report import as_json
from tests.planning import plan_of, plan_with

POOL = "kubernetes:inference.networking.k8s.io/v1:InferencePool"
ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
BACKEND = "kubernetes:gateway.envoyproxy.io/v1alpha1:Backend"
TRAFFIC_POLICY = "kubernetes:gateway.envoyproxy.io/v1alpha1:BackendTrafficPolicy"
RELEASE = "kubernetes:helm.sh/v3:Release"


def _cluster_of(resource: PlannedResource, plan: Plan) -> str:
    return next(c.name for c in plan.spec.clusters if f"::{c.name}-" in resource.urn)


def _in(plan: Plan, type_: str, cluster: str) -> list[PlannedResource]:
    return [r for r in plan.of_type(type_) if _cluster_of(r, plan) == cluster]


def _route(plan: Plan, cluster: str, model: str) -> dict:
    [route] = [r for r in _in(plan, ROUTE, cluster) if r.inputs["metadata"]["name"] == model]
    return route.inputs["spec"]


def _split(route: dict, model: str) -> dict:
    [split] = [rule for rule in route["rules"]
               if rule["matches"] == [{"path": {"type": "PathPrefix", "value": f"/{model}/v1"}}]]
    return split


def test_each_prod_cluster_pools_every_version_that_answers_users_and_not_the_shadow():
    plan = plan_of("prod")
    pools = {(_cluster_of(p, plan), p.inputs["metadata"]["name"]) for p in plan.of_type(POOL)}
    assert pools == {
        *((c, f"llama-3-8b-v{v}") for c in ("aws-use1", "aws-usw2", "gcp-usc1", "onprem-dc1")
          for v in ("1-0-0", "1-1-0")),
        ("aws-use1", "llama-3-70b-v1-0-0"), ("aws-usw2", "llama-3-70b-v1-0-0"),
    }


def test_a_pool_selects_exactly_its_versions_vllm_pods_and_asks_its_own_picker():
    plan = plan_of("prod")
    for pool in _in(plan, POOL, "gcp-usc1"):
        name = pool.inputs["metadata"]["name"]
        [server] = [d for d in _in(plan, DEPLOYMENT, "gcp-usc1") if d.inputs["metadata"]["name"] == name]
        assert pool.inputs["spec"]["selector"]["matchLabels"] == server.inputs["spec"]["selector"]["matchLabels"]
        assert pool.inputs["spec"]["targetPorts"] == [{"number": 8000}]
        picker = pool.inputs["spec"]["endpointPickerRef"]
        assert picker["name"] == f"{name}-epp" and picker["port"] == {"number": 9002}
        [epp] = [d for d in _in(plan, DEPLOYMENT, "gcp-usc1") if d.inputs["metadata"]["name"] == f"{name}-epp"]
        container = epp.inputs["spec"]["template"]["spec"]["containers"][0]
        assert "@sha256:" in container["image"]
        assert container["args"][:2] == ["--pool-name", name]


def test_the_canary_split_goes_to_the_versions_pools_at_the_spec_weights_and_names_who_answered():
    split = _split(_route(plan_of("prod"), "aws-usw2", "llama-3-8b"), "llama-3-8b")
    pools = [ref for ref in split["backendRefs"] if ref.get("kind") == "InferencePool"]
    assert [(ref["name"], ref["weight"]) for ref in pools] == [("llama-3-8b-v1-0-0", 90), ("llama-3-8b-v1-1-0", 10)]
    assert [ref["filters"][0]["responseHeaderModifier"]["set"] for ref in pools] == [
        [{"name": SERVED_BY_HEADER, "value": "llama-3-8b@1.0.0/aws-usw2"}],
        [{"name": SERVED_BY_HEADER, "value": "llama-3-8b@1.1.0/aws-usw2"}]]


def test_the_shadow_is_still_mirrored_to_its_service_and_never_answers():
    split = _split(_route(plan_of("prod"), "aws-use1", "llama-3-70b"), "llama-3-70b")
    mirrors = [f["requestMirror"]["backendRef"] for f in split["filters"] if f["type"] == "RequestMirror"]
    assert mirrors == [{"name": "llama-3-70b-v1-1-0", "port": 8000}]
    assert "llama-3-70b-v1-1-0" not in {ref["name"] for ref in split["backendRefs"]}


def test_every_rule_puts_vllms_own_key_on_the_request_and_the_key_stays_secret():
    plan = plan_of("prod")
    for route in plan.of_type(ROUTE):
        if route.inputs["metadata"]["name"] not in plan.spec.models:
            continue
        for rule in route.inputs["spec"]["rules"]:
            assert {"type": "ExtensionRef", "extensionRef": {
                "group": "gateway.envoyproxy.io", "kind": "HTTPRouteFilter", "name": "vllm-credential"}} in rule[
                "filters"], route.urn
    filters = plan.of_type("kubernetes:gateway.envoyproxy.io/v1alpha1:HTTPRouteFilter")
    assert {_cluster_of(f, plan) for f in filters} == {c.name for c in plan.spec.clusters}
    injection = filters[0].inputs["spec"]["credentialInjection"]
    assert injection["header"] == "Authorization" and injection["overwrite"] is True
    published = {r["urn"]: r for r in json.loads(as_json(plan))["resources"]}
    secrets = [r for r in plan.of_type("kubernetes:core/v1:Secret")
               if r.inputs["metadata"]["name"] == injection["credential"]["valueRef"]["name"]]
    assert len(secrets) == len(plan.spec.clusters)
    assert all(published[s.urn]["inputs"]["stringData"] == "[secret]" for s in secrets)
    assert "Bearer" not in as_json(plan)


def test_llama_3_8b_fails_over_to_its_other_clusters_in_the_spec_order():
    plan = plan_of("prod")
    split = _split(_route(plan, "aws-use1", "llama-3-8b"), "llama-3-8b")
    standby = [ref for ref in split["backendRefs"] if ref.get("kind") == "Backend"]
    assert [ref["name"] for ref in standby] == [
        "failover-llama-3-8b-aws-usw2", "failover-llama-3-8b-gcp-usc1", "failover-llama-3-8b-onprem-dc1"]
    assert {ref["filters"][0]["requestHeaderModifier"]["set"][0]["value"] for ref in standby} == {"llama-3-8b"}
    backends = {b.inputs["metadata"]["name"]: b.inputs["spec"] for b in _in(plan, BACKEND, "aws-use1")}
    assert backends["failover-llama-3-8b-gcp-usc1"]["fallback"] is True
    assert backends["failover-llama-3-8b-gcp-usc1"]["endpoints"] == [
        {"fqdn": {"hostname": "gcp-usc1.llm.llmplane.dev", "port": 443}}]


def test_llama_3_70b_fails_over_to_its_other_region_then_to_llama_3_8b_here():
    plan = plan_of("prod")
    split = _split(_route(plan, "aws-usw2", "llama-3-70b"), "llama-3-70b")
    standby = [(ref["name"], ref["filters"][0]["requestHeaderModifier"]["set"][0]["value"])
               for ref in split["backendRefs"] if ref.get("kind") == "Backend"]
    assert standby == [("failover-llama-3-70b-aws-use1", "llama-3-70b"), ("failover-llama-3-8b-aws-usw2", "llama-3-8b")]


def test_a_route_failed_over_into_answers_with_its_own_pools_and_never_fails_over_again():
    route = _route(plan_of("prod"), "aws-usw2", "llama-3-8b")
    entries = [rule for rule in route["rules"]
               if any(h["name"] == FAILOVER_HEADER for m in rule["matches"] for h in m.get("headers", []))]
    assert [e["matches"][0]["headers"][0]["value"] for e in entries] == [
        "llama-3-8b@1.0.0", "llama-3-8b@1.1.0", "llama-3-8b"]
    for entry in entries:
        assert {ref.get("kind") for ref in entry["backendRefs"]} == {"InferencePool"}


def test_failing_endpoints_are_ejected_and_saturated_answers_retried_before_the_standbys_take_over():
    plan = plan_of("prod")
    policies = [p for p in _in(plan, TRAFFIC_POLICY, "aws-use1")
                if p.inputs["spec"]["targetRefs"][0]["kind"] == "HTTPRoute"]
    assert {p.inputs["spec"]["targetRefs"][0]["name"] for p in policies} == {"llama-3-8b", "llama-3-70b"}
    spec = policies[0].inputs["spec"]
    assert spec["retry"]["retryOn"]["httpStatusCodes"] == [429, 503]
    assert spec["healthCheck"]["passive"]["maxEjectionPercent"] == 100


def test_without_a_fallback_a_model_has_no_standby_and_no_failover_policy():
    plan = plan_with("prod", lambda c: [m.pop("fallback") for m in c["llmplane:models"].values()])
    assert plan.of_type(BACKEND) == []
    assert all(p.inputs["spec"]["targetRefs"][0]["kind"] == "Gateway" for p in plan.of_type(TRAFFIC_POLICY))


def test_vllm_admits_its_pickers_and_the_pickers_admit_only_the_gateways_proxies():
    plan = plan_of("prod")
    policies = {p.inputs["metadata"]["name"]: p.inputs["spec"] for p in _in(plan, NETWORK_POLICY, "onprem-dc1")}
    assert {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "endpoint-picker"}}} in policies[
        "llama-3-8b-v1-0-0"]["ingress"][0]["from"]
    picker = policies["llama-3-8b-v1-0-0-epp"]["ingress"]
    assert picker[0] == {"from": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "llmplane-gateway"}}}], "ports": [{"port": 9002, "protocol": "TCP"}]}


def test_envoy_gateway_hands_pools_to_the_ai_gateway_extension_and_runs_proxies_beside_the_gateway():
    plan = plan_of("prod")
    for chart in [r for r in plan.of_type(RELEASE) if r.inputs["chart"].endswith("/gateway-helm")]:
        config = chart.inputs["values"]["config"]["envoyGateway"]
        assert config["extensionManager"]["backendResources"] == [
            {"group": "inference.networking.k8s.io", "kind": "InferencePool", "version": "v1"}]
        assert config["provider"]["kubernetes"]["deploy"] == {"type": "GatewayNamespace"}
    ai_gateways = [r for r in plan.of_type(RELEASE) if r.inputs["chart"].endswith("/ai-gateway-helm")]
    assert {_cluster_of(r, plan) for r in ai_gateways} == {c.name for c in plan.spec.clusters}


def test_pools_wait_for_the_inference_extension_crd_the_stack_installs_on_each_gateway_cluster():
    plan = plan_of("prod")
    crds = plan.of_type("llmplane:cluster:CustomResourceDefinitions")
    assert {_cluster_of(c, plan) for c in crds} == {c.name for c in plan.spec.clusters}
    definitions = [r for r in plan.of_type("kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition")]
    assert {d.inputs["metadata"]["name"] for d in definitions} == {"inferencepools.inference.networking.k8s.io"}
    for pool in plan.of_type(POOL):
        component = next(r for r in plan.resources if r.urn == pool.parent)
        [crd] = [d for d in definitions if _cluster_of(d, plan) == _cluster_of(pool, plan)]
        assert crd.urn in component.dependencies


def test_a_version_that_may_be_at_zero_is_held_by_the_interceptor_not_pooled():
    plan = plan_of("dev")
    split = _split(_route(plan, plan.spec.clusters[0].name, "llama-3-8b"), "llama-3-8b")
    assert {ref["name"] for ref in split["backendRefs"]} == {"keda-add-ons-http-interceptor-proxy"}
    assert plan.of_type(POOL) == []


def test_the_embedded_cluster_routes_straight_to_services_without_pools_or_key_injection():
    plan = plan_of("local")
    assert plan.of_type(POOL) == []
    for rule in _route(plan, "local", "llama-3-8b")["rules"]:
        assert not [f for f in rule["filters"] if f["type"] == "ExtensionRef"]
