"""prod's plan: where an experiment runs behind Envoy Gateway, tenants can rate answers at `/feedback`, with the
keys of exactly the tenants that may call the models under experiment, and the service is reachable only from
the gateway (and scraped only from monitoring)."""

from __future__ import annotations

import json

from llmplane.components.gateway.tenant_budgets import secret_name

from tests.planning import DEPLOYMENT, HTTP_ROUTE, NETWORK_POLICY, plan_of

SECURITY_POLICY = "kubernetes:gateway.envoyproxy.io/v1alpha1:SecurityPolicy"
ENVOY_GATEWAY = "llmplane:gateway:EnvoyGatewayInstall"


def _by_cluster(type_: str, suffix: str) -> dict[str, dict]:
    return {r.name.removesuffix(suffix): r.inputs for r in plan_of("prod").of_type(type_)
            if r.name.endswith(suffix) and "-feedback-" in r.name}


def test_every_cluster_with_envoy_gateway_runs_the_feedback_service():
    gateways = {r.name.removesuffix("-envoy-gateway") for r in plan_of("prod").of_type(ENVOY_GATEWAY)}
    assert gateways and set(_by_cluster(DEPLOYMENT, "-feedback-deployment")) == gateways


def test_the_route_is_authenticated_with_the_keys_of_the_70b_s_tenants_only():
    routes = _by_cluster(HTTP_ROUTE, "-feedback-route")
    policies = _by_cluster(SECURITY_POLICY, "-feedback-auth")
    assert routes and set(routes) == set(policies)
    for cluster, route in routes.items():
        assert route["spec"]["rules"][0]["matches"][0]["path"] == {"type": "Exact", "value": "/feedback"}
        assert route["spec"]["hostnames"] == ["llm.llmplane.dev", f"{cluster}.llm.llmplane.dev"]
        auth = policies[cluster]["spec"]
        assert auth["targetRefs"][0]["name"] == route["metadata"]["name"]
        # support-bot calls only the 8B, which runs no experiment.
        assert [ref["name"] for ref in auth["apiKeyAuth"]["credentialRefs"]] == [
            secret_name("batch-eval"), secret_name("search")]


def test_only_the_gateway_namespace_calls_it_and_only_monitoring_scrapes_it():
    for policy in _by_cluster(NETWORK_POLICY, "-feedback-netpol").values():
        sources = {(peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], port["port"])
                   for rule in policy["spec"]["ingress"] for peer in rule["from"] for port in rule["ports"]}
        assert sources == {("llmplane-gateway", 8080), ("monitoring", 9090)}


def test_the_arms_that_answer_users_can_be_rated_and_the_shadow_cannot():
    [config] = {r.inputs["data"]["config.json"] for r in plan_of("prod").of_type("kubernetes:core/v1:ConfigMap")
                if r.name.endswith("-feedback-files")}
    assert json.loads(config)["models"] == {"llama-3-70b": ["1.0.0", "1.0.1"]}


def test_an_environment_without_experiments_has_no_feedback_service():
    assert not [r for r in plan_of("dev").resources if "-feedback" in r.name]
