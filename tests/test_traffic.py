"""Inference-aware routing as the environments get it: an InferencePool and endpoint picker per version that
answers users, one rule per version naming exactly one pool (the gateway's version split picks the rule at the
spec's weights, tests/test_gateway_version_split.py), who answered named by each rule, vLLM's own key put on by
the gateway, and no stand-by backend that could take a share of a model's traffic."""

from __future__ import annotations

import json

import pytest
from llmplane.components.serving.model_rollout import SERVED_BY_HEADER
from llmplane.spec.errors import SpecError
from llmplane.stacks.plan import Plan, PlannedResource
from llmplane.stacks.report import as_json

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
    """The rule a request without a version header lands on (weighted where versions are Services)."""
    [split] = [rule for rule in route["rules"]
               if rule["matches"] == [{"path": {"type": "PathPrefix", "value": f"/{model}/v1"}}]]
    return split


def _version_rules(route: dict) -> dict[str, dict]:
    return {h["value"]: rule for rule in route["rules"] for m in rule["matches"] for h in m.get("headers", [])
            if h["name"] == "x-llmplane-version"}


def _served_by(rule: dict) -> list[str]:
    return [entry["value"] for f in rule["filters"] if f["type"] == "ResponseHeaderModifier"
            for entry in f["responseHeaderModifier"]["set"] if entry["name"] == SERVED_BY_HEADER]


