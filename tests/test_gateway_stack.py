"""The gateway's platform components under Pulumi mocks: Envoy Gateway with its rate-limit store, access logs and
traces; the token-usage policy; cert-manager's issuers per cloud and the Gateway's certificate; external-dns kept
to its zone; Jaeger and the vLLM tracing flags (checked against vLLM 0.14.0's own arguments)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pytest
from llmplane.components.clusters.base import AwsNetwork, GcpNetwork
from llmplane.components.gateway.certificates import (
    CertManagerArgs,
    CertManagerInstall,
    GatewayCertificate,
    GatewayCertificateArgs,
)
from llmplane.components.gateway.charts import VALKEY_IMAGE
from llmplane.components.gateway.envoy_gateway import EnvoyGatewayArgs, EnvoyGatewayInstall, TracingTarget
from llmplane.components.gateway.external_dns import ExternalDnsArgs, ExternalDnsInstall, zone_filters
from llmplane.components.gateway.token_usage import LUA_SOURCE, TokenUsage, TokenUsageArgs
from llmplane.components.gateway.tracing import TracingBackend, TracingBackendArgs, grpc_endpoint, vllm_tracing_args
from llmplane.stacks.environments import read_stack_config
from llmplane.stacks.plan import Plan, run_plan

from tests import vllm_wheel

RELEASE = "kubernetes:helm.sh/v3:Release"
CUSTOM = "kubernetes:{}:{}"


def plan(program: Callable[[], None]) -> Plan:
    return run_plan(read_stack_config("local"), program)


def aws_network() -> AwsNetwork:
    return AwsNetwork(provider=aws.Provider("use1", region="us-east-1"), eks_cluster_name="aws-use1",
                      vpc_id="vpc-1", private_subnet_ids=["subnet-a"], private_route_tables=["rtb-a"])


def one(found: Plan, type_: str, name: str | None = None) -> dict:
    matches = [r.inputs for r in found.of_type(type_)
               if name is None or r.inputs.get("metadata", {}).get("name") == name]
    assert len(matches) == 1, [r.name for r in found.of_type(type_)]
    return matches[0]


def release(found: Plan, chart: str) -> dict:
    [match] = [r.inputs for r in found.of_type(RELEASE) if r.inputs["chart"].rsplit("/", 1)[-1] == chart]
    return match


def probe(**outputs: pulumi.Input[str]) -> None:
    """Record component outputs as the data of a ConfigMap, so a test can read them from the plan."""
    k8s.core.v1.ConfigMap("probe", metadata={"name": "probe"}, data=outputs)


# Envoy Gateway


def _envoy_gateway(**overrides) -> Plan:
    def program() -> None:
        install = EnvoyGatewayInstall("c1-gw", EnvoyGatewayArgs(**{
            "cloud": "aws", "access_log_retention_days": 400,
            "tracing": TracingTarget(service="jaeger", namespace="monitoring"),
            "tracing_sample_percent": 0.5, **overrides}))
        probe(retention=install.access_log_retention_days.apply(str), gateway_class=install.gateway_class,
              backend=install.rate_limit_backend)
    return plan(program)


def test_envoy_gateway_is_pinned_and_counts_budgets_in_its_own_valkey():
    found = _envoy_gateway()
    chart = release(found, "gateway-helm")
    assert (chart["chart"], chart["version"]) == ("oci://docker.io/envoyproxy/gateway-helm", "v1.8.1")
    config = chart["values"]["config"]["envoyGateway"]
    assert config["rateLimit"]["backend"] == {
        "type": "Redis", "redis": {"url": "ratelimit-valkey.envoy-gateway-system.svc.cluster.local:6379"}}
    assert config["extensionApis"] == {"enableBackend": True, "enableLua": True}
    valkey = one(found, "kubernetes:apps/v1:Deployment", "ratelimit-valkey")
    container = valkey["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == VALKEY_IMAGE and "@sha256:" in VALKEY_IMAGE
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    service = one(found, "kubernetes:core/v1:Service", "ratelimit-valkey")
    assert service["spec"]["selector"] == valkey["spec"]["selector"]["matchLabels"]
    policy = one(found, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "ratelimit-valkey")
    assert policy["spec"]["ingress"] == [{"from": [{"podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "envoy-ratelimit", "app.kubernetes.io/component": "ratelimit"}}}],
        "ports": [{"port": 6379}]}]
    outputs = one(found, "kubernetes:core/v1:ConfigMap", "probe")["data"]
    assert outputs == {"retention": "400", "gateway_class": "envoy",
                       "backend": "ratelimit-valkey.envoy-gateway-system.svc.cluster.local:6379"}


def test_the_proxies_log_tenant_model_version_tokens_and_status_as_json_to_stdout_and_trace():
    proxy = one(_envoy_gateway(), CUSTOM.format("gateway.envoyproxy.io/v1alpha1", "EnvoyProxy"))
    [setting] = proxy["spec"]["telemetry"]["accessLog"]["settings"]
    assert setting["sinks"] == [{"type": "File", "file": {"path": "/dev/stdout"}}]
    fields = setting["format"]["json"]
    assert setting["format"]["type"] == "JSON"
    assert fields["tenant"] == "%DYNAMIC_METADATA(llmplane.usage:tenant)%"
    assert fields["total_tokens"] == "%DYNAMIC_METADATA(llmplane.usage:total_tokens)%"
    assert {"model", "version", "prompt_tokens", "completion_tokens", "status", "duration_ms"} <= set(fields)
    assert not any("api-key" in value.lower() for value in fields.values())
    tracing = proxy["spec"]["telemetry"]["tracing"]
    assert tracing["samplingFraction"] == {"numerator": 50, "denominator": 10000}
    assert tracing["provider"]["backendRefs"] == [{"name": "jaeger", "namespace": "monitoring", "port": 4317}]
    assert proxy["spec"]["provider"]["kubernetes"]["envoyService"]["annotations"][
        "service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internet-facing"


def test_the_gateway_class_is_envoy_with_the_llmplane_proxy_settings():
    gateway_class = one(_envoy_gateway(cloud="gcp", tracing=None),
                        CUSTOM.format("gateway.networking.k8s.io/v1", "GatewayClass"))
    assert gateway_class["metadata"]["name"] == "envoy"
    assert gateway_class["spec"] == {"controllerName": "gateway.envoyproxy.io/gatewayclass-controller",
                                     "parametersRef": {"group": "gateway.envoyproxy.io", "kind": "EnvoyProxy",
                                                       "name": "llmplane", "namespace": "envoy-gateway-system"}}


def test_without_a_tracing_backend_the_proxies_do_not_trace():
    proxy = one(_envoy_gateway(cloud="onprem", tracing=None),
                CUSTOM.format("gateway.envoyproxy.io/v1alpha1", "EnvoyProxy"))
    assert "tracing" not in proxy["spec"]["telemetry"]
    assert proxy["spec"]["provider"]["kubernetes"]["envoyService"]["annotations"] == {}


@pytest.mark.parametrize("overrides, message", [
    ({"tracing_sample_percent": 0.001}, "EnvoyGatewayArgs.tracing_sample_percent: 0.001 is outside 0.01..100; "
                                        "set gateway.tracingSamplePercent between 0.01 and 100"),
    ({"cloud": "azure"}, "EnvoyGatewayArgs.cloud: 'azure' is not a cloud; use one of aws, gcp, onprem"),
    ({"proxy_replicas": 0}, "EnvoyGatewayArgs.proxy_replicas: 0 would leave the Gateway without a proxy; use 1 or "
                            "more"),
])
def test_bad_envoy_gateway_arguments_are_named(overrides, message):
    with pytest.raises(ValueError) as error:
        EnvoyGatewayArgs(**{"cloud": "aws", "access_log_retention_days": 90, **overrides})
    assert str(error.value) == message


# Token usage


def test_the_token_meter_runs_on_every_route_of_the_gateway_with_a_buffer_for_long_prompts():
    found = plan(lambda: TokenUsage("c1-usage", TokenUsageArgs(gateway_name="llmplane",
                                                               gateway_namespace="llmplane-gateway")))
    target = [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "llmplane"}]
    extension = one(found, CUSTOM.format("gateway.envoyproxy.io/v1alpha1", "EnvoyExtensionPolicy"))
    assert extension["spec"] == {"targetRefs": target, "lua": [{"type": "Inline", "inline": LUA_SOURCE}]}
    buffer = one(found, CUSTOM.format("gateway.envoyproxy.io/v1alpha1", "ClientTrafficPolicy"))
    assert buffer["spec"] == {"targetRefs": target, "connection": {"bufferLimit": "8Mi"}}
    with pytest.raises(ValueError, match=r"TokenUsageArgs.request_buffer: '8 MB' is not a byte quantity; write "
                                         r"it like 8Mi, 512Ki or 1048576"):
        TokenUsageArgs(gateway_name="g", gateway_namespace="n", request_buffer="8 MB")


# Certificates


def _policy_statements(found: Plan) -> list[dict]:
    [policy] = [r.inputs["policy"] for r in found.of_type("aws:iam/rolePolicy:RolePolicy")]
    return json.loads(policy)["Statement"]


def test_acme_on_aws_may_write_only_challenge_records_of_the_zone():
    found = plan(lambda: CertManagerInstall("c1-certs", CertManagerArgs(
        cluster_name="aws-use1", issuer="acme-dns01", network=aws_network(), dns_zone="llmplane.dev",
        acme_email="platform@llmplane.dev")))
    chart = release(found, "cert-manager")
    assert (chart["version"], chart["repositoryOpts"]["repo"]) == ("v1.21.2", "https://charts.jetstack.io")
    assert chart["values"]["crds"] == {"enabled": True}
    change = next(s for s in _policy_statements(found) if "route53:ChangeResourceRecordSets" in s["Action"])
    assert change["Resource"] == "arn:aws:route53:::hostedzone/Z0MOCKZONE"
    assert change["Condition"]["ForAllValues:StringEquals"] == {"route53:ChangeResourceRecordSetsRecordTypes": ["TXT"]}
    association = one(found, "aws:eks/podIdentityAssociation:PodIdentityAssociation")
    assert (association["namespace"], association["serviceAccount"]) == ("cert-manager", "cert-manager")
    assert chart["values"]["serviceAccount"]["name"] == "cert-manager"
    issuer = one(found, CUSTOM.format("cert-manager.io/v1", "ClusterIssuer"))
    assert issuer["metadata"]["name"] == "llmplane-acme"
    assert issuer["spec"]["acme"]["email"] == "platform@llmplane.dev"
    assert issuer["spec"]["acme"]["solvers"] == [{"selector": {"dnsZones": ["llmplane.dev"]}, "dns01": {
        "route53": {"region": "us-east-1", "hostedZoneID": "Z0MOCKZONE"}}}]


def test_acme_on_gcp_administers_one_managed_zone_through_workload_identity():
    found = plan(lambda: CertManagerInstall("c1-certs", CertManagerArgs(
        cluster_name="gcp-euw4", issuer="acme-dns01", network=GcpNetwork(network_id="net", project="proj"),
        dns_zone="llmplane.dev", acme_email="platform@llmplane.dev", gcp_managed_zone="llmplane-dev")))
    zone_grant = one(found, "gcp:dns/dnsManagedZoneIamMember:DnsManagedZoneIamMember")
    assert (zone_grant["managedZone"], zone_grant["role"]) == ("llmplane-dev", "roles/dns.admin")
    assert one(found, "gcp:projects/iAMMember:IAMMember")["role"] == "roles/dns.reader"
    assert one(found, "gcp:serviceaccount/iAMMember:IAMMember")["member"] == \
        "serviceAccount:proj.svc.id.goog[cert-manager/cert-manager]"
    annotations = release(found, "cert-manager")["values"]["serviceAccount"]["annotations"]
    assert annotations["iam.gke.io/gcp-service-account"].endswith("@example.iam.gserviceaccount.com")
    issuer = one(found, CUSTOM.format("cert-manager.io/v1", "ClusterIssuer"))
    assert issuer["spec"]["acme"]["solvers"][0]["dns01"] == {
        "cloudDNS": {"project": "proj", "hostedZoneName": "llmplane-dev"}}


def test_on_prem_a_private_ca_signs_the_gateway_certificate():
    def program() -> None:
        certs = CertManagerInstall("op-certs", CertManagerArgs(cluster_name="onprem-dc1", issuer="private-ca"))
        GatewayCertificate("op-cert", GatewayCertificateArgs(
            issuer_name=certs.issuer_name, hostnames=["llm.llmplane.dev", "onprem-dc1.llm.llmplane.dev"],
            namespace="llmplane-gateway"))
    found = plan(program)
    issuers = {r.inputs["metadata"]["name"]: r.inputs["spec"]
               for r in found.of_type(CUSTOM.format("cert-manager.io/v1", "ClusterIssuer"))}
    assert issuers == {"llmplane-selfsigned": {"selfSigned": {}}, "llmplane-ca": {"ca": {"secretName":
                                                                                         "llmplane-root-ca"}}}
    certificates = {r.inputs["metadata"]["name"]: r.inputs
                    for r in found.of_type(CUSTOM.format("cert-manager.io/v1", "Certificate"))}
    root = certificates["llmplane-root-ca"]
    assert root["spec"]["isCA"] is True and root["spec"]["issuerRef"]["name"] == "llmplane-selfsigned"
    assert root["metadata"]["namespace"] == "cert-manager"
    gateway = certificates["llmplane-gateway"]
    assert gateway["metadata"]["namespace"] == "llmplane-gateway"
    assert gateway["spec"]["secretName"] == "llmplane-tls"
    assert gateway["spec"]["dnsNames"] == ["llm.llmplane.dev", "onprem-dc1.llm.llmplane.dev"]
    assert gateway["spec"]["issuerRef"] == {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": "llmplane-ca"}
    assert not found.of_type("aws:iam/role:Role") and not found.of_type("gcp:serviceaccount/account:Account")


@pytest.mark.parametrize("kwargs, message", [
    ({"issuer": "acme-dns01"}, "CertManagerArgs.issuer: acme-dns01 in cluster 'c1', which has no cloud DNS to "
                               "answer the challenge; use private-ca on-prem"),
    ({"issuer": "acme-dns01", "network": GcpNetwork(network_id="n", project="p"), "dns_zone": "llmplane.dev"},
     "CertManagerArgs.acme_email: acme-dns01 in cluster 'c1' needs it; set gateway.acmeEmail"),
    ({"issuer": "letsencrypt"}, "CertManagerArgs.issuer: 'letsencrypt' is not an issuer; use one of acme-dns01, "
                                "private-ca"),
    ({"issuer": "acme-dns01", "network": GcpNetwork(network_id="n", project="p"), "dns_zone": "llmplane.dev",
      "acme_email": "a@llmplane.dev"},
     "CertManagerArgs.gcp_managed_zone: cluster 'c1' answers ACME through Cloud DNS; name the managed zone that "
     "serves llmplane.dev"),
])
def test_bad_issuer_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError) as error:
        CertManagerArgs(cluster_name="c1", **kwargs)
    assert str(error.value) == message


# external-dns


def test_external_dns_publishes_route_names_into_its_zone_only_and_never_deletes():
    found = plan(lambda: ExternalDnsInstall("c1-dns", ExternalDnsArgs(
        cluster_name="aws-use1", network=aws_network(), dns_zone="llmplane.dev",
        global_hostname="llm.llmplane.dev")))
    chart = release(found, "external-dns")
    assert (chart["version"], chart["repositoryOpts"]["repo"]) == (
        "1.22.0", "https://kubernetes-sigs.github.io/external-dns/")
    values = chart["values"]
    assert (values["sources"], values["policy"], values["txtOwnerId"], values["provider"]) == (
        ["gateway-httproute"], "upsert-only", "aws-use1", {"name": "aws"})
    assert "--zone-id-filter=Z0MOCKZONE" in values["extraArgs"]
    statements = _policy_statements(found)
    change = next(s for s in statements if "route53:ChangeResourceRecordSets" in s["Action"])
    assert change["Resource"] == "arn:aws:route53:::hostedzone/Z0MOCKZONE"
    assert all(s["Resource"] == "*" for s in statements if s is not change)
    assert not any("Change" in action for s in statements if s is not change for action in s["Action"])


def test_the_zone_filter_keeps_regional_names_and_spares_the_global_one():
    include, exclude = (re.compile(arg.split("=", 1)[1]) for arg in zone_filters("llmplane.dev", "llm.llmplane.dev"))
    for name in ("llmplane.dev", "aws-use1.llm.llmplane.dev", "gcp-euw4.llm.llmplane.dev"):
        assert include.search(name) and not exclude.search(name), name
    assert exclude.search("llm.llmplane.dev")
    assert not include.search("llmplane.dev.evil.com") and not include.search("notllmplane.dev")


def test_external_dns_on_gcp_and_where_it_cannot_run():
    found = plan(lambda: ExternalDnsInstall("c1-dns", ExternalDnsArgs(
        cluster_name="gcp-euw4", network=GcpNetwork(network_id="net", project="proj"), dns_zone="llmplane.dev",
        global_hostname="llm.llmplane.dev", gcp_managed_zone="llmplane-dev")))
    values = release(found, "external-dns")["values"]
    assert values["provider"] == {"name": "google"} and "--google-project=proj" in values["extraArgs"]
    assert one(found, "gcp:dns/dnsManagedZoneIamMember:DnsManagedZoneIamMember")["managedZone"] == "llmplane-dev"
    with pytest.raises(ValueError, match="ExternalDnsArgs.network: cluster 'dc1' has no cloud DNS"):
        ExternalDnsArgs(cluster_name="dc1", network=None, dns_zone="llmplane.dev", global_hostname="llm.llmplane.dev")
    with pytest.raises(ValueError, match=r"ExternalDnsArgs.global_hostname: llm.example.com is not in the zone "
                                         r"llmplane.dev; use the zone that holds it"):
        zone_filters("llmplane.dev", "llm.example.com")


# Tracing


def test_jaeger_receives_otlp_over_grpc_and_http_and_says_where():
    def program() -> None:
        backend = TracingBackend("c1-tracing", TracingBackendArgs())
        probe(grpc=backend.otlp_grpc_endpoint, http=backend.otlp_http_endpoint, service=backend.service)
    found = plan(program)
    chart = release(found, "jaeger")
    assert (chart["version"], chart["repositoryOpts"]["repo"], chart["namespace"]) == (
        "4.11.1", "https://jaegertracing.github.io/helm-charts", "monitoring")
    config = chart["values"]["userconfig"]
    assert config["receivers"]["otlp"]["protocols"] == {"grpc": {"endpoint": "0.0.0.0:4317"},
                                                         "http": {"endpoint": "0.0.0.0:4318"}}
    assert config["service"]["pipelines"]["traces"]["receivers"] == ["otlp"]
    assert config["extensions"]["jaeger_storage"]["backends"]["memory_store"] == {"memory": {"max_traces": 100000}}
    assert one(found, "kubernetes:core/v1:ConfigMap", "probe")["data"] == {
        "grpc": "http://jaeger.monitoring.svc.cluster.local:4317", "service": "jaeger",
        "http": "http://jaeger.monitoring.svc.cluster.local:4318"}
    assert grpc_endpoint() == "http://jaeger.monitoring.svc.cluster.local:4317"


def test_vllm_0_14_accepts_the_tracing_flag_we_pass():
    args = vllm_tracing_args(grpc_endpoint())
    assert args == ["--otlp-traces-endpoint", "http://jaeger.monitoring.svc.cluster.local:4317"]
    engine = vllm_wheel.dataclass_fields("vllm/engine/arg_utils.py", "EngineArgs")
    flags = {a[2:].replace("-", "_") for a in args if a.startswith("--")}
    assert flags <= engine
    assert '"--otlp-traces-endpoint"' in vllm_wheel.source("vllm/engine/arg_utils.py")
    with pytest.raises(ValueError, match="vllm_tracing_args: endpoint 'jaeger:4317' has no scheme"):
        vllm_tracing_args("jaeger:4317")
