"""compose() builds a tree, environment → cluster → model → version, and an existing stack keeps every resource.

The golden files hold every URN of each environment's plan before the tree (tests/golden/urns-<env>.txt; the local
one equals the state the real engine wrote for it). Each of those URNs is still in the plan or is an alias the
engine takes for a resource in it, so `pulumi up` on an existing stack updates in place: the real engine's preview
of the tree against a local stack written before it showed 50 resources the same and 2 created (the model and
version nodes), none replaced or deleted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from llmplane.stacks.plan import Plan, PlannedResource
from llmplane.stacks.plan_policies import views

from tests.planning import plan_of

GOLDEN = Path(__file__).parent / "golden"
TREE_NODES = {"llmplane:environment:Model", "llmplane:environment:ModelVersion"}
TRUST_BOUNDARY = ("-netpol", "-allow-dns", "-grafana-admin", "-prometheus-write-guard")
"""The network trust boundary (issue 29): every namespace's default deny, DNS and allowed flows, Grafana's generated
admin credential and the guard in front of Prometheus' remote-write receiver."""
NEW_SINCE_GOLDEN = {env: TRUST_BOUNDARY for env in ("local", "dev", "staging")} | {
    "prod": ("llama-3-70b-1.0.1", "llama-3-70b-v1-0-1", "vllm-image-0-31-0", "-feedback", "-shadow-compare",
             *TRUST_BOUNDARY)}
"""What an environment deploys that its golden predates: prod's engine canary (llama-3-70b 1.0.1 on vLLM 0.31.0)
and the serving image of that release; the feedback service of its experiment; the trust boundary everywhere."""


@pytest.mark.parametrize("environment", ["local", "dev", "staging", "prod"])
def test_every_urn_of_the_stack_before_the_tree_is_kept_or_aliased(environment: str):
    before = set((GOLDEN / f"urns-{environment}.txt").read_text().split())
    plan = plan_of(environment)
    kept = {r.urn for r in plan.resources} | {alias for r in plan.resources for alias in r.aliases}
    assert sorted(before - kept) == []
    added = [r for r in plan.resources if r.urn not in before and not before & set(r.aliases)]
    new_since = NEW_SINCE_GOLDEN.get(environment, ())
    assert {r.type for r in added if not any(mark in r.name for mark in new_since)} == TREE_NODES


def _ancestors(plan: Plan, resource: PlannedResource) -> list[tuple[str, str]]:
    by_urn = plan.by_urn()
    chain, node = [], by_urn.get(resource.parent)
    while node is not None:
        chain.append((node.type, node.name))
        node = by_urn.get(node.parent)
    return chain


def test_a_versions_deployment_sits_under_its_version_model_and_cluster():
    plan = plan_of("prod")
    [deployment] = [r for r in plan.of_type("kubernetes:apps/v1:Deployment")
                    if r.name == "aws-use1-llama-3-8b-1.1.0-deployment"]
    assert _ancestors(plan, deployment) == [
        ("llmplane:serving:VllmService", "aws-use1-llama-3-8b-1.1.0"),
        ("llmplane:environment:ModelVersion", "aws-use1-llama-3-8b-1.1.0"),
        ("llmplane:environment:Model", "aws-use1-llama-3-8b"),
        ("llmplane:cluster:AwsGpuCluster", "aws-use1"),
    ]


def test_a_models_route_sits_under_the_model_and_the_gateway_under_the_cluster():
    plan = plan_of("prod")
    [route] = [r for r in plan.of_type("llmplane:serving:ModelRollout") if r.name == "gcp-usc1-llama-3-8b"]
    assert _ancestors(plan, route) == [("llmplane:environment:Model", "gcp-usc1-llama-3-8b"),
                                       ("llmplane:cluster:GcpGpuCluster", "gcp-usc1")]
    [gateway] = [r for r in plan.of_type("llmplane:networking:RegionalGateway") if r.name == "onprem-dc1-gateway"]
    assert _ancestors(plan, gateway) == [("llmplane:cluster:OnPremGpuCluster", "onprem-dc1")]


def test_only_what_spans_clusters_sits_at_the_root():
    plan = plan_of("prod")
    urns = plan.by_urn()
    roots = sorted({r.type for r in plan.resources if r.parent not in urns})
    assert roots == ["llmplane:cluster:AwsGpuCluster", "llmplane:cluster:GcpGpuCluster",
                     "llmplane:cluster:OnPremGpuCluster", "llmplane:hybrid:HybridLink",
                     "llmplane:networking:GlobalRouting"]


def test_policies_read_each_resources_cluster_from_the_tree():
    plan = plan_of("prod")
    scopes = {(v.type, v.name): v.scope for v in views(plan)}
    assert scopes[("kubernetes:apps/v1:Deployment", "onprem-dc1-llama-3-8b-1.0.0-deployment")] == "onprem-dc1"
    assert scopes[("llmplane:cluster:AwsGpuCluster", "aws-usw2")] == "aws-usw2"
    assert scopes[("llmplane:networking:GlobalRouting", "global")] is None
