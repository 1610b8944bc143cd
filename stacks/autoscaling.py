"""The one reading of a model version's autoscaling thresholds from the spec.

The ScaledObject compose() deploys and the trace the capacity planner replays both take this policy."""

from __future__ import annotations

from components.autoscaling.policy import AutoscalingPolicy

from .spec.models import Autoscaling, DeployedVersion, Model


def policy_of(autoscaling: Autoscaling, model: Model, version: DeployedVersion | str, name: str) -> AutoscalingPolicy:
    """The policy of `name`'s deployed `version` (a DeployedVersion or its version string)."""
    if isinstance(version, str):
        matches = [v for v in model.versions if v.version == version]
        if not matches:
            deployed = ", ".join(v.version for v in model.versions)
            raise ValueError(f"model '{name}' does not deploy version '{version}' (deployed: {deployed})")
        version = matches[0]
    bounds = model.replicas_of(version)
    return AutoscalingPolicy(
        served_model_name=f"{name}:{version.version}",
        min_replicas=bounds.min,
        max_replicas=bounds.max,
        keda=autoscaling.keda,
        queue_per_replica=autoscaling.queue_per_replica,
        kv_cache_target=autoscaling.kv_cache_target,
        scale_up_seconds=autoscaling.scale_up_seconds,
        scale_down_seconds=autoscaling.scale_down_seconds,
        polling_seconds=autoscaling.polling_seconds,
        scale_to_zero=autoscaling.scale_to_zero and bounds.min == 0,
        activation_queue=autoscaling.activation_queue,
        cooldown_seconds=autoscaling.cooldown_seconds,
    )
