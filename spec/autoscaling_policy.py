"""The autoscaling policy of one model version: what its autoscaler does, as plain values.

The KEDA ScaledObject (or HPA) that `components/` builds and the capacity planner that replays traces against
it both take the same `AutoscalingPolicy`, which llmplane's environment layer reads from the spec in one place
(`PlatformSpec.autoscaling_policy`), so what the planner proves is what ships.

Semantics replayed (Kubernetes HPA v2 driven by KEDA):
- trigger 1, queue: `sum(vllm:num_requests_waiting{model_name="<model>:<version>"})`, target type
  AverageValue `queue_per_replica` -> desired = ceil(waiting / queue_per_replica);
- trigger 2, KV cache: `avg(vllm:kv_cache_usage_perc{model_name=...})`, target `kv_cache_target` on the
  average, i.e. desired = ceil(current * usage / kv_cache_target). In a KEDA Prometheus trigger this is
  `metricType: Value` (an AverageValue target would divide the average once more by the replica count);
- each proposal is ignored within the HPA tolerance (10 %), the larger proposal wins;
- scale-up stabilisation: the smallest recommendation of the last `scale_up_seconds`; scale-down: the largest
  of the last `scale_down_seconds`; rate limits (`behavior()`): up by at most max(+4 pods, +100 %) per 15 s,
  down by at most 1 pod per 300 s;
- clamped to [min, max]; with scale to zero (spec allows it and min is 0) KEDA removes the last replica after
  `cooldown_seconds` without activity and brings one back when waiting requests exceed `activation_queue`.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplane.monitoring import scaling_queries

HPA_TOLERANCE = 0.1
"""Kubernetes HPA ignores a metric/target ratio within 10 % of 1 (kube-controller-manager's
`--horizontal-pod-autoscaler-tolerance` default)."""

HPA_SCALE_UP_PODS = 4
"""Scale-up rate: add up to 4 pods ..."""

HPA_SCALE_UP_PERCENT = 100
"""... or 100 % of the replicas, whichever is more ..."""

HPA_SCALE_UP_PERIOD_SECONDS = 15
"""... per 15 seconds (the autoscaling/v2 default `behavior.scaleUp.policies`)."""

HPA_SCALE_DOWN_PODS = 1
"""Scale-down rate: remove at most one replica ..."""

HPA_SCALE_DOWN_PERIOD_SECONDS = 300
"""... every five minutes: a removed GPU replica costs minutes to bring back."""


@dataclass(frozen=True)
class AutoscalingPolicy:
    """What one model version's autoscaler does: the thresholds a ScaledObject carries and the planner replays."""

    served_model_name: str
    """The `model_name` label of the version's vLLM metrics, `<model>:<version>`."""
    min_replicas: int
    """Fewest replicas (0 only with scale to zero)."""
    max_replicas: int
    """Most replicas."""
    keda: bool
    """KEDA ScaledObject; a plain HPA on custom metrics otherwise."""
    queue_per_replica: float
    """AverageValue target of the waiting-requests trigger."""
    kv_cache_target: float
    """Target of the average KV-cache usage (0-1)."""
    scale_up_seconds: int
    """HPA `behavior.scaleUp.stabilizationWindowSeconds`."""
    scale_down_seconds: int
    """HPA `behavior.scaleDown.stabilizationWindowSeconds`."""
    polling_seconds: int
    """KEDA `pollingInterval`: how often the triggers are read."""
    scale_to_zero: bool
    """Whether the version may go to zero replicas (the spec allows it and min is 0)."""
    activation_queue: float
    """KEDA `activationThreshold` of the queue trigger: waiting requests above it wake the version from zero."""
    cooldown_seconds: int
    """KEDA `cooldownPeriod`: idle seconds before the last replica goes."""
    tolerance: float = HPA_TOLERANCE
    """Ratio band around 1 in which the HPA does not scale."""
    scale_up_pods: int = HPA_SCALE_UP_PODS
    """Pods the HPA may add per `scale_up_period_seconds` (or `scale_up_percent`, whichever is more)."""
    scale_up_percent: int = HPA_SCALE_UP_PERCENT
    """Percent of the replicas the HPA may add per period."""
    scale_up_period_seconds: int = HPA_SCALE_UP_PERIOD_SECONDS
    """Period of the scale-up rate limits."""
    scale_down_pods: int = HPA_SCALE_DOWN_PODS
    """Pods the HPA may remove per `scale_down_period_seconds`."""
    scale_down_period_seconds: int = HPA_SCALE_DOWN_PERIOD_SECONDS
    """Period of the scale-down rate limit."""

    def __post_init__(self) -> None:
        if not 0 < self.kv_cache_target <= 1:
            raise ValueError(f"autoscaling policy of {self.served_model_name}: kv_cache_target "
                             f"{self.kv_cache_target} is not a usage share; give one above 0 and at most 1")
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError(f"autoscaling policy of {self.served_model_name}: min_replicas {self.min_replicas} and "
                             f"max_replicas {self.max_replicas}; give 0 <= min <= max")

    def behavior(self) -> dict:
        """The HPA `behavior` (also KEDA's `advanced.horizontalPodAutoscalerConfig.behavior`): the windows and
        rate limits the planner replays."""
        return {
            "scaleUp": {"stabilizationWindowSeconds": self.scale_up_seconds, "selectPolicy": "Max",
                        "policies": [{"type": "Pods", "value": self.scale_up_pods,
                                      "periodSeconds": self.scale_up_period_seconds},
                                     {"type": "Percent", "value": self.scale_up_percent,
                                      "periodSeconds": self.scale_up_period_seconds}]},
            "scaleDown": {"stabilizationWindowSeconds": self.scale_down_seconds, "selectPolicy": "Min",
                          "policies": [{"type": "Pods", "value": self.scale_down_pods,
                                        "periodSeconds": self.scale_down_period_seconds}]},
        }

    @property
    def hpa_min_replicas(self) -> int:
        """`minReplicaCount` of the ScaledObject / `minReplicas` of the HPA (at least 1 unless scale to zero)."""
        return self.min_replicas if self.scale_to_zero else max(self.min_replicas, 1)

    @property
    def queue_query(self) -> str:
        """PromQL of the queue trigger: one value, summed over the version's replicas."""
        return scaling_queries.queue_depth(self.served_model_name)

    @property
    def kv_cache_query(self) -> str:
        """PromQL of the KV-cache trigger: the average usage over the version's replicas."""
        return scaling_queries.kv_cache_usage(self.served_model_name)
