"""Every shipped environment plans offline to completion, with the components its shape calls for."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.planning import plan_of

REQUIRED_TAGS = {"environment", "cost-center", "owner", "managed-by"}
UNTAGGABLE_AWS = {
    "aws:ec2/routeTableAssociation:RouteTableAssociation",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:iam/rolePolicy:RolePolicy",
    "aws:route53/record:Record",
    "aws:ec2/route:Route",
    "aws:sqs/queuePolicy:QueuePolicy",
    "aws:cloudwatch/eventTarget:EventTarget",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketVersioning:BucketVersioning",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "pulumi:providers:aws",
}


def _components(environment: str) -> Counter[str]:
    return Counter(r.type for r in plan_of(environment).resources if r.type.startswith("llmplane:"))


@pytest.mark.parametrize(
    ("environment", "clusters"),
    [
        ("local", {"llmplane:cluster:OnPremGpuCluster": 1}),
        ("dev", {"llmplane:cluster:AwsGpuCluster": 1}),
        ("staging", {"llmplane:cluster:AwsGpuCluster": 2}),
        ("prod", {"llmplane:cluster:AwsGpuCluster": 2, "llmplane:cluster:GcpGpuCluster": 1,
                  "llmplane:cluster:OnPremGpuCluster": 1}),
    ],
)
def test_environment_has_its_clusters_and_serving_components(environment, clusters):
    components = _components(environment)
    plan = plan_of(environment)
    kinds = {k: v for k, v in components.items() if k.startswith("llmplane:cluster:") and k.endswith("Cluster")}
    assert kinds == clusters
    cluster_count = len(plan.spec.clusters)
    assert components["llmplane:serving:ServingNamespace"] == cluster_count
    assert components["llmplane:networking:RegionalGateway"] == cluster_count
    versions = sum(len(m.versions) * len(plan.spec.clusters_of(m)) for m in plan.spec.models.values())
    assert components["llmplane:serving:VllmService"] == versions
    rollouts = sum(len(plan.spec.clusters_of(m)) for m in plan.spec.models.values())
    assert components["llmplane:serving:ModelRollout"] == rollouts


def test_prod_plan_spans_aws_gcp_and_kubernetes_providers():
    packages = {r.type.split(":")[0] for r in plan_of("prod").resources}
    assert {"aws", "gcp", "kubernetes", "llmplane"} <= packages


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_every_taggable_aws_resource_carries_the_required_tags(environment):
    for resource in plan_of(environment).resources:
        if resource.type.startswith("aws:") and resource.type not in UNTAGGABLE_AWS:
            assert REQUIRED_TAGS <= set(resource.inputs.get("tags", {})), resource.urn


def test_gcp_resources_carry_the_required_labels():
    for resource in plan_of("prod").of_type("gcp:container/cluster:Cluster"):
        assert {"environment", "cost_center", "owner", "managed_by"} <= set(resource.inputs["resourceLabels"])


def test_eks_encrypts_secrets_and_logs_the_control_plane():
    for cluster in plan_of("prod").of_type("aws:eks/cluster:Cluster"):
        assert cluster.inputs["encryptionConfig"]["resources"] == ["secrets"]
        assert {"api", "audit"} <= set(cluster.inputs["enabledClusterLogTypes"])


def test_prod_api_endpoints_are_private_dev_are_reachable():
    for cluster in plan_of("prod").of_type("aws:eks/cluster:Cluster"):
        assert cluster.inputs["vpcConfig"]["endpointPublicAccess"] is False
    for cluster in plan_of("dev").of_type("aws:eks/cluster:Cluster"):
        assert cluster.inputs["vpcConfig"]["endpointPublicAccess"] is True
    gke = plan_of("prod").of_type("gcp:container/cluster:Cluster")[0]
    assert gke.inputs["privateClusterConfig"]["enablePrivateNodes"] is True
    assert gke.inputs["workloadIdentityConfig"]["workloadPool"] == "llmplane-prod.svc.id.goog"


def test_gpu_capacity_is_tainted_and_labelled_by_gpu_type():
    plan = plan_of("prod")
    for pool in plan.of_type("kubernetes:karpenter.sh/v1:NodePool"):
        template = pool.inputs["spec"]["template"]
        assert {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"} in template["spec"]["taints"]
        assert "llmplane.dev/gpu-type" in template["metadata"]["labels"]
        assert int(pool.inputs["spec"]["limits"]["nvidia.com/gpu"]) > 0
    for pool in plan.of_type("gcp:container/nodePool:NodePool"):
        if pool.inputs["name"] != "system":
            assert pool.inputs["nodeConfig"]["taints"][0]["key"] == "nvidia.com/gpu"
            assert pool.inputs["nodeConfig"]["guestAccelerators"][0]["gpuDriverInstallationConfig"]


def test_dev_gpus_are_spot_and_scale_to_zero():
    plan = plan_of("dev")
    pool = plan.spec.clusters[0].pools[0]
    assert pool.capacity_type == "spot" and pool.nodes.min == 0
    gpu_pools = plan.of_type("kubernetes:karpenter.sh/v1:NodePool")
    capacity = gpu_pools[0].inputs["spec"]["template"]["spec"]["requirements"][1]
    assert capacity == {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot", "on-demand"]}


STATEFUL = {
    "aws:eks/cluster:Cluster", "aws:kms/key:Key", "aws:ecr/repository:Repository", "aws:s3/bucket:Bucket",
    "gcp:container/cluster:Cluster", "gcp:artifactregistry/repository:Repository", "gcp:storage/bucket:Bucket",
}
"""Slow to rebuild or holding data: clusters, keys, registries, log buckets."""


def test_stateful_resources_are_protected_in_prod_only():
    prod = [r for r in plan_of("prod").resources if r.type in STATEFUL]
    assert {r.type for r in prod} == STATEFUL
    assert all(r.protect for r in prod), [r.urn for r in prod if not r.protect]
    assert not any(r.protect for r in plan_of("dev").resources)


@pytest.mark.parametrize("environment", ["local", "dev", "staging", "prod"])
def test_plans_are_deterministic(environment):
    from llmplane.stacks.environments import read_stack_config
    from llmplane.stacks.plan import run_plan

    again = run_plan(read_stack_config(environment))
    assert again.resources == plan_of(environment).resources


def test_spot_gke_pool_keeps_an_on_demand_base():
    plan = plan_of("prod")
    spec_pool = plan.spec.cluster("gcp-usc1").pools[0]
    pools = {p.inputs["name"]: p.inputs for p in plan.of_type("gcp:container/nodePool:NodePool")}
    assert pools["inference-base"]["nodeConfig"]["spot"] is False
    assert pools["inference-base"]["autoscaling"]["totalMinNodeCount"] == spec_pool.on_demand_base
    assert pools["inference"]["nodeConfig"]["spot"] is True
    assert pools["inference"]["autoscaling"]["totalMaxNodeCount"] == spec_pool.nodes.max - spec_pool.on_demand_base


def test_global_routing_health_checks_every_regional_gateway_and_fails_over():
    plan = plan_of("prod")
    checks = [c for c in plan.of_type("aws:route53/healthCheck:HealthCheck") if c.inputs["type"] == "HTTPS"]
    assert sorted(c.inputs["fqdn"] for c in checks) == sorted(
        f"{c.name}.llm.llmplane.dev" for c in plan.spec.clusters
    )
    records = plan.of_type("aws:route53/record:Record")
    latency = [r for r in records if "latencyRoutingPolicies" in r.inputs]
    assert len(latency) == len([c for c in plan.spec.clusters if c.cloud != "onprem"])
    failover = {r.inputs["failoverRoutingPolicies"][0]["type"]: r.inputs for r in records
                if "failoverRoutingPolicies" in r.inputs}
    assert failover["SECONDARY"]["records"] == ["onprem-dc1.llm.llmplane.dev"], "on-prem takes over last"
    assert failover["PRIMARY"]["name"] == failover["SECONDARY"]["name"] == "llm.llmplane.dev"


def test_environments_without_a_hosted_zone_have_no_global_routing():
    assert plan_of("dev").of_type("aws:route53/record:Record") == []


def test_karpenter_drains_spot_gpu_nodes_on_interruption_warnings():
    plan = plan_of("dev")
    queue = plan.of_type("aws:sqs/queue:Queue")[0].inputs
    assert queue["sqsManagedSseEnabled"] is True
    rules = {r.name: r.inputs["eventPattern"] for r in plan.of_type("aws:cloudwatch/eventRule:EventRule")}
    assert any("EC2 Spot Instance Interruption Warning" in pattern for pattern in rules.values())
    assert len(plan.of_type("aws:cloudwatch/eventTarget:EventTarget")) == len(rules)
    karpenter = [r for r in plan.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"].endswith("karpenter")]
    assert karpenter[0].inputs["values"]["settings"]["interruptionQueue"] == queue["name"]
