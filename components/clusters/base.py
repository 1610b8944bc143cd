"""What every cluster component shares: its plain-value arguments and the one interface the serving layer uses.

A program picks a cluster kind (AwsGpuCluster, GcpGpuCluster, OnPremGpuCluster) once; everything after that talks to
`GpuCluster`: the Kubernetes provider, the image registry, the identity binding for workloads and the network
handles other components attach to. No caller needs to know which kind it holds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_kubernetes as k8s
from llmplane.components.labels import Ownership
from llmplane.components.options import children_of
from llmplane.components.serving.vllm_image import RegistryLogin
from llmplane.facts.clouds import MachineShape, gpu_types_offered, machine_shape, shapes_offered
from llmplane.facts.kubernetes import GPU_TAINT_KEY

GPU_TAINT = {"key": GPU_TAINT_KEY, "value": "true", "effect": "NoSchedule"}
"""Taint on every GPU node, so only pods that tolerate it (vLLM) land there."""


@dataclass(frozen=True)
class GpuNodePool:
    """A pool of identical GPU nodes."""

    name: str
    """Pool name, unique in its cluster (the `llmplane.dev/pool` node label)."""
    gpu_type: str
    """GPU model, e.g. `nvidia-l4` (the `llmplane.dev/gpu-type` node label; a key of `facts.gpus.GPU_MEMORY_GB`)."""
    gpus_per_node: int
    """GPUs on each node; with `gpu_type` it picks the machine shape (`facts.clouds.machine_shape`)."""
    nodes_min: int = 0
    """Fewest nodes the pool keeps."""
    nodes_max: int = 1
    """Most nodes the pool may grow to."""
    capacity_type: Literal["on-demand", "spot"] = "on-demand"
    """on-demand, or spot above `on_demand_base` on-demand nodes."""
    on_demand_base: int = 0
    """Nodes kept on-demand under a spot pool."""
    local_cache_gb: int = 0
    """Local disk the nodes give pods and the model cache, GB: AWS joins the instance store into one RAID0 array
    (the machine must have instance store); GKE attaches enough local SSDs. 0: network disks only."""
    image_streaming: bool = False
    """Start containers before their image is fully pulled where the cloud can (GKE image streaming)."""


@dataclass(frozen=True)
class ClusterArgs:
    """Inputs of a cluster component; each kind reads the fields that apply to it."""

    name: str
    """Cluster name (EKS/GKE cluster name, tag and resource-name prefix)."""
    region: str
    """Cloud region (on-prem: a site name)."""
    ownership: Ownership
    """Tags and labels for cost and ownership."""
    pools: Sequence[GpuNodePool] = ()
    """GPU node pools (cloud clusters create them; on-prem operators label their own nodes)."""
    zones: Sequence[str] = ()
    """Zones to spread over (AWS: one subnet pair each, at least two for EKS; GKE: node locations)."""
    kubernetes_version: str = "1.33"
    """Kubernetes minor version of the control plane."""
    network_cidr: str | None = None
    """VPC (AWS) or node subnet (GCP) range."""
    protect: bool = False
    """Protect the cluster and its stateful parts from deletion (prod)."""
    private_endpoint: bool = False
    """Keep the Kubernetes API off the internet (prod)."""
    kubeconfig: pulumi.Input[str] | None = None
    """On-prem: the cluster's kubeconfig, a Pulumi secret."""
    gcp_project: str | None = None
    """GCP: the project id (Workload Identity pool)."""
    render_dir: str | None = None
    """On-prem without kubeconfig: render manifests to this folder instead of deploying, as the Kubernetes
    provider must see it (relative to the program's directory, where the engine starts plugins)."""

    def __post_init__(self) -> None:
        names = [pool.name for pool in self.pools]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"cluster {self.name}: pool name(s) {', '.join(map(repr, twice))} used twice; give every "
                             "pool its own name (it is the nodes' `llmplane.dev/pool` label)")


