"""vLLM's own sources, read from its release wheel (no torch, no GPU needed).

`make test`'s set-up downloads the pinned wheel once (`pip download --no-deps`) into the llmplane cache; the
tests read modules out of it as text and parse them, so what they assert is vLLM's truth at that version.
"""

from __future__ import annotations

import ast
import zipfile
from functools import cache
from pathlib import Path

from llmplane.facts.images import VLLM_VERSION
from llmplane.toolchain import prerequisites


def wheel() -> Path:
    found = prerequisites.locate(prerequisites.BY_NAME["vllm-wheel"])
    if found is None:
        raise FileNotFoundError(f"vLLM {VLLM_VERSION}'s wheel is missing: run `make test-setup` (pip download "
                                f"--no-deps -d {prerequisites.vllm_wheel_dir()} vllm=={VLLM_VERSION})")
    return found


@cache
def source(module_path: str) -> str:
    """A module's source text, e.g. source('vllm/v1/engine/__init__.py')."""
    with zipfile.ZipFile(wheel()) as archive:
        return archive.read(module_path).decode()


def constant(module_path: str, name: str):
    """A module-level literal constant, e.g. FINISH_REASON_STRINGS."""
    for node in ast.parse(source(module_path)).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise KeyError(f"{name} not in {module_path}")


def dataclass_fields(module_path: str, class_name: str) -> set[str]:
    """Annotated field names of a class (vLLM derives its CLI flags from these dataclasses)."""
    for node in ast.parse(source(module_path)).body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return {item.target.id for item in node.body
                    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)}
    raise KeyError(f"{class_name} not in {module_path}")
