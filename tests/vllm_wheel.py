"""vLLM's own sources, per supported release, read as text (no torch, no GPU needed).

`make test`'s set-up fetches every release in facts/engines.py once (toolchain/vllm_source.py: PyPI's source
distribution, verified by its sha256, unpacked into the llmplane cache); the tests parse modules out of it, so what
they assert is vLLM's truth at that release. `source(path)` reads the default release.
"""

from __future__ import annotations

import ast
from functools import cache

from llmplane.facts.engines import DEFAULT_RELEASE
from llmplane.toolchain import vllm_source

VLLM_VERSION = DEFAULT_RELEASE


@cache
def source(module_path: str, version: str = DEFAULT_RELEASE) -> str:
    """A module's source text, e.g. source('vllm/v1/engine/__init__.py')."""
    return (vllm_source.require(version).parent / module_path).read_text()


def constant(module_path: str, name: str, version: str = DEFAULT_RELEASE):
    """A module-level literal constant, e.g. FINISH_REASON_STRINGS."""
    for node in ast.parse(source(module_path, version)).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise KeyError(f"{name} not in {module_path}")


def dataclass_fields(module_path: str, class_name: str, version: str = DEFAULT_RELEASE) -> set[str]:
    """Annotated field names of a class (vLLM derives its CLI flags from these dataclasses)."""
    for node in ast.parse(source(module_path, version)).body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return {item.target.id for item in node.body
                    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)}
    raise KeyError(f"{class_name} not in {module_path}")
