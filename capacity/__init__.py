"""Capacity planning: replay request traces against a model version's autoscaling policy, next to static and
clairvoyant baselines. `stacks.autoscaling.policy_of` is the one reading of the spec's autoscaling thresholds."""

from components.autoscaling.policy import AutoscalingPolicy

__all__ = ["AutoscalingPolicy"]
