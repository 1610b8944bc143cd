"""Helm charts the clusters install, pinned: repository, chart and version in one place."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s


@dataclass(frozen=True)
class Chart:
    """A pinned Helm chart."""

    chart: str
    version: str
    repo: str

    def release(self, name: str, namespace: pulumi.Input[str], values: dict, opts: pulumi.ResourceOptions,
                create_namespace: bool = False) -> k8s.helm.v3.Release:
        """An atomic Helm release of exactly this version (OCI repositories are part of the chart reference)."""
        oci = self.repo.startswith("oci://")
        return k8s.helm.v3.Release(
            name,
            chart=f"{self.repo}/{self.chart}" if oci else self.chart,
            version=self.version,
            repository_opts=None if oci else {"repo": self.repo},
            namespace=namespace,
            create_namespace=create_namespace or None,
            values=values,
            atomic=True,
            opts=opts,
        )


KARPENTER = Chart("karpenter", "1.8.1", "oci://public.ecr.aws/karpenter")
NVIDIA_DEVICE_PLUGIN = Chart("nvidia-device-plugin", "0.17.4", "https://nvidia.github.io/k8s-device-plugin")
AWS_LOAD_BALANCER_CONTROLLER = Chart("aws-load-balancer-controller", "1.14.0", "https://aws.github.io/eks-charts")
KEDA = Chart("keda", "2.18.1", "https://kedacore.github.io/charts")
