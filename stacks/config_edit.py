"""Edits to an environment file that keep everything else as written (comments, order, layout), and their diff.

PyYAML's composer gives every node's place in the text: a value that is there is replaced where it stands, a key
that is not is added to its mapping after the mapping's last line, written in flow style.
"""

from __future__ import annotations

import difflib
from typing import Any

import yaml

ConfigPath = tuple[str | int, ...]


def flow(value: Any) -> str:
    """A value in YAML flow style: `{min: 9, max: 9}`, `fp8`, `1.0`."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {flow(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(flow(item) for item in value) + "]"
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()


def _child(node: yaml.Node, key: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.SequenceNode):
        return node.value[key] if isinstance(key, int) and key < len(node.value) else None
    if isinstance(node, yaml.MappingNode):
        return next((v for k, v in node.value if k.value == key), None)
    return None


def _last_leaf(node: yaml.Node) -> yaml.Node:
    """The node whose text ends a block collection (a block's own end mark lies at the next key, past comments)."""
    while isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and not node.flow_style and node.value:
        last = node.value[-1]
        node = last[1] if isinstance(node, yaml.MappingNode) else last
    return node


def set_value(text: str, path: ConfigPath, value: Any) -> str:
    """`text` with the value at `path` (under the file's `config:`) set to `value`."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    full = ("config", *path)
    for depth, key in enumerate(full):
        child = _child(node, key)
        if child is None:
            rest = value
            for inner in reversed(full[depth + 1:]):
                rest = {inner: rest}
            if not isinstance(node, yaml.MappingNode) or node.flow_style:
                raise ValueError(f"cannot add {'.'.join(map(str, full[:depth + 1]))} to the file's layout")
            indent = " " * node.value[0][0].start_mark.column
            at = _last_leaf(node).end_mark.index
            return f"{text[:at]}\n{indent}{key}: {flow(rest)}{text[at:]}"
        node = child
    if isinstance(value, dict) and isinstance(node, yaml.MappingNode) and not node.flow_style:
        for key, item in value.items():
            text = set_value(text, (*path, key), item)
        return text
    return text[:node.start_mark.index] + flow(value) + text[_last_leaf(node).end_mark.index:]


def unified_diff(before: str, after: str, name: str) -> str:
    """The change as `git diff` shows it."""
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        f"a/{name}", f"b/{name}"))
