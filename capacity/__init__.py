"""Capacity planning: replay request traces against a model version's autoscaling policy, next to static and
clairvoyant baselines. `PlatformSpec.autoscaling_policy` is the one reading of the spec's autoscaling thresholds."""

from llmplane.spec.autoscaling_policy import AutoscalingPolicy

__all__ = ["AutoscalingPolicy"]
