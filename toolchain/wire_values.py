"""Property values as the engine sends them to a provider.

Values travel as protobuf Structs. Two markers matter to a renderer:
a secret is an object {SIG_KEY: SECRET_SIG, "value": ...} (sent because
our provider accepts secrets), and a value not known yet (preview) is the
string UNKNOWN. Numbers are always doubles on the wire.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict

SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def to_python(struct: struct_pb2.Struct) -> dict[str, Any]:
    return MessageToDict(struct)


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SIG_KEY) == SECRET_SIG


def contains_unknowns(value: Any) -> bool:
    if value == UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(contains_unknowns(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_unknowns(v) for v in value)
    return False


def reveal(value: Any) -> Any:
    """The value with secret wrappers removed (for config, never for files)."""
    if is_secret(value):
        return reveal(value.get("value"))
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def child_path(path: str, key: str | int) -> str:
    """Extend a property path in the engine's syntax: a.b, a["x.y/z"], a[0]."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _PLAIN_KEY.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def for_manifest(
    value: Any, path: str, redact: Callable[[str], str]
) -> Any:
    """Plain data for a YAML file: secrets replaced by `redact(path)`,
    whole-number doubles back to ints (replicas: 1, not 1.0)."""
    if is_secret(value):
        return redact(path)
    if value == UNKNOWN:
        raise ValueError(f"{path or 'value'} is not known yet; it cannot be rendered")
    if isinstance(value, dict):
        return {k: for_manifest(v, child_path(path, k), redact) for k, v in value.items()}
    if isinstance(value, list):
        return [for_manifest(v, child_path(path, i), redact) for i, v in enumerate(value)]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
