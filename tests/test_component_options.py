"""A component's children wait for what the component waits for: Pulumi does not hand a component's `depends_on`
on to its children, so every component creates them through `components.options.children_of` (a custom resource
would otherwise race the CRD its component was told to wait for). Checked three ways: each shipped environment's
plan, every component that creates resources given a `depends_on` of its own under mocks, and the source (no
component parents a child by hand)."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pytest
from llmplane.components.autoscaling.keda import KedaInstall
from llmplane.components.clusters.aws import AwsGpuCluster
from llmplane.components.clusters.base import AwsNetwork, ClusterArgs, GcpNetwork, GpuNodePool, WorkloadReaders
from llmplane.components.clusters.crds import CustomResourceDefinitions, CustomResourceDefinitionsArgs
from llmplane.components.clusters.gcp import GcpGpuCluster
from llmplane.components.clusters.onprem import OnPremGpuCluster
from llmplane.components.gateway.certificates import CertManagerArgs, CertManagerInstall
from llmplane.components.gateway.envoy_gateway import EnvoyGatewayArgs, EnvoyGatewayInstall
from llmplane.components.gateway.external_dns import ExternalDnsArgs, ExternalDnsInstall
from llmplane.components.hybrid.link import HybridLink, HybridLinkArgs, LinkSide, OnPremSite
from llmplane.components.labels import Ownership
from llmplane.components.networking.global_routing import GlobalRouting, GlobalRoutingArgs, RoutedCluster
from llmplane.components.observability.stack import ObservabilityArgs, ObservabilityStack
from llmplane.components.serving.namespace import ServingNamespace, ServingNamespaceArgs
from llmplane.monitoring.rules import Slo
from llmplane.stacks.environments import read_stack_config
from llmplane.stacks.plan import STACK_TYPE as STACK
from llmplane.stacks.plan import Plan, run_plan

from tests.planning import plan_of

ROOT = Path(__file__).resolve().parents[1]
GATE = "kubernetes:core/v1:ConfigMap"


@pytest.mark.parametrize("environment", ["local", "dev", "staging", "prod"])
def test_in_every_environment_a_child_waits_for_what_its_parent_waits_for(environment):
    plan = plan_of(environment)
    by_urn = plan.by_urn()
    late = [(r.urn, sorted(set(by_urn[r.parent].dependencies) - set(r.dependencies)))
            for r in plan.resources if r.parent in by_urn
            and not set(by_urn[r.parent].dependencies) <= set(r.dependencies)]
    assert late == []


def _aws_network() -> AwsNetwork:
    return AwsNetwork(provider=aws.Provider("use1", region="us-east-1"), eks_cluster_name="aws-use1",
                      vpc_id="vpc-1", private_subnet_ids=["subnet-a"], private_route_tables=["rtb-a"])


GCP = GcpNetwork(network_id="net", project="proj")
OWNERS = Ownership(environment="dev", owner="platform-team", cost_center="ml")
L4 = GpuNodePool(name="inference", gpu_type="nvidia-l4", gpus_per_node=1)
READERS = WorkloadReaders(namespace="llmplane", service_accounts=["m-sa"], tags={},
                          uris=["s3://weights/m/1/weights.tar", "gs://weights/m/1/weights.tar"])
INSIDE = ("169.254.20.0/30", "169.254.20.4/30")
CRD = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
       "metadata": {"name": "widgets.example.dev"},
       "spec": {"group": "example.dev", "names": {"kind": "Widget", "plural": "widgets"}, "scope": "Namespaced",
                "versions": [{"name": "v1", "served": True, "storage": True}]}}


def _aws_cluster(opts: pulumi.ResourceOptions) -> None:
    cluster = AwsGpuCluster("aws-use1", ClusterArgs(name="aws-use1", region="us-east-1", ownership=OWNERS, pools=[L4],
                                                    zones=("us-east-1a", "us-east-1b"), network_cidr="10.10.0.0/16",
                                                    protect=True), opts)
    cluster.bind_workload_identity("aws-use1-weights", READERS)


def _gcp_cluster(opts: pulumi.ResourceOptions) -> None:
    cluster = GcpGpuCluster("gcp-usc1", ClusterArgs(name="gcp-usc1", region="us-central1", ownership=OWNERS,
                                                    pools=[L4], gcp_project="proj", protect=True), opts)
    cluster.bind_workload_identity("gcp-usc1-weights", READERS)


def _link(opts: pulumi.ResourceOptions) -> None:
    HybridLink("dc1", HybridLinkArgs(site=OnPremSite("dc1", "203.0.113.10", 65010, ["10.100.0.0/16"]), sides=[
        LinkSide(cluster="aws-use1", region="us-east-1", network=_aws_network(), inside_cidrs=INSIDE),
        LinkSide(cluster="gcp-usc1", region="us-central1", network=GCP, inside_cidrs=INSIDE)]), opts)


def _observability(network) -> Callable[[pulumi.ResourceOptions], None]:
    return lambda opts: ObservabilityStack("c1-observability", ObservabilityArgs(
        cluster_name="c1", region="us-east-1", slos={}, default_slo=Slo(), environment="dev", tags={},
        network=network(), protect=True), opts)


COMPONENTS: dict[str, Callable[[pulumi.ResourceOptions], None]] = {
    "EnvoyGatewayInstall": lambda opts: EnvoyGatewayInstall("c1-gw", EnvoyGatewayArgs(
        cloud="aws", access_log_retention_days=90), opts),
    "CertManagerInstall private CA": lambda opts: CertManagerInstall("c1-certs", CertManagerArgs(
        cluster_name="onprem-dc1", issuer="private-ca"), opts),
    "CertManagerInstall ACME on AWS": lambda opts: CertManagerInstall("c1-certs", CertManagerArgs(
        cluster_name="aws-use1", issuer="acme-dns01", network=_aws_network(), dns_zone="llmplane.dev",
        acme_email="platform@llmplane.dev"), opts),
    "ExternalDnsInstall on GCP": lambda opts: ExternalDnsInstall("c1-dns", ExternalDnsArgs(
        cluster_name="gcp-usc1", network=GCP, dns_zone="llmplane.dev", global_hostname="llm.llmplane.dev",
        gcp_managed_zone="llmplane-dev"), opts),
    "ObservabilityStack on AWS": _observability(_aws_network),
    "ObservabilityStack on GCP": _observability(lambda: GCP),
    "KedaInstall": lambda opts: KedaInstall("c1-keda", opts),
    "CustomResourceDefinitions": lambda opts: CustomResourceDefinitions(
        "c1-crds", CustomResourceDefinitionsArgs(documents=[CRD]), opts),
    "OnPremGpuCluster": lambda opts: OnPremGpuCluster("dc1", ClusterArgs(
        name="dc1", region="dc1", ownership=OWNERS, kubeconfig="{}"), opts),
    "AwsGpuCluster": _aws_cluster,
    "GcpGpuCluster": _gcp_cluster,
    "HybridLink": _link,
    "GlobalRouting": lambda opts: GlobalRouting("global", GlobalRoutingArgs(
        hostname="llm.llmplane.dev", hosted_zone="llmplane.dev", health_model="m", tags={},
        clusters=[RoutedCluster(name="aws-use1", cloud="aws", region="us-east-1"),
                  RoutedCluster(name="onprem-dc1", cloud="onprem", region="dc1")]), opts),
    "ServingNamespace": lambda opts: ServingNamespace("c1-serving", ServingNamespaceArgs(api_key="key"), opts),
}


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_every_child_of_a_component_waits_for_what_the_component_waits_for(component):
    def program() -> None:
        gate = k8s.core.v1.ConfigMap("gate", metadata={"name": "gate"})
        COMPONENTS[component](pulumi.ResourceOptions(depends_on=[gate]))

    plan: Plan = run_plan(read_stack_config("local"), program)
    [gate] = [r.urn for r in plan.of_type(GATE) if r.name == "gate"]
    descendants = {r.urn for r in plan.resources if r.type.startswith("llmplane:") and r.parent.split("::")[2] == STACK}
    while grown := {r.urn for r in plan.resources if r.parent in descendants} - descendants:
        descendants |= grown
    children = [r for r in plan.resources if r.urn in descendants and not r.type.startswith("llmplane:")]
    assert children, component
    assert [r.urn for r in children if gate not in r.dependencies] == []


def _parents_by_hand(path: Path) -> list[str]:
    """`ResourceOptions(parent=...)` calls in a module: options built past `children_of`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) ==
                "ResourceOptions" and any(keyword.arg == "parent" for keyword in node.keywords)):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_no_component_parents_a_child_by_hand():
    options = ROOT / "components" / "options.py"
    by_hand = [place for path in sorted((ROOT / "components").rglob("*.py")) if path != options
               for place in _parents_by_hand(path)]
    assert by_hand == [], "create children with components.options.children_of(self, opts, ...)"
    assert _parents_by_hand(options), "the scan no longer sees children_of's own ResourceOptions(parent=...)"
