"""A Go tool the tests run, as `make test`'s set-up built it: a test fails naming the command that builds it."""

from __future__ import annotations

from pathlib import Path

import pytest
from llmplane.toolchain import gotools, prerequisites


def built_tool(name: str) -> Path:
    found = gotools.TOOLS[name].path()
    if found is None:
        pytest.fail(f"{name} is not built: run `make test-setup` "
                    f"(or `{prerequisites.BY_NAME[name].provides_command()}`)")
    return found
