"""What every cluster component shares: its spec, ownership, and the Kubernetes provider it hands on."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi

from components.labels import Ownership
from stacks.spec.models import Cluster

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
"""Taint on every GPU node, so only pods that tolerate it (vLLM) land there."""


@dataclass(frozen=True)
class ClusterArgs:
    """Inputs of a cluster component."""

    cluster: Cluster
    """The cluster's spec section."""
    ownership: Ownership
    """Tags and labels for cost and ownership."""
    protect: bool = False
    """Protect the cluster and its stateful parts from deletion (prod)."""
    private_endpoint: bool = False
    """Keep the Kubernetes API off the internet (prod)."""
    kubeconfig: pulumi.Input[str] | None = None
    """On-prem: the cluster's kubeconfig, a Pulumi secret."""
    gcp_project: str | None = None
    """GCP: the project id (Workload Identity pool)."""
    render_dir: str | None = None
    """On-prem without kubeconfig: the render folder as the Kubernetes provider must see it (relative to the
    program's directory, where the engine starts plugins)."""


def exec_kubeconfig(server: pulumi.Input[str], ca_data: pulumi.Input[str], user_exec: dict) -> pulumi.Output[str]:
    """A kubeconfig whose user authenticates through a cloud CLI plugin (`user_exec`): no static credentials."""
    return pulumi.Output.all(server, ca_data).apply(lambda v: json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "cluster",
        "clusters": [{"name": "cluster", "cluster": {"server": v[0], "certificate-authority-data": v[1]}}],
        "contexts": [{"name": "cluster", "context": {"cluster": "cluster", "user": "cluster"}}],
        "users": [{"name": "cluster", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1", **user_exec}}}],
    }))


def stateful(protect: bool, parent: pulumi.Resource) -> pulumi.ResourceOptions:
    """Options of a slow-to-rebuild resource: protected when the environment asks for it."""
    return pulumi.ResourceOptions(parent=parent, protect=protect)
