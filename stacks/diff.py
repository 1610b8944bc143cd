"""Differences between two offline plans, resource by resource and property by property."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .plan import PlannedResource

REPLACE_KEYS: dict[str, tuple[str, ...]] = {
    "kubernetes": ("metadata.name", "metadata.namespace", "apiVersion", "kind"),
    "aws": ("cidrBlock", "name", "availabilityZone", "vpcId", "subnetId"),
    "gcp": ("name", "location", "region", "network", "ipCidrRange"),
}
"""Properties whose change makes the provider replace the resource (the common immutable fields per cloud)."""


@dataclass(frozen=True)
class PropertyChange:
    """One property path and its values before and after (None when absent)."""

    path: str
    before: Any
    after: Any


@dataclass(frozen=True)
class ResourceChange:
    """A resource added, removed, changed in place, or replaced."""

    kind: str
    """added, removed, changed or replaced."""
    urn: str
    type: str
    properties: tuple[PropertyChange, ...] = ()


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and value:
        out = {}
        for index, item in enumerate(value):
            out.update(_flatten(item, f"{prefix}[{index}]"))
        return out
    return {prefix: value}


def property_changes(before: dict[str, Any], after: dict[str, Any]) -> tuple[PropertyChange, ...]:
    """Leaf-level changes between two input dictionaries, in path order."""
    old, new = _flatten(before), _flatten(after)
    return tuple(
        PropertyChange(path, old.get(path), new.get(path))
        for path in sorted(old.keys() | new.keys())
        if old.get(path) != new.get(path)
    )


def _replaces(type_: str, changes: tuple[PropertyChange, ...]) -> bool:
    keys = REPLACE_KEYS.get(type_.split(":")[0], ())
    return any(change.path == key or change.path.startswith(f"{key}.") for change in changes for key in keys)


def diff_plans(base: Sequence[PlannedResource], head: Sequence[PlannedResource]) -> list[ResourceChange]:
    """Every resource that differs between two plans' resources, in the head's order (removed ones last)."""
    old, new = {r.urn: r for r in base}, {r.urn: r for r in head}
    changes: list[ResourceChange] = []
    for urn, resource in new.items():
        if urn not in old:
            changes.append(ResourceChange("added", urn, resource.type))
            continue
        props = property_changes(old[urn].inputs, resource.inputs)
        if props:
            kind = "replaced" if _replaces(resource.type, props) else "changed"
            changes.append(ResourceChange(kind, urn, resource.type, props))
    changes += [ResourceChange("removed", urn, r.type) for urn, r in old.items() if urn not in new]
    return changes
