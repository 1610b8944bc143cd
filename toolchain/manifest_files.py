"""Where and how a rendered Kubernetes object is written.

Layout follows the real provider's render mode: CustomResourceDefinitions
in `0-crd/` (applied first), everything else in `1-manifest/`.
Secret values never reach a file: a Secret's data/stringData values and
any secret-marked value elsewhere are replaced by REDACTED.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from toolchain.wire_values import child_path, for_manifest, reveal

REDACTED = "<redacted: secret values are never rendered to files>"
_SECRET_FIELDS = ("data", "stringData")


def object_identity(obj: dict[str, Any]) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return metadata.get("namespace") or "", metadata["name"]


def object_id(obj: dict[str, Any]) -> str:
    namespace, name = object_identity(obj)
    return f"{namespace}/{name}" if namespace else name


def is_kubernetes_secret(obj: dict[str, Any]) -> bool:
    return obj.get("apiVersion") == "v1" and obj.get("kind") == "Secret"


def manifest_path(render_dir: Path, obj: dict[str, Any]) -> Path:
    namespace, name = object_identity(obj)
    api_version, kind = obj["apiVersion"], obj["kind"]
    folder = "0-crd" if kind == "CustomResourceDefinition" else "1-manifest"
    stem = f"{api_version}-{kind}-{namespace or 'cluster'}-{name}"
    safe = stem.replace("/", "_").replace(":", "_").lower()
    return render_dir / folder / f"{safe}.yaml"


def render(obj: dict[str, Any], warn: Callable[[str], None]) -> str:
    """YAML text with every secret redacted; `warn` is told each path hidden."""
    hidden: list[str] = []

    def redact(path: str) -> str:
        hidden.append(path)
        return REDACTED

    obj = dict(obj)
    if is_kubernetes_secret(obj):
        # Keep the key names (useful to whoever provides the values), never the values.
        for fld in _SECRET_FIELDS:
            values = reveal(obj.get(fld))
            if isinstance(values, dict):
                obj[fld] = {key: redact(child_path(fld, key)) for key in values}
    plain = for_manifest(obj, "", redact)
    if hidden:
        warn(
            "secret values were not written to the rendered manifest ("
            + ", ".join(hidden)
            + "); provide them in the cluster (e.g. an external secret store)"
        )
    return yaml.safe_dump(plain, sort_keys=True, default_flow_style=False)


def write_atomically(path: Path, text: str) -> None:
    """Replace the file in one step so a crash never leaves half a manifest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".render-", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
