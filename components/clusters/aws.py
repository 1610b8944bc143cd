"""AwsGpuCluster: VPC across zones, encrypted EKS, a system node group, Karpenter GPU pools, ECR."""

from __future__ import annotations

import ipaddress
import json

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
from llmplane.components.aws_trust import POD_IDENTITY, trust_policy
from llmplane.components.labels import k8s_labels
from llmplane.components.options import children_of
from llmplane.components.serving.vllm_image import RegistryLogin
from llmplane.components.serving.vllm_service import GPU_TYPE_LABEL
from llmplane.components.serving.weights_access import WeightsAccess, WeightsAccessArgs, s3_folder, s3_object_arn
from llmplane.facts.kubernetes import GPU_RESOURCE, POOL_LABEL
from llmplane.facts.loading import INSTANCE_STORE_GB

from .base import (
    GPU_TAINT,
    AwsNetwork,
    ClusterArgs,
    GpuCluster,
    GpuNodePool,
    WorkloadReaders,
    exec_kubeconfig,
    moved_under,
    require_shape,
)
from .charts import AWS_LOAD_BALANCER_CONTROLLER, KARPENTER, NVIDIA_DEVICE_PLUGIN

INTERRUPTION_EVENTS = {
    "spot-interruption": {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]},
    "rebalance": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance Rebalance Recommendation"]},
    "state-change": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"]},
    "scheduled-change": {"source": ["aws.health"], "detail-type": ["AWS Health Event"]},
}
"""EventBridge events Karpenter handles (Karpenter docs, "Interruption"): it cordons and drains the node first."""

CONTROL_PLANE_LOGS = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
LOG_RETENTION_DAYS = 90


def subnet_cidrs(network: str, zones: int) -> tuple[list[str], list[str]]:
    """Private /19s from the bottom of the VPC range and public /22s from its top, one per zone."""
    net = ipaddress.ip_network(network)
    private = [str(s) for s in list(net.subnets(new_prefix=max(net.prefixlen + 3, 19)))[:zones]]
    public = [str(s) for s in list(net.subnets(new_prefix=max(net.prefixlen + 6, 22)))[-zones:]]
    return private, public


MIN_ZONES = 2
"""EKS requires subnets in at least two Availability Zones (Amazon EKS user guide, "VPC and subnet requirements")."""


def check_args(name: str, args: ClusterArgs) -> None:
    """Refuse, before any resource is declared, what an AWS cluster cannot be: no VPC range, fewer than
    `MIN_ZONES` zones, a pool no machine carries, a node cache larger than the machine's instance store (the RAID0
    array `local_cache_gb` asks for)."""
    if not args.network_cidr or len(args.zones) < MIN_ZONES:
        raise ValueError(f"AwsGpuCluster {name}: give `network_cidr` (the VPC range) and `zones` (at least "
                         f"{MIN_ZONES}: EKS needs subnets in two Availability Zones); got "
                         f"network_cidr={args.network_cidr!r}, zones={list(args.zones)!r}")
    for pool in args.pools:
        shape = require_shape("aws", pool, f"AwsGpuCluster {name}")
        store = INSTANCE_STORE_GB.get(shape.machine_type, 0)
        if pool.local_cache_gb > store:
            raise ValueError(f"AwsGpuCluster {name}: pool {pool.name!r} asks for a {pool.local_cache_gb} GB node "
                             f"cache, but {shape.machine_type} has {store:g} GB of instance store; use at most "
                             f"{store:g} or a machine with more")


def kubeconfig(name: pulumi.Input[str], endpoint: pulumi.Input[str], ca: pulumi.Input[str], region: str):
    """A kubeconfig that authenticates with `aws eks get-token`."""
    args = pulumi.Output.from_input(name).apply(lambda n: ["eks", "get-token", "--cluster-name", n, "--region", region])
    return pulumi.Output.all(endpoint, ca, args).apply(
        lambda v: exec_kubeconfig(v[0], v[1], {"command": "aws", "args": v[2]}))


