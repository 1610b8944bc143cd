"""Human and JSON renderings of an offline plan."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

from .plan import Plan, PlannedResource


def _root_component(resource: PlannedResource, by_urn: dict[str, PlannedResource]) -> PlannedResource:
    """The top-level component (a cluster, or a per-cluster component) a resource belongs to."""
    node = resource
    while node.parent in by_urn:
        node = by_urn[node.parent]
    return node


def inventory(plan: Plan) -> str:
    """Resources grouped by cluster (with its cloud and region), then by type, with counts."""
    by_urn = plan.by_urn()
    clusters = {c.name: c for c in plan.spec.clusters}
    groups: dict[str, Counter[str]] = defaultdict(Counter)
    for resource in plan.resources:
        root = _root_component(resource, by_urn)
        cluster = next((name for name in clusters if root.name == name or root.name.startswith(f"{name}-")), None)
        group = f"{cluster} ({clusters[cluster].cloud} {clusters[cluster].region})" if cluster else root.name
        groups[group][resource.type] += 1
    lines = [f"llmplane plan {plan.environment}: {len(plan.resources)} resources (offline, Pulumi mocks)"]
    for group in sorted(groups):
        counts = groups[group]
        lines.append(f"\n{group}: {sum(counts.values())} resources")
        lines += [f"  {count:4d}  {type_}" for type_, count in sorted(counts.items())]
    lines += [f"\nnote: {note}" for note in plan.notes]
    return "\n".join(lines)


def as_json(plan: Plan, policies: list[dict] | None = None) -> str:
    """The plan as one JSON object: environment, resources, policies."""
    return json.dumps(
        {
            "environment": plan.environment,
            "resources": [r.as_json() for r in plan.resources],
            "policies": policies or [],
        },
        indent=2,
        sort_keys=False,
    )