def test_each_prod_cluster_pools_every_version_that_answers_users_and_not_the_shadow():
    plan = plan_of("prod")
    pools = {(_cluster_of(p, plan), p.inputs["metadata"]["name"]) for p in plan.of_type(POOL)}
    assert pools == {
        *((c, f"llama-3-8b-v{v}") for c in ("aws-use1", "aws-usw2", "gcp-usc1", "onprem-dc1")
          for v in ("1-0-0", "1-1-0")),
        *((c, f"llama-3-70b-v{v}") for c in ("aws-use1", "aws-usw2") for v in ("1-0-0", "1-0-1")),
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


def test_no_rule_of_any_prod_route_names_two_pools_or_a_pool_beside_another_backend():
    """Envoy AI Gateway v1.1.0 refuses a rule with more than one InferencePool, and the whole Gateway then gets no
    new configuration: a 10 % canary would have taken every model of the gateway off the air."""
    plan = plan_of("prod")
    for route in plan.of_type(ROUTE):
        for rule in route.inputs["spec"]["rules"]:
            kinds = [ref.get("kind", "Service") for ref in rule.get("backendRefs", [])]
            if "InferencePool" in kinds:
                assert kinds == ["InferencePool"], (route.urn, rule)


def test_each_canary_version_has_its_own_rule_and_pool_naming_who_answered():
    route = _route(plan_of("prod"), "aws-usw2", "llama-3-8b")
    rules = _version_rules(route)
    assert {v: [ref["name"] for ref in rule["backendRefs"]] for v, rule in rules.items()} == {
        "1.0.0": ["llama-3-8b-v1-0-0"], "1.1.0": ["llama-3-8b-v1-1-0"]}
    assert {v: _served_by(rule) for v, rule in rules.items()} == {
        "1.0.0": ["llama-3-8b@1.0.0/aws-usw2"], "1.1.0": ["llama-3-8b@1.1.0/aws-usw2"]}


def test_the_served_by_header_is_on_the_rule_not_on_the_pool_ref_which_envoy_gateway_would_drop():
    for route in plan_of("prod").of_type(ROUTE):
        for rule in route.inputs["spec"]["rules"]:
            for ref in rule.get("backendRefs", []):
                if ref.get("kind") == "InferencePool":
                    assert "filters" not in ref, route.urn


def test_a_request_the_split_did_not_reach_goes_to_the_stable_version_only():
    split = _split(_route(plan_of("prod"), "aws-usw2", "llama-3-8b"), "llama-3-8b")
    assert [ref["name"] for ref in split["backendRefs"]] == ["llama-3-8b-v1-0-0"]
    assert _served_by(split) == ["llama-3-8b@1.0.0/aws-usw2"]


def test_no_model_route_carries_stand_by_backends_that_would_take_a_share_of_its_traffic():
    """Gateway API reads a missing weight as 1: stand-by Backends in the serving rule took about 2 % of
    llama-3-70b's requests to another region and to llama-3-8b in normal operation."""
    plan = plan_of("prod")
    assert plan.of_type(BACKEND) == []
    for route in plan.of_type(ROUTE):
        for rule in route.inputs["spec"]["rules"]:
            assert all(ref.get("kind", "Service") != "Backend" for ref in rule.get("backendRefs", []))


def test_a_fallback_is_refused_naming_why_and_what_fails_over_instead():
    def add_fallback(config: dict) -> None:
        config["llmplane:models"]["llama-3-70b"]["fallback"] = {"model": "llama-3-8b"}

    with pytest.raises(SpecError) as raised:
        plan_with("prod", add_fallback)
    message = str(raised.value)
    assert "models.llama-3-70b.fallback" in message
    assert "no priority levels" in message and "routing.failoverOrder" in message


def test_the_shadow_is_mirrored_through_its_comparator_and_never_answers():
    """The mirror goes to the model's shadow comparator, which calls the shadow and stable and compares them
    (docs/shadow.md); no rule sends users to the shadow."""
    route = _route(plan_of("prod"), "aws-use1", "llama-3-70b")
    for rule in [_split(route, "llama-3-70b"), *_version_rules(route).values()]:
        mirrors = [f["requestMirror"]["backendRef"] for f in rule["filters"] if f["type"] == "RequestMirror"]
        assert mirrors == [{"name": "shadow-compare-llama-3-70b", "port": 8080}]
        assert "llama-3-70b-v1-1-0" not in {ref["name"] for ref in rule["backendRefs"]}
    assert "1.1.0" not in _version_rules(route)


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


def test_no_route_policy_replaces_the_gateways_budget_policy():
    plan = plan_of("prod")
    assert all(p.inputs["spec"]["targetRefs"][0]["kind"] == "Gateway" or p.inputs["spec"].get("mergeType")
               for p in plan.of_type(TRAFFIC_POLICY))


def test_vllm_admits_its_pickers_and_the_pickers_admit_only_the_gateways_proxies():
    plan = plan_of("prod")
    policies = {p.inputs["metadata"]["name"]: p.inputs["spec"] for p in _in(plan, NETWORK_POLICY, "onprem-dc1")}
    assert {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "endpoint-picker"}}} in policies[
        "llama-3-8b-v1-0-0"]["ingress"][0]["from"]
    picker = policies["llama-3-8b-v1-0-0-epp"]["ingress"]
    assert picker[0] == {"from": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "llmplane-gateway"}}}], "ports": [{"port": 9002, "protocol": "TCP"}]}


def test_each_picker_may_review_the_tokens_of_whoever_reads_its_metrics():
    """The picker authenticates /metrics readers by default (`--metrics-endpoint-auth`): TokenReview and
    SubjectAccessReview are cluster-scoped, so its account needs a ClusterRole for them."""
    plan = plan_of("prod")
    bindings = {b.inputs["metadata"]["name"]: b.inputs for b in
                _in(plan, "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding", "aws-use1")}
    roles = {r.inputs["metadata"]["name"]: r.inputs for r in
             _in(plan, "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole", "aws-use1")}
    for pool in _in(plan, POOL, "aws-use1"):
        account = f"{pool.inputs['metadata']['name']}-epp"
        [binding] = [b for b in bindings.values() if b["subjects"][0]["name"] == account]
        rules = roles[binding["roleRef"]["name"]]["rules"]
        assert {(r["apiGroups"][0], r["resources"][0], tuple(r["verbs"])) for r in rules} == {
            ("authentication.k8s.io", "tokenreviews", ("create",)),
            ("authorization.k8s.io", "subjectaccessreviews", ("create",))}


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
