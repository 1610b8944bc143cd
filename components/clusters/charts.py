"""Helm charts the clusters install, pinned: repository, chart and version in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Chart:
    """A pinned Helm chart."""

    chart: str
    version: str
    repo: str


KARPENTER = Chart("karpenter", "1.8.1", "oci://public.ecr.aws/karpenter")
NVIDIA_DEVICE_PLUGIN = Chart("nvidia-device-plugin", "0.17.4", "https://nvidia.github.io/k8s-device-plugin")
AWS_LOAD_BALANCER_CONTROLLER = Chart("aws-load-balancer-controller", "1.14.0", "https://aws.github.io/eks-charts")
KEDA = Chart("keda", "2.18.1", "https://kedacore.github.io/charts")
