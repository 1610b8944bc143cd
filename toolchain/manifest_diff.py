"""Property-level diff of two Kubernetes objects, in the engine's terms.

Kubernetes identifies an object by apiVersion, kind, namespace and name:
changing any of them means a different object, so those paths force a
replacement; everything else is an in-place update.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from toolchain.wire_values import child_path, is_secret

REPLACE_PATHS = frozenset({"apiVersion", "kind", "metadata.name", "metadata.namespace"})


class Change(Enum):
    ADD = "add"
    DELETE = "delete"
    UPDATE = "update"


@dataclass
class ObjectDiff:
    """Changed leaf paths, and whether any of them needs a replacement."""

    changes: dict[str, Change] = field(default_factory=dict)

    @property
    def replaces(self) -> set[str]:
        return {p for p in self.changes if p in REPLACE_PATHS}

    @property
    def top_level_keys(self) -> list[str]:
        return sorted({_top_key(p) for p in self.changes})

    @property
    def replaced_top_level_keys(self) -> list[str]:
        return sorted({_top_key(p) for p in self.replaces})


def _top_key(path: str) -> str:
    return path.split(".", 1)[0].split("[", 1)[0]


def diff_objects(old: dict[str, Any], new: dict[str, Any]) -> ObjectDiff:
    result = ObjectDiff()
    _walk(old, new, "", result.changes)
    return result


def _is_object(value: Any) -> bool:
    # A secret is compared whole: its inner structure is not a property path.
    return isinstance(value, dict) and not is_secret(value)


def _walk(old: Any, new: Any, path: str, out: dict[str, Change]) -> None:
    if old == new:
        return
    if _is_object(old) and _is_object(new):
        for key in sorted(old.keys() | new.keys()):
            sub = child_path(path, key)
            if key not in new:
                out[sub] = Change.DELETE
            elif key not in old:
                out[sub] = Change.ADD
            else:
                _walk(old[key], new[key], sub, out)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (o, n) in enumerate(zip(old, new)):
            _walk(o, n, child_path(path, index), out)
    else:
        out[path] = Change.UPDATE