class AwsGpuCluster(GpuCluster):
    """One AWS region's GPU cluster."""

    provider: k8s.Provider
    """Provider the serving layer deploys through."""
    cluster_name: pulumi.Output[str]
    """EKS cluster name."""
    endpoint: pulumi.Output[str]
    """Kubernetes API endpoint."""
    vpc_id: pulumi.Output[str]
    """VPC id (hybrid links attach to it)."""
    private_route_table_ids: pulumi.Output[list[str]]
    """Private route tables (hybrid links propagate routes into them)."""
    private_subnet_ids: pulumi.Output[list[str]]
    """Private subnets, one per zone (transit gateway attachments use them)."""
    registry_url: pulumi.Output[str]
    """ECR repository URL for the serving image."""
    registry_login: RegistryLogin
    """How VllmImage pushes to the ECR repository (a short-lived token)."""
    network: AwsNetwork
    """The region's AWS provider, the EKS name, the VPC, private subnets and route tables, for components that add
    resources beside the cluster (hybrid links, log buckets, roles)."""

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:cluster:AwsGpuCluster", name, None, opts)
        check_args(name, args)
        spec, tags = args, args.ownership.tags()
        self._opts = opts
        child = children_of(self, opts)
        provider = aws.Provider(f"{name}-aws", region=spec.region, default_tags={"tags": tags}, opts=child)
        on_aws = children_of(self, opts, provider=provider)
        keep_aws = children_of(self, opts, provider=provider, protect=args.protect)  # stateful: protected in prod

        key = aws.kms.Key(f"{name}-secrets-key", description=f"EKS secrets encryption for {spec.name}",
                          enable_key_rotation=True, deletion_window_in_days=30, tags=tags, opts=keep_aws)
        vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=spec.network_cidr, enable_dns_hostnames=True,
                          enable_dns_support=True, tags={**tags, "Name": f"{spec.name}"}, opts=on_aws)
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=tags, opts=on_aws)
        public_rt = aws.ec2.RouteTable(f"{name}-public-rt", vpc_id=vpc.id, tags=tags,
                                       routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}], opts=on_aws)
        private_cidrs, public_cidrs = subnet_cidrs(spec.network_cidr, len(spec.zones))
        nat_per_zone = args.protect
        private_subnets, private_rts, nats = [], [], []
        for i, zone in enumerate(spec.zones):
            public = aws.ec2.Subnet(f"{name}-public-{zone}", vpc_id=vpc.id, cidr_block=public_cidrs[i],
                                    availability_zone=zone, map_public_ip_on_launch=False,
                                    tags={**tags, "kubernetes.io/role/elb": "1"}, opts=on_aws)
            aws.ec2.RouteTableAssociation(f"{name}-public-{zone}", subnet_id=public.id,
                                          route_table_id=public_rt.id, opts=on_aws)
            if nat_per_zone or i == 0:
                eip = aws.ec2.Eip(f"{name}-nat-{zone}", domain="vpc", tags=tags, opts=on_aws)
                nats.append(aws.ec2.NatGateway(f"{name}-nat-{zone}", subnet_id=public.id,
                                               allocation_id=eip.id, tags=tags, opts=on_aws))
            private = aws.ec2.Subnet(f"{name}-private-{zone}", vpc_id=vpc.id, cidr_block=private_cidrs[i],
                                     availability_zone=zone,
                                     tags={**tags, "kubernetes.io/role/internal-elb": "1",
                                           "karpenter.sh/discovery": spec.name}, opts=on_aws)
            rt = aws.ec2.RouteTable(f"{name}-private-rt-{zone}", vpc_id=vpc.id, tags=tags,
                                    routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nats[-1].id}],
                                    opts=on_aws)
            aws.ec2.RouteTableAssociation(f"{name}-private-{zone}", subnet_id=private.id,
                                          route_table_id=rt.id, opts=on_aws)
            private_subnets.append(private)
            private_rts.append(rt)

        cluster_role = aws.iam.Role(f"{name}-cluster-role", assume_role_policy=trust_policy("eks.amazonaws.com"),
                                    tags=tags, opts=on_aws)
        attach = aws.iam.RolePolicyAttachment(f"{name}-cluster-policy", role=cluster_role.name,
                                              policy_arn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",
                                              opts=on_aws)
        logs = aws.cloudwatch.LogGroup(f"{name}-control-plane-logs", name=f"/aws/eks/{spec.name}/cluster",
                                       retention_in_days=LOG_RETENTION_DAYS, tags=tags, opts=on_aws)
        cluster = aws.eks.Cluster(
            f"{name}-eks",
            name=spec.name,
            version=spec.kubernetes_version,
            role_arn=cluster_role.arn,
            vpc_config={
                "subnet_ids": [s.id for s in private_subnets],
                "endpoint_private_access": True,
                "endpoint_public_access": not args.private_endpoint,
            },
            encryption_config={"provider": {"key_arn": key.arn}, "resources": ["secrets"]},
            enabled_cluster_log_types=CONTROL_PLANE_LOGS,
            access_config={"authentication_mode": "API"},
            tags=tags,
            opts=children_of(self, opts, provider=provider, protect=args.protect, depends_on=[attach, logs]),
        )
        aws.eks.Addon(f"{name}-pod-identity", cluster_name=cluster.name, addon_name="eks-pod-identity-agent",
                      tags=tags, opts=on_aws)

        node_role = aws.iam.Role(f"{name}-node-role", assume_role_policy=trust_policy("ec2.amazonaws.com"),
                                 tags=tags, opts=on_aws)
        node_policies = [
            aws.iam.RolePolicyAttachment(f"{name}-node-{short}", role=node_role.name,
                                         policy_arn=f"arn:aws:iam::aws:policy/{policy}", opts=on_aws)
            for short, policy in (("worker", "AmazonEKSWorkerNodePolicy"), ("cni", "AmazonEKS_CNI_Policy"),
                                  ("ecr", "AmazonEC2ContainerRegistryReadOnly"),
                                  ("ssm", "AmazonSSMManagedInstanceCore"))
        ]
        system = aws.eks.NodeGroup(
            f"{name}-system",
            cluster_name=cluster.name,
            node_role_arn=node_role.arn,
            subnet_ids=[s.id for s in private_subnets],
            instance_types=["m6i.xlarge"],
            capacity_type="ON_DEMAND",
            scaling_config={"min_size": 2, "desired_size": 2, "max_size": 4},
            labels={"llmplane.dev/role": "system"},
            tags=tags,
            opts=children_of(self, opts, provider=provider, depends_on=node_policies),
        )
        aws.eks.AccessEntry(f"{name}-node-access", cluster_name=cluster.name, principal_arn=node_role.arn,
                            type="EC2_LINUX", tags=tags, opts=on_aws)
        karpenter_role = aws.iam.Role(f"{name}-karpenter", assume_role_policy=trust_policy(POD_IDENTITY),
                                      tags=tags, opts=on_aws)
        interruptions = self._interruption_queue(name, spec.name, tags, on_aws)
        aws.iam.RolePolicy(f"{name}-karpenter", role=karpenter_role.id,
                           policy=_karpenter_policy(node_role.arn, interruptions.arn), opts=on_aws)
        aws.eks.PodIdentityAssociation(f"{name}-karpenter", cluster_name=cluster.name, namespace="kube-system",
                                       service_account="karpenter", role_arn=karpenter_role.arn, tags=tags,
                                       opts=on_aws)
        self.registry = aws.ecr.Repository(
            f"{name}-vllm-repo",
            name="llmplane/vllm",
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "KMS", "kms_key": key.arn}],
            tags=tags,
            opts=keep_aws,
        )

        token = aws.ecr.get_authorization_token_output(registry_id=self.registry.registry_id,
                                                       opts=pulumi.InvokeOptions(parent=self, provider=provider))
        self.registry_login = RegistryLogin(repository=self.registry.repository_url, address=token.proxy_endpoint,
                                            username=token.user_name, password=token.password)
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=kubeconfig(cluster.name, cluster.endpoint, cluster.certificate_authority.data, spec.region),
            enable_server_side_apply=True,
            opts=children_of(self, opts, depends_on=[system]),
        )
        on_k8s = children_of(self, opts, provider=self.provider)
        karpenter = KARPENTER.release(f"{name}-karpenter", "kube-system", {
            "settings": {"clusterName": cluster.name, "clusterEndpoint": cluster.endpoint,
                         "interruptionQueue": interruptions.name},
            "controller": {"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
        }, on_k8s)
        NVIDIA_DEVICE_PLUGIN.release(f"{name}-nvidia-device-plugin", "kube-system", {
            "tolerations": [{"key": GPU_TAINT["key"], "operator": "Exists", "effect": "NoSchedule"}],
            "nodeSelector": {"karpenter.k8s.aws/instance-gpu-manufacturer": "nvidia"},
        }, on_k8s)
        AWS_LOAD_BALANCER_CONTROLLER.release(f"{name}-aws-lb-controller", "kube-system", {
            "clusterName": cluster.name, "region": spec.region, "vpcId": vpc.id,
        }, on_k8s)
        after_karpenter = children_of(self, opts, provider=self.provider, depends_on=[karpenter])
        for pool in spec.pools:
            self._gpu_pool(name, spec.name, pool, node_role.name, tags, after_karpenter)

        self.cluster_name = cluster.name
        self.endpoint = cluster.endpoint
        self.vpc_id = vpc.id
        self.private_route_table_ids = pulumi.Output.all(*[rt.id for rt in private_rts])
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in private_subnets])
        self.registry_url = self.registry.repository_url
        self.network = AwsNetwork(provider=provider, eks_cluster_name=cluster.name, vpc_id=vpc.id,
                                  private_subnet_ids=self.private_subnet_ids,
                                  private_route_tables=[rt.id for rt in private_rts])
        self.register_outputs({
            "cluster_name": self.cluster_name, "endpoint": self.endpoint, "vpc_id": self.vpc_id,
            "private_route_table_ids": self.private_route_table_ids, "registry_url": self.registry_url,
            "private_subnet_ids": self.private_subnet_ids,
        })

    def bind_workload_identity(self, name: str, readers: WorkloadReaders) -> dict[str, pulumi.Output[str]]:
        """EKS Pod Identity: one role that may `s3:GetObject` exactly the readers' s3:// objects, associated with
        each service account (no annotation needed)."""
        arns = sorted({arn for arn in map(s3_object_arn, readers.uris) if arn})
        if arns:
            WeightsAccess(name, WeightsAccessArgs(
                cluster_name=self.network.eks_cluster_name, namespace=readers.namespace,
                service_accounts=list(readers.service_accounts), object_arns=arns, tags=dict(readers.tags),
                list_prefixes=sorted({f for f in map(s3_folder, readers.uris) if f}),
            ), opts=moved_under(self, self._opts, provider=self.network.provider))
        return {}

    @staticmethod
    def _interruption_queue(name: str, cluster: str, tags: dict[str, str],
                            opts: pulumi.ResourceOptions) -> aws.sqs.Queue:
        """The SQS queue Karpenter reads spot interruption warnings, rebalance recommendations, scheduled
        maintenance and instance state changes from, so GPU replicas drain before a spot node is taken away."""
        queue = aws.sqs.Queue(f"{name}-interruptions", name=f"{cluster}-karpenter", message_retention_seconds=300,
                              sqs_managed_sse_enabled=True, tags=tags, opts=opts)
        aws.sqs.QueuePolicy(f"{name}-interruptions", queue_url=queue.url, policy=queue.arn.apply(
            lambda arn: json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
                "Action": "sqs:SendMessage", "Resource": arn}]})), opts=opts)
        for short, pattern in INTERRUPTION_EVENTS.items():
            rule = aws.cloudwatch.EventRule(f"{name}-{short}", event_pattern=json.dumps(pattern), tags=tags,
                                            opts=opts)
            aws.cloudwatch.EventTarget(f"{name}-{short}", rule=rule.name, arn=queue.arn, opts=opts)
        return queue

    @staticmethod
    def _gpu_pool(name: str, cluster: str, pool: GpuNodePool, node_role: pulumi.Input[str], tags: dict[str, str],
                  opts: pulumi.ResourceOptions) -> None:
        """An EC2NodeClass and a NodePool: on-demand base, spot above it, GPU taint, GPU-type label, limits."""
        shape = require_shape("aws", pool, name)
        class_name = f"{pool.name}-gpu"
        labels = k8s_labels(name="gpu-pool", instance=pool.name, component="node-pool")
        k8s.apiextensions.CustomResource(
            f"{name}-{pool.name}-nodeclass",
            api_version="karpenter.k8s.aws/v1",
            kind="EC2NodeClass",
            metadata={"name": class_name, "labels": labels},
            spec={
                "role": node_role,
                "amiSelectorTerms": [{"alias": "al2023@latest"}],
                "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": cluster}}],
                "securityGroupSelectorTerms": [{"tags": {"aws:eks:cluster-name": cluster}}],
                "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {
                    "volumeSize": "300Gi", "volumeType": "gp3", "encrypted": True}}],
                # Instance-store NVMe joined into one RAID0 array: pods' ephemeral storage and the model cache.
                **({"instanceStorePolicy": "RAID0"} if pool.local_cache_gb else {}),
                "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1},
                "tags": tags,
            },
            opts=opts,
        )
        def node_pool(suffix: str, capacity: list[str], gpu_nodes: int, disruption: dict, weight: int) -> None:
            k8s.apiextensions.CustomResource(
                f"{name}-{pool.name}-{suffix}",
                api_version="karpenter.sh/v1",
                kind="NodePool",
                metadata={"name": pool.name if suffix == "nodepool" else f"{pool.name}-{suffix}", "labels": labels},
                spec={
                    "template": {
                        "metadata": {"labels": {GPU_TYPE_LABEL: pool.gpu_type, POOL_LABEL: pool.name}},
                        "spec": {
                            "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass",
                                             "name": class_name},
                            "taints": [GPU_TAINT],
                            "requirements": [
                                {"key": "node.kubernetes.io/instance-type", "operator": "In",
                                 "values": [shape.machine_type]},
                                {"key": "karpenter.sh/capacity-type", "operator": "In", "values": capacity},
                            ],
                            "expireAfter": "720h",
                        },
                    },
                    "limits": {GPU_RESOURCE: str(gpu_nodes * pool.gpus_per_node)},
                    "disruption": disruption,
                    "weight": weight,
                },
                opts=opts,
            )

        capacity = ["on-demand"] if pool.capacity_type == "on-demand" else ["spot", "on-demand"]
        node_pool("nodepool", capacity, pool.nodes_max,
                  {"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "10m"}, 10)
        if pool.capacity_type == "spot" and pool.on_demand_base > 0:
            # Karpenter fills the heavier-weighted pool first: the on-demand base, then spot above it.
            node_pool("base", ["on-demand"], pool.on_demand_base,
                      {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "30m"}, 100)


def _karpenter_policy(node_role_arn: pulumi.Input[str], queue_arn: pulumi.Input[str]) -> pulumi.Output[str]:
    """Least privilege Karpenter needs to launch and terminate nodes, pass the node role and read interruptions."""
    return pulumi.Output.all(node_role_arn, queue_arn).apply(lambda v: json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Resource": v[1], "Action": ["sqs:DeleteMessage", "sqs:GetQueueUrl",
                                                             "sqs:ReceiveMessage"]},
            {"Effect": "Allow", "Resource": "*", "Action": [
                "ec2:CreateFleet", "ec2:CreateLaunchTemplate", "ec2:CreateTags", "ec2:DeleteLaunchTemplate",
                "ec2:RunInstances", "ec2:TerminateInstances", "ec2:Describe*", "pricing:GetProducts",
                "ssm:GetParameter", "eks:DescribeCluster", "iam:GetInstanceProfile", "iam:CreateInstanceProfile",
                "iam:TagInstanceProfile", "iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile",
                "iam:DeleteInstanceProfile"]},
            {"Effect": "Allow", "Action": "iam:PassRole", "Resource": v[0]},
        ],
    }))
