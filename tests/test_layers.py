"""Imports point one way (the design card's layers): facts, then the monitoring catalog, then the spec with what
derives from it, then components and the tool chain, then the planner and the policies reading the spec from
below, then composition, then the CLI. No module imports a layer above its own and no two packages import each
other, so a reader finds a concept by going down, never around. The table is toolchain/layers.py's LAYERS, which the
README's architecture picture lists too."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from llmplane.toolchain.layers import LAYERS, ROLES

ROOT = Path(__file__).resolve().parents[1]


def _layer_of(module: str) -> tuple[str, int] | None:
    """The layer of a module by its import name (`llmplane.spec.models`) or its folder's (`spec.models`)."""
    module = module.removeprefix("llmplane.")
    for name in sorted(LAYERS, key=len, reverse=True):
        if module == name or module.startswith(f"{name}."):
            return name, LAYERS[name]
    return None


def _imports() -> list[tuple[str, str, int]]:
    """(importing module, imported module, line) for every absolute or relative import of the project's code."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[0] not in {name.split(".")[0] for name in LAYERS}:
            continue
        module = ".".join(relative.with_suffix("").parts).removesuffix(".__init__")
        package = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found += [(module, alias.name, node.lineno) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package[:len(package) - node.level + 1] if node.level else []
                target = ".".join([*base, node.module] if node.module else base)
                found.append((module, target, node.lineno))
    return found


def test_no_module_imports_a_layer_above_its_own():
    upward = []
    for importer, imported, line in _imports():
        source, target = _layer_of(importer), _layer_of(imported)
        if source and target and target[1] > source[1]:
            upward.append(f"{importer}:{line} imports {imported} ({target[0]} is above {source[0]})")
    assert upward == []


def test_no_two_packages_import_each_other():
    edges = set()
    for importer, imported, _ in _imports():
        source, target = _layer_of(importer), _layer_of(imported)
        if source and target and source[0].split(".")[0] != target[0].split(".")[0]:
            edges.add((source[0].split(".")[0], target[0].split(".")[0]))
    assert sorted((a, b) for a, b in edges if (b, a) in edges) == []


def test_the_layer_check_sees_relative_and_upward_imports():
    """The checker itself: a relative import resolves to its package, and the spec importing a component would be
    reported."""
    assert _layer_of("spec.models") == ("spec", 2)
    assert _layer_of("stacks.cli") == ("stacks.cli", 6)
    assert ("stacks.compose", "spec.models", 0) not in _imports()
    assert any(importer == "stacks.plan_policies" and imported == "stacks.plan" for importer, imported, _ in _imports())


def test_every_layer_says_what_lives_there():
    """The README's picture lists each layer with its line from toolchain/layers.py."""
    assert list(ROLES) == list(LAYERS)
    assert all(role.strip() for role in ROLES.values())


def test_every_import_of_ours_uses_the_llmplane_name():
    """A module imported under two names is two modules (two of each class); and the wheel has only `llmplane.*`."""
    ours = {name.split(".")[0] for name in LAYERS}
    bare = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.relative_to(ROOT).parts[0] not in ours | {"tests", "examples"}:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            bare += [f"{path.relative_to(ROOT)}:{node.lineno} imports {n}" for n in names if n.split(".")[0] in ours]
    assert bare == []
    assert _layer_of("llmplane.spec.models") == ("spec", 2)


def test_a_consumers_own_components_and_stacks_packages_do_not_shadow_ours(tmp_path):
    for name in ("components", "stacks", "spec"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"OWNER = 'consumer {name}'\n")
    probe = ("import components, stacks, spec\n"
             "from llmplane.stacks.compose import compose\n"
             "from llmplane.components.serving.vllm_service import VllmService\n"
             "print(components.OWNER, stacks.OWNER, spec.OWNER, compose.__module__, VllmService.__module__)\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["consumer", "components", "consumer", "stacks", "consumer", "spec",
                                   "llmplane.stacks.compose", "llmplane.components.serving.vllm_service"]
