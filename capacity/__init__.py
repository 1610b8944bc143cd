"""Capacity planning: replay request traces against a model version's autoscaling policy, next to static and
clairvoyant baselines. `AutoscalingPolicy.from_spec` is the one reading of the spec's autoscaling thresholds."""

from .policy import AutoscalingPolicy

__all__ = ["AutoscalingPolicy"]
