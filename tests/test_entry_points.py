"""Every `python -m llmplane....` the project tells a person or a script to run names a module that exists, so a
module that moves takes its commands along (make's targets, the CI scripts, the workflows, the README, the guides,
the modules' own usage lines)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMAND = re.compile(r"-m\s+(llmplane(?:\.\w+)+)")


def _documents() -> list[Path]:
    return [ROOT / "Makefile", ROOT / "README.md", *sorted((ROOT / ".ci").iterdir()),
            *sorted((ROOT / ".github" / "workflows").glob("*.yml")), *sorted((ROOT / "docs").glob("*.md")),
            *sorted(p for top in ("stacks", "toolchain", "monitoring", "capacity", "benchmarks")
                    for p in (ROOT / top).rglob("*.py"))]


def test_every_python_dash_m_names_a_module_that_exists():
    named = {(path.relative_to(ROOT).as_posix(), module) for path in _documents()
             for module in COMMAND.findall(path.read_text())}
    assert len(named) > 10
    missing = sorted(f"{where}: python -m {module}" for where, module in named
                     if importlib.util.find_spec(module) is None)
    assert missing == []
