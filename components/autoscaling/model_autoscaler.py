"""ModelAutoscaler: exactly one autoscaler per vLLM Deployment, KEDA's ScaledObject or an HPA.

Thresholds come from `spec.autoscaling.AutoscalingPolicy`, the same object the capacity planner replays.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
from llmplane.components.labels import k8s_labels
from llmplane.components.options import children_of
from llmplane.components.serving.vllm_service import MONITORING_NAMESPACE
from llmplane.spec.autoscaling_policy import AutoscalingPolicy

PROMETHEUS_URL = f"http://kube-prometheus-stack-prometheus.{MONITORING_NAMESPACE}.svc:9090"
"""Prometheus of the cluster's ObservabilityStack, where the triggers read vLLM's metrics."""

@dataclass(frozen=True)
class ModelAutoscalerArgs:
    """The Deployment to scale and the policy to scale it by."""

    policy: AutoscalingPolicy
    """Thresholds and windows."""
    deployment_name: pulumi.Input[str]
    """The version's Deployment."""
    namespace: pulumi.Input[str]
    """Its namespace."""
    model: str
    """Model name (labels)."""
    version: str
    """Version (labels)."""
    prometheus_url: str = PROMETHEUS_URL
    """Prometheus the triggers query."""
    extra_triggers: tuple[dict, ...] = ()
    """More KEDA triggers, e.g. the HTTP add-on's held requests, which wake a version from zero."""

    def __post_init__(self) -> None:
        if self.extra_triggers and not self.policy.keda:
            raise ValueError(f"ModelAutoscaler {self.model}:{self.version}: extra_triggers are KEDA triggers, but the "
                             "policy uses a plain HPA; set keda=True or drop them")


def scaled_object_spec(policy: AutoscalingPolicy, deployment: pulumi.Input[str],
                       prometheus_url: str = PROMETHEUS_URL, extra_triggers: tuple[dict, ...] = ()) -> dict:
    """KEDA ScaledObject spec: queue depth per replica (AverageValue) and KV-cache usage (Value), and any extra
    triggers (held requests at the gateway, for scale from zero)."""
    spec = {
        "scaleTargetRef": {"name": deployment},
        "pollingInterval": policy.polling_seconds,
        "cooldownPeriod": policy.cooldown_seconds,
        "minReplicaCount": policy.hpa_min_replicas,
        "maxReplicaCount": policy.max_replicas,
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": policy.behavior()}},
        "triggers": [
            {"type": "prometheus", "name": "queue-depth", "metricType": "AverageValue", "metadata": {
                "serverAddress": prometheus_url, "query": policy.queue_query,
                "threshold": str(policy.queue_per_replica),
                "activationThreshold": str(policy.activation_queue)}},
            {"type": "prometheus", "name": "kv-cache", "metricType": "Value", "metadata": {
                "serverAddress": prometheus_url, "query": policy.kv_cache_query,
                "threshold": str(policy.kv_cache_target)}},
            *extra_triggers,
        ],
    }
    return spec


def hpa_spec(policy: AutoscalingPolicy, deployment: pulumi.Input[str]) -> dict:
    """autoscaling/v2 HPA on the same two signals, served by prometheus-adapter as custom/external metrics."""
    selector = {"matchLabels": {"model_name": policy.served_model_name}}
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
        "minReplicas": max(policy.min_replicas, 1),
        "maxReplicas": policy.max_replicas,
        "behavior": policy.behavior(),
        "metrics": [
            {"type": "Pods", "pods": {"metric": {"name": "vllm_num_requests_waiting"},
                                      "target": {"type": "AverageValue",
                                                 "averageValue": str(policy.queue_per_replica)}}},
            {"type": "External", "external": {"metric": {"name": "vllm_kv_cache_usage_perc", "selector": selector},
                                              "target": {"type": "Value", "value": str(policy.kv_cache_target)}}},
        ],
    }


class ModelAutoscaler(pulumi.ComponentResource):
    """The one autoscaler of a model version's Deployment."""

    kind: pulumi.Output[str]
    """ScaledObject or HorizontalPodAutoscaler."""

    def __init__(self, name: str, args: ModelAutoscalerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:autoscaling:ModelAutoscaler", name, None, opts)
        child = children_of(self, opts)
        metadata = {"name": args.deployment_name, "namespace": args.namespace,
                    "labels": k8s_labels(name="vllm", instance=f"{args.model}-{args.version}", component="autoscaler",
                                         version=args.version, model=args.model, model_version=args.version)}
        if args.policy.keda:
            k8s.apiextensions.CustomResource(f"{name}-scaledobject", api_version="keda.sh/v1alpha1",
                                             kind="ScaledObject", metadata=metadata,
                                             spec=scaled_object_spec(args.policy, args.deployment_name,
                                                                       args.prometheus_url, args.extra_triggers),
                                             opts=child)
            kind = "ScaledObject"
        else:
            k8s.autoscaling.v2.HorizontalPodAutoscaler(f"{name}-hpa", metadata=metadata,
                                                       spec=hpa_spec(args.policy, args.deployment_name), opts=child)
            kind = "HorizontalPodAutoscaler"
        self.kind = pulumi.Output.from_input(kind)
        self.register_outputs({"kind": self.kind})
