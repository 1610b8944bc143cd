"""The gateway as the environments get it (issue 17): Envoy Gateway on every cluster whose add-ons the stack
installs, each cluster's Gateway on its class and waiting for it, traces to Jaeger, access logs kept as long as the
spec asks, certificates and DNS, tenants' keys (secret) and budgets, the token meter; the embedded cluster keeps the
stack's own Gateway API CRDs and no Helm."""

from __future__ import annotations

import json

from llmplane.stacks.environments import PROJECT_ROOT
from llmplane.stacks.plan import Plan, PlannedResource
from llmplane.stacks.report import as_json

from tests.planning import model_servers, plan_of, plan_with

RELEASE = "kubernetes:helm.sh/v3:Release"
GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
GATEWAY_CLASS = "kubernetes:gateway.networking.k8s.io/v1:GatewayClass"
CRDS = "llmplane:cluster:CustomResourceDefinitions"


def _releases(plan: Plan, chart: str) -> list[PlannedResource]:
    return [r for r in plan.of_type(RELEASE) if r.inputs["chart"].rsplit("/", 1)[-1] == chart]


def _cluster_of(resource: PlannedResource, plan: Plan) -> str:
    return next(c.name for c in plan.spec.clusters if f"::{c.name}-" in resource.urn)


def test_every_prod_cluster_gets_envoy_gateway_its_class_and_a_gateway_that_waits_for_both():
    plan = plan_of("prod")
    clusters = {c.name for c in plan.spec.clusters}
    charts = _releases(plan, "gateway-helm")
    assert {_cluster_of(r, plan) for r in charts} == clusters
    classes = plan.of_type(GATEWAY_CLASS)
    assert {_cluster_of(r, plan) for r in classes} == clusters
    for gateway in plan.of_type(GATEWAY):
        cluster = _cluster_of(gateway, plan)
        assert gateway.inputs["spec"]["gatewayClassName"] == "envoy"
        [chart] = [r for r in charts if _cluster_of(r, plan) == cluster]
        [gateway_class] = [r for r in classes if _cluster_of(r, plan) == cluster]
        assert {chart.urn, gateway_class.urn} <= set(gateway.dependencies), cluster


def test_envoy_gateway_brings_the_gateway_api_so_the_stack_installs_only_the_inference_pool_crd_in_the_cloud():
    definitions = plan_of("prod").of_type("kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition")
    assert {d.inputs["metadata"]["name"] for d in definitions} == {"inferencepools.inference.networking.k8s.io"}
    gke = plan_of("prod").of_type("gcp:container/cluster:Cluster")
    assert [c.inputs["gatewayApiConfig"] for c in gke] == [{"channel": "CHANNEL_DISABLED"}]


def test_the_proxies_trace_to_jaeger_in_the_monitoring_namespace_at_the_spec_sample_rate():
    plan = plan_of("prod")
    jaegers = _releases(plan, "jaeger")
    assert len(jaegers) == len(plan.spec.clusters)
    assert {r.inputs["namespace"] for r in jaegers} == {"monitoring"}
    for proxy in plan.of_type("kubernetes:gateway.envoyproxy.io/v1alpha1:EnvoyProxy"):
        tracing = proxy.inputs["spec"]["telemetry"]["tracing"]
        assert tracing["provider"]["backendRefs"] == [{"name": "jaeger", "namespace": "monitoring", "port": 4317}]
        assert tracing["samplingFraction"] == {"numerator": 100, "denominator": 10000}  # tracingSamplePercent: 1


def test_without_tracing_there_is_no_jaeger_and_the_proxies_only_log():
    plan = plan_with("staging", lambda values: values["llmplane:gateway"].update(tracing=False))
    assert _releases(plan, "jaeger") == []
    for proxy in plan.of_type("kubernetes:gateway.envoyproxy.io/v1alpha1:EnvoyProxy"):
        assert "tracing" not in proxy.inputs["spec"]["telemetry"]


def test_loki_keeps_logs_as_long_as_the_gateway_access_logs_must_be_kept():
    plan = plan_of("prod")
    assert plan.spec.gateway.access_log_retention_days == 365 > plan.spec.observability.log_retention_days
    for loki in _releases(plan, "loki"):
        assert loki.inputs["values"]["loki"]["limits_config"]["retention_period"] == f"{365 * 24}h"


def test_the_embedded_cluster_keeps_the_stack_gateway_api_crds_and_installs_no_chart():
    plan = plan_of("local")
    assert _releases(plan, "gateway-helm") == [] and _releases(plan, "jaeger") == []
    [crds] = plan.of_type(CRDS)
    [gateway] = plan.of_type(GATEWAY)
    assert gateway.inputs["spec"]["gatewayClassName"] == "envoy"
    definitions = {r.urn for r in plan.resources if r.parent == crds.urn}
    assert definitions and definitions <= set(gateway.dependencies)


