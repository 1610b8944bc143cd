"""Every llmplane policy as a plain-Python `Rule`, in one list: the CrossGuard pack and the offline
evaluator both run exactly these."""

from __future__ import annotations

from . import aws, gateway, gcp, kubernetes, network, platform
from .base import Context, Finding, ResourceView, Rule

RULES: list[Rule] = [*kubernetes.RULES, *aws.RULES, *gcp.RULES, *platform.RULES, *gateway.RULES, *network.RULES]
"""All policies, Kubernetes first, then AWS, GCP, platform, the inference gateway and the network boundary."""

BY_NAME: dict[str, Rule] = {rule.name: rule for rule in RULES}
assert len(BY_NAME) == len(RULES), "policy names must be unique"

__all__ = ["BY_NAME", "RULES", "Context", "Finding", "ResourceView", "Rule"]
