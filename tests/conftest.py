"""Shared fixtures: the shipped environments as Python objects, and the spec loader fed the way the engine feeds it."""

from __future__ import annotations

import copy
import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from llmplane.spec import PlatformSpec, load_spec
from llmplane.stacks.environments import environment_file


@functools.cache
def _shipped_config(environment: str) -> dict[str, Any]:
    return yaml.safe_load(environment_file(environment).read_text())["config"]


def engine_values(config: dict[str, Any]) -> dict[str, str]:
    """Config values as the engine passes them: strings stay, everything else is JSON-encoded."""
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()}


@pytest.fixture(scope="session")
def env_config() -> Callable[[str], dict[str, Any]]:
    """`env_config("prod")`: a fresh deep copy of the environment's `config:` mapping, e.g. `["llmplane:models"]`."""
    return lambda environment: copy.deepcopy(_shipped_config(environment))


@pytest.fixture(scope="session")
def load() -> Callable[[dict[str, Any], str], PlatformSpec]:
    """`load(config, "prod")`: load_spec on a config mapping, encoded as the engine would pass it."""
    return lambda config, environment: load_spec(engine_values(config), environment)


@pytest.fixture(scope="session")
def embedded_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A real control plane with the local environment's fake GPU nodes, for the whole session; stopped at the
    end. Its binaries come from `make test`'s set-up (built once into ~/.cache/llmplane)."""
    from llmplane.stacks.local.embedded_cluster import EmbeddedCluster
    from llmplane.stacks.local.for_environment import fake_nodes

    cluster = EmbeddedCluster(tmp_path_factory.mktemp("cluster"))
    spec = load_spec(engine_values(_shipped_config("local")), "local")
    cluster.up(fake_nodes(spec), say=lambda _message: None)
    yield cluster
    cluster.down(say=lambda _message: None)


def pytest_terminal_summary(terminalreporter) -> None:
    """The spec fuzzing's count, so a run shows how many cases it threw at the loader and that none tracebacked."""
    fuzz = next((m for name, m in sys.modules.items() if name.rpartition(".")[2] == "test_spec_fuzz"), None)
    if fuzz is not None and sum(fuzz.OUTCOMES.values()):
        outcomes = fuzz.OUTCOMES
        terminalreporter.write_line(
            f"spec fuzzing: {sum(outcomes.values())} cases ({outcomes['valid']} valid, {outcomes['SpecError']} "
            f"clean SpecErrors), {outcomes['traceback']} tracebacks")