def test_each_prod_cluster_certifies_its_gateway_with_its_cloud_issuer():
    plan = plan_of("prod")
    issuers = {_cluster_of(r, plan): r.inputs["metadata"]["name"]
               for r in plan.of_type("kubernetes:cert-manager.io/v1:ClusterIssuer")
               if r.inputs["metadata"]["name"] != "llmplane-selfsigned"}
    assert issuers == {"aws-use1": "llmplane-acme", "aws-usw2": "llmplane-acme", "gcp-usc1": "llmplane-acme",
                       "onprem-dc1": "llmplane-ca"}
    certificates = [r for r in plan.of_type("kubernetes:cert-manager.io/v1:Certificate")
                    if r.inputs["metadata"]["name"] == "llmplane-gateway"]
    assert {_cluster_of(r, plan) for r in certificates} == set(issuers)
    for certificate in certificates:
        cluster = _cluster_of(certificate, plan)
        assert certificate.inputs["metadata"]["namespace"] == "llmplane-gateway"
        assert certificate.inputs["spec"]["secretName"] == "llmplane-tls"
        assert certificate.inputs["spec"]["dnsNames"] == ["llm.llmplane.dev", f"{cluster}.llm.llmplane.dev"]
        assert certificate.inputs["spec"]["issuerRef"]["name"] == issuers[cluster]


def test_external_dns_runs_on_the_cloud_clusters_only_and_keeps_to_the_zone():
    plan = plan_of("prod")
    releases = _releases(plan, "external-dns")
    assert sorted(_cluster_of(r, plan) for r in releases) == ["aws-use1", "aws-usw2", "gcp-usc1"]
    providers = {_cluster_of(r, plan): r.inputs["values"]["provider"]["name"] for r in releases}
    assert providers == {"aws-use1": "aws", "aws-usw2": "aws", "gcp-usc1": "google"}
    grants = plan.of_type("gcp:dns/dnsManagedZoneIamMember:DnsManagedZoneIamMember")
    assert grants and {g.inputs["managedZone"] for g in grants} == {"llmplane-dev"}


def test_vllm_sends_its_request_spans_to_the_cluster_jaeger_where_the_environment_traces():
    def flags(plan: Plan) -> list[list[str]]:
        return [[*c.get("command", []), *c.get("args", [])] for d in model_servers(plan)
                for c in d.inputs["spec"]["template"]["spec"]["containers"] if c["name"] == "vllm"]

    endpoint = "http://jaeger.monitoring.svc.cluster.local:4317"
    prod = flags(plan_of("prod"))
    assert prod and all(f[f.index("--otlp-traces-endpoint") + 1] == endpoint for f in prod)
    assert not any("--otlp-traces-endpoint" in f for f in flags(plan_of("local")))
    untraced = plan_with("staging", lambda values: values["llmplane:gateway"].update(tracing=False))
    assert not any("--otlp-traces-endpoint" in f for f in flags(untraced))


def test_the_serving_image_carries_what_vllm_traces_with():
    requirements = (PROJECT_ROOT / "images/vllm/requirements.txt").read_text().split()
    assert {"opentelemetry-sdk==1.45.2", "opentelemetry-exporter-otlp-proto-grpc==1.45.2"} <= set(requirements)


def test_each_prod_gateway_holds_its_tenants_keys_as_secrets_and_admits_them_to_their_models_only():
    plan = plan_of("prod")
    clusters = {c.name for c in plan.spec.clusters}
    secrets = [r for r in plan.of_type("kubernetes:core/v1:Secret")
               if "llmplane.dev/tenant" in r.inputs["metadata"].get("labels", {})]
    assert {(_cluster_of(r, plan), r.inputs["metadata"]["labels"]["llmplane.dev/tenant"]) for r in secrets} == {
        (c, t.name) for c in clusters for t in plan.spec.tenants}
    published = {r["urn"]: r for r in json.loads(as_json(plan))["resources"]}
    for secret in secrets:
        assert published[secret.urn]["inputs"]["stringData"] == "[secret]"
    # The models' routes; the feedback endpoint's route has a policy of its own (tests/test_feedback_plan.py).
    policies = [p for p in plan.of_type("kubernetes:gateway.envoyproxy.io/v1alpha1:SecurityPolicy")
                if p.inputs["spec"]["targetRefs"][0]["name"] != "llmplane-feedback"]
    for policy in policies:
        [target] = policy.inputs["spec"]["targetRefs"]
        model = target["name"]
        assert target["kind"] == "HTTPRoute" and model in plan.spec.models
        assert policy.inputs["metadata"]["name"] == f"{model}-tenants"
    assert {_cluster_of(p, plan) for p in policies} == clusters


def test_tenant_budgets_and_the_token_meter_apply_to_each_gateway_after_envoy_gateway():
    plan = plan_of("prod")
    for kind in ("BackendTrafficPolicy", "EnvoyExtensionPolicy"):
        found = plan.of_type(f"kubernetes:gateway.envoyproxy.io/v1alpha1:{kind}")
        assert {_cluster_of(r, plan) for r in found} == {c.name for c in plan.spec.clusters}, kind
        for resource in found:
            [chart] = [r for r in _releases(plan, "gateway-helm")
                       if _cluster_of(r, plan) == _cluster_of(resource, plan)]
            assert chart.urn in resource.dependencies, (kind, resource.urn)
    budgets = [r for r in plan.of_type("kubernetes:gateway.envoyproxy.io/v1alpha1:BackendTrafficPolicy")
               if r.inputs["spec"]["targetRefs"][0]["kind"] == "Gateway"]
    assert {_cluster_of(r, plan) for r in budgets} == {c.name for c in plan.spec.clusters}
    assert all(r.inputs["spec"]["rateLimit"]["global"]["rules"] for r in budgets)


def test_the_embedded_cluster_has_no_tenant_secrets_to_set():
    assert not [r for r in plan_of("local").of_type("kubernetes:core/v1:Secret")
                if "llmplane.dev/tenant" in r.inputs["metadata"].get("labels", {})]