@dataclass(frozen=True)
class AwsNetwork:
    """An AWS cluster's handles for components that add resources beside it (links, buckets, roles)."""

    provider: pulumi.ProviderResource
    """The region's AWS provider."""
    eks_cluster_name: pulumi.Input[str]
    """EKS cluster name (Pod Identity associations name it)."""
    vpc_id: pulumi.Input[str]
    """The VPC."""
    private_subnet_ids: pulumi.Input[list[str]]
    """Private subnets, one per zone."""
    private_route_tables: Sequence[pulumi.Input[str]]
    """Private route tables one by one, so a component can add a route to each without an apply."""


@dataclass(frozen=True)
class GcpNetwork:
    """A GCP cluster's handles for components that add resources beside it."""

    network_id: pulumi.Input[str]
    """The VPC network."""
    project: str | None = None
    """The project (Workload Identity pool `<project>.svc.id.goog`)."""


ClusterNetwork = AwsNetwork | GcpNetwork
"""Network handles of a cloud cluster; on-prem clusters have none."""


def cloud_of(network: ClusterNetwork | None) -> str:
    """aws, gcp or onprem, from a cluster's network handles."""
    return "aws" if isinstance(network, AwsNetwork) else "gcp" if isinstance(network, GcpNetwork) else "onprem"


@dataclass(frozen=True)
class WorkloadReaders:
    """Kubernetes service accounts that must read objects in the cloud's storage, with no static credentials."""

    namespace: str
    """Namespace of the service accounts."""
    service_accounts: Sequence[str]
    """Their names."""
    uris: Sequence[str]
    """Object URIs they read (s3://bucket/key, gs://bucket/key; others need no cloud identity)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags for the identity resources."""


class GpuCluster(pulumi.ComponentResource):
    """The interface of every cluster kind."""

    provider: k8s.Provider
    """Provider the serving layer deploys through."""
    cluster_name: pulumi.Output[str]
    """The cluster's name."""
    registry_login: RegistryLogin | None = None
    """Where the serving image is pushed, or None when the cluster pulls the public image (on-prem)."""
    network: ClusterNetwork | None = None
    """Handles for hybrid links and cloud resources beside the cluster; None on-prem."""

    def bind_workload_identity(self, name: str, readers: WorkloadReaders) -> dict[str, pulumi.Output[str]]:
        """Let `readers` read their URIs through the cloud's workload identity; returns the annotations their
        service accounts must carry. A cluster without workload identity (on-prem) grants nothing: its pods
        read with credentials from a Secret, or anonymously from an https mirror."""
        return {}


def exec_kubeconfig(server: pulumi.Input[str], ca_data: pulumi.Input[str], user_exec: dict) -> pulumi.Output[str]:
    """A kubeconfig whose user authenticates through a cloud CLI plugin (`user_exec`): no static credentials."""
    return pulumi.Output.all(server, ca_data).apply(lambda v: json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "cluster",
        "clusters": [{"name": "cluster", "cluster": {"server": v[0], "certificate-authority-data": v[1]}}],
        "contexts": [{"name": "cluster", "context": {"cluster": "cluster", "user": "cluster"}}],
        "users": [{"name": "cluster", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1", **user_exec}}}],
    }))


def require_shape(cloud: str, pool: GpuNodePool, component: str) -> MachineShape:
    """The machine that carries the pool's GPUs in `cloud`, or a clear error naming the shapes there are."""
    shape = machine_shape(cloud, pool.gpu_type, pool.gpus_per_node)
    if shape is None:
        offered = shapes_offered(cloud, pool.gpu_type)
        fix = (f"use gpus_per_node in {offered}" if offered
               else f"use a GPU type {cloud} offers ({', '.join(gpu_types_offered(cloud))})")
        raise ValueError(f"{component}: pool {pool.name!r} asks for {pool.gpus_per_node} x {pool.gpu_type}, which "
                         f"no {cloud} machine carries; {fix}")
    return shape


def moved_under(parent: pulumi.Resource, opts: pulumi.ResourceOptions | None,
                provider: pulumi.ProviderResource | None = None) -> pulumi.ResourceOptions:
    """Options of a child that earlier releases registered at the top of the stack: the alias keeps its state,
    so moving it under its cluster (`parent`, created with `opts`) replaces nothing."""
    return children_of(parent, opts, provider=provider, aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)])
