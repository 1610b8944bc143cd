"""The policy pack over an offline plan: every rule on the plan's resources, at the environment's enforcement.

Same rules as the CrossGuard pack, fed the plan's recorded inputs instead of the engine's.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from llmplane.policies.base import Context, ResourceView
from llmplane.policies.config import enforcement_levels
from llmplane.policies.rules import RULES, Rule

from .plan import Plan, PlannedResource

CLUSTER_TYPE_PREFIX = "llmplane:cluster:"
"""The type of a cluster's component (AwsGpuCluster, GcpGpuCluster, OnPremGpuCluster), the tree's second level."""
MOCK_ID_SUFFIX = "-id"
"""The offline plan's mocks give every resource the id `<name>-id` (stacks/plan.py), which is what another
resource's input carries when it refers to it (e.g. a bucket setting's `bucket`)."""


def _scope(resource: PlannedResource, by_urn: dict[str, PlannedResource], clusters: list[str]) -> str | None:
    """The cluster a resource belongs to, read from the tree: the cluster component among its ancestors (itself
    included); None for what spans clusters (hybrid links, global routing)."""
    node: PlannedResource | None = resource
    while node is not None:
        if node.type.startswith(CLUSTER_TYPE_PREFIX) and node.name in clusters and node.parent not in by_urn:
            return node.name
        node = by_urn.get(node.parent)
    return None


def views(plan: Plan) -> list[ResourceView]:
    """The plan's resources as rules see them."""
    by_urn = plan.by_urn()
    clusters = [c.name for c in plan.spec.clusters]
    return [
        ResourceView(
            type=r.type,
            urn=r.urn,
            props=r.inputs,
            name=r.name,
            scope=_scope(r, by_urn, clusters),
            ids=(f"{r.name}{MOCK_ID_SUFFIX}",),
        )
        for r in plan.resources
    ]


def evaluate(plan: Plan, rules: list[Rule] = RULES) -> list[dict[str, Any]]:
    """Every violation as `{"policy", "enforcement", "urn", "message"}`; disabled policies are skipped."""
    levels = enforcement_levels(plan.spec.policy, plan.environment, rules)
    context = Context(environment=plan.environment, secrets_marked=True)
    resources = views(plan)
    found = []
    for rule in rules:
        level = levels[rule.name]
        if level == "disabled":
            continue
        for finding in rule.run(resources, context):
            found.append({"policy": rule.name, "enforcement": level, "urn": finding.urn, "message": finding.message})
    return found


def mandatory(violations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The violations that stop a deployment."""
    return [v for v in violations if v["enforcement"] == "mandatory"]


def verdict(plan: Plan, violations: list[dict[str, Any]], rules: list[Rule] = RULES) -> str:
    """A short human section: policies run, violations by enforcement, every mandatory one in full."""
    levels = enforcement_levels(plan.spec.policy, plan.environment, rules)
    active = Counter(level for level in levels.values())
    counts = Counter(v["enforcement"] for v in violations)
    lines = [
        f"\npolicies: {len(rules) - active['disabled']} run ({active['mandatory']} mandatory, "
        f"{active['advisory']} advisory, {active['disabled']} disabled)",
        f"  violations: {counts['mandatory']} mandatory, {counts['advisory']} advisory",
    ]
    advisory = Counter(v["policy"] for v in violations if v["enforcement"] == "advisory")
    if advisory:
        lines.append("  advisory: " + ", ".join(f"{name} x{count}" for name, count in sorted(advisory.items())))
    blocking = mandatory(violations)
    if blocking:
        lines.append("  MANDATORY violations (the engine would refuse to deploy):")
        for v in blocking:
            lines.append(f"    [{v['policy']}] {v['message']}")
            if v["urn"]:
                lines.append(f"        {v['urn']}")
        by_name = {rule.name: rule for rule in rules}
        lines.append("  how to fix:")
        for name in sorted({v["policy"] for v in blocking}):
            lines.append(f"    {name}: {by_name[name].remediation}")
    return "\n".join(lines)
