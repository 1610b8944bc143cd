"""Random specs thrown at the loader: the answer is a PlatformSpec or a clean SpecError, never a traceback.

Each example starts from a shipped environment and applies a few mutations anywhere in it: drop a key or a list
item, duplicate an item, add a stray key, nudge a number, or replace a value. Replacements are either plausible
(a value some environment gives the same setting, or an edge case for it: these pass the shape checks and exercise
the cross-field rules) or JSON garbage of any type. Deterministic: derandomized, no example database.
"""

from __future__ import annotations

import copy
import json
import os
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from llmplane.facts.clouds import AWS_REGIONS, GCP_REGIONS
from llmplane.spec import PlatformSpec, SpecError
from llmplane.spec.load import spec_data
from llmplane.stacks.environments import known_environments
from pydantic import ValidationError

FUZZ = settings(deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
PROFILES = {"full": 52, "quick": 1}
"""Examples per test, as a multiple of the quick counts below: the full suite (`make test`) generates over 10,000
cases; `LLMPLANE_FUZZ=quick` keeps about 200 for a fast local loop."""
SCALE = PROFILES[os.environ.get("LLMPLANE_FUZZ", "full")]
OUTCOMES: dict[str, int] = defaultdict(int)
"""Every case's outcome across the run (valid, SpecError, traceback), printed at the end of the session."""
ENVIRONMENTS = known_environments()

EDGES: dict[str, list[Any]] = {
    "name": ["a", "a" * 40, "local", "aws-use1", "onprem-dc1", "inference", "large", "dc1"],
    "region": [*AWS_REGIONS, *GCP_REGIONS, "us-east-9", "us-east-1\n", " "],
    "networkCidr": ["10.10.0.1/16", "999.0.0.0/8", "10.10.0.0/33", "0.0.0.0/0", "10.100.0.0/24", None],
    "onpremCidrs": ["10.10.0.0/16", "10.100.0.1/16", "256.0.0.0/8", "0.0.0.0/0"],
    "gpusPerNode": [1, 2, 3, 4, 8, 16, 17],
    "min": [0, 1, 5, 100],
    "max": [0, 1, 2, 100, 1000, 1001],
    "onDemandBase": [0, 5, 1000],
    "weight": [0, 10, 50, 90, 100, 101, -1],
    "role": ["stable", "canary", "ab", "shadow"],
    "version": ["1.0.0", "1.1.0", "1.2.0", "2.0.0-rc.1"],
    "tensorParallelSize": [1, 2, 4, 8, 16],
    "gpuMemoryUtilization": [0.31, 0.5, 0.98],
    "parametersBillions": [0.5, 70.6, 405, 2000],
    "dtype": ["float32", "int4", "fp8"],
    "bgpAsn": [0, 64511, 64512, 64513, 65534, 65535, 4200000000, 4294967295, 2**63],
    "zones": ["us-east-1a", "us-west-2b", "us-central1-a", "europe-west4-a", "use1-az1", "us-east-1-bos-1a", ""],
    "maxModelLen": [256, 8192, 42256, 42257, 131072, 1_000_000, 1 << 20],
    "contextLength": [255, 256, 8192, 131072, 1 << 24, (1 << 24) + 1],
    "layers": [0, 1, 32, 80, 1000, 1001],
    "kvHeads": [0, 1, 8, 64, 1024, 1025],
    "headDim": [0, 1, 64, 128, 1024, 1025],
    "uri": ["s3://b/m/latest/w.tar", "https://example.com/latest", "gs://b/m/1.0.0/w.tar"],
    "failoverOrder": ["aws-euw1", "onprem-dc1", "local"],
    "cloudClusters": ["onprem-dc1", "gcp-usc1", "nowhere"],
    "onpremCluster": ["aws-use1", "nowhere"],
    "clusters": ["aws-use1", "gcp-usc1", "nowhere"],
    "pool": ["inference", "large", "nowhere"],
    "cloud": ["aws", "gcp", "onprem"],
    "tunnelInsideCidrs": ["169.254.20.0/30", "169.254.20.1/30", "169.254.1.0/30", "fe80::/30", "10.0.0.0/30", "x\ny"],
    "ttftSeconds": [0.001, 2.0, 2.5, 2560.0, 1e9],
    "loadFormat": ["download", "runai_streamer", "safetensors"],
    "nodeCache": [True, False, {"sizeGi": 1, "medium": "nvme"}, {"sizeGi": 5000, "medium": "host-path"}],
    "sizeGi": [0, 1, 29, 232, 233, 100_000, 100_001],
    "medium": ["nvme", "local-ssd", "host-path", "tmpfs"],
    "path": ["/var/lib/llmplane/model-cache", "relative/path", "/"],
    "slots": [0, 1, 2, 1000, 1001, -1],
    "cron": ["0 8 * * 1-5", "*/15 * * * *", "0 8 * *", "60 * * * *", "0 9-5 * * *", "0 8 * * MON", ""],
    "durationMinutes": [0, 1, 1440, 1441],
    "engineStartSeconds": [0, 60, 3600, 3601],
    "files": [{}, {"config.json": "0" * 64}, {"../x.safetensors": "0" * 64}, {"m.safetensors": "xyz"}],
    "activationQueue": [0, 0.5, 1, 3],
    "tokensPerMinute": [0, 1, 99999, 100000, 10**12, 10**12 + 1],
    "tokensPerDay": [0, 1, 99999, 100000, 10**15, 10**15 + 1],
    "priority": [-1001, -1000, -10, 0, 10, 1000, 1001],
    "apiKeySecrets": ["searchApiKey", "vllmApiKey", "onpremKubeconfig", "storageCredentials", "a key", ""],
    "model": ["llama-3-8b", "llama-3-70b", "nowhere"],
    "otherClusters": [True, False],
    "tlsIssuer": [{"aws": "acme-dns01"}, {"onprem": "acme-dns01"}, {"gcp": "private-ca"}, {}],
    "dnsZone": ["llmplane.dev", "example.com", "dev.llmplane.dev"],
    "acmeEmail": ["team@llmplane.dev", "not-an-address"],
}
"""Edge values per setting, next to those the shipped environments use (list settings take these as items)."""

Path = tuple[Any, ...]


def _with_optional_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The config with settings no shipped file uses given valid values, so mutations can reach them too."""
    for index, link in enumerate(config.get("llmplane:hybrid") or []):
        count = 2 * len(link["cloudClusters"])
        link["tunnelInsideCidrs"] = [f"169.254.{20 + index}.{4 * n}/30" for n in range(count)]
    for model in (config.get("llmplane:models") or {}).values():
        model.setdefault("slo", {})["ttftSeconds"] = 2.5
    for cluster in config.get("llmplane:clusters") or []:
        for pool in cluster.get("pools") or []:
            if pool.get("warmHeadroom"):
                pool["warmHeadroom"]["schedules"] = [{"cron": "30 7 * * 1-5", "durationMinutes": 90, "slots": 1}]
                pool["nodes"]["max"] += 1
        model.setdefault("fallback", {"otherClusters": True})
    return config


def _paths(node: Any, prefix: Path = ()) -> Iterator[Path]:
    """Every location in a config: the root, each dict key and each list index, depth first."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _at(node: Any, path: Path) -> Any:
    for part in path:
        node = node[part]
    return node


def _setting(path: Path) -> str:
    """The setting a location belongs to: its key, or the key of the list it is an item of."""
    key = next((part for part in reversed(path) if isinstance(part, str)), "")
    return key.removeprefix("llmplane:")


@pytest.fixture(scope="session")
def vocabulary(env_config) -> dict[str, list[Any]]:
    """Values per setting: those of every shipped environment (scalars and whole sections) plus the edges."""
    seen: dict[str, dict[str, Any]] = defaultdict(dict)
    for environment in ENVIRONMENTS:
        config = env_config(environment)
        for path in _paths(config):
            if path:
                value = _at(config, path)
                seen[_setting(path)][json.dumps(value, sort_keys=True)] = value
    for setting, values in EDGES.items():
        seen[setting].update((json.dumps(v), v) for v in values)
    return {setting: [values[k] for k in sorted(values)] for setting, values in seen.items()}


def _junk() -> st.SearchStrategy[Any]:
    """Any JSON-ish value: nulls, booleans, huge and negative numbers, odd floats, strings, nested garbage."""
    leaves = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(10**30), max_value=10**30)
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(max_size=12)
    )
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=6,
    )


OPERATIONS = ["plausible"] * 4 + ["drop", "duplicate", "nudge", "junk", "add"]
"""Mostly plausible edits, so that many examples get past the shape checks into the rules."""


def _mutate(data: st.DataObject, config: dict[str, Any], vocabulary: dict[str, list[Any]]) -> str:
    """Apply one random mutation in place; return what it did, for the failure report."""
    paths = list(_paths(config))[1:]
    path = paths[data.draw(st.integers(0, len(paths) - 1), label="location")]
    operation = data.draw(st.sampled_from(OPERATIONS), label="operation")
    parent, key = _at(config, path[:-1]), path[-1]
    current = parent[key]
    plausible = st.sampled_from(vocabulary.get(_setting(path)) or [None]).map(copy.deepcopy)
    if operation == "drop":
        del parent[key]
        return f"drop {path}"
    if operation == "duplicate":
        if isinstance(parent, list):
            parent.insert(key, copy.deepcopy(current))
        else:
            parent[f"{key}-copy"] = copy.deepcopy(current)
        return f"duplicate {path}"
    if operation == "add" and isinstance(current, dict):
        new_key = data.draw(st.sampled_from(sorted(vocabulary)) | st.text(max_size=8), label="stray key")
        vocabulary_value = st.sampled_from(vocabulary.get(new_key) or [None]).map(copy.deepcopy)
        current[new_key] = data.draw(vocabulary_value | _junk(), label="value")
        return f"add {new_key!r}: {current[new_key]!r} under {path}"
    if operation == "add" and isinstance(current, list):
        current.append(data.draw(plausible | _junk(), label="item"))
        return f"append {current[-1]!r} to {path}"
    if operation == "nudge" and isinstance(current, (int, float)) and not isinstance(current, bool):
        new = data.draw(st.sampled_from([0, -current, current - 1, current + 1, current * 1000, 10**30]))
    elif operation == "junk":
        new = data.draw(_junk(), label="junk")
    else:
        new = data.draw(plausible, label="plausible value")
    parent[key] = new
    return f"set {path} from {current!r} to {new!r}"


def _shape_is_valid(config: dict[str, Any], environment: str) -> bool:
    """Whether pydantic accepts the config, so that any problem came from the cross-field rules."""
    values = {key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()}
    try:
        PlatformSpec.model_validate(spec_data(values, environment))
    except ValidationError:
        return False
    return True


def _assert_clean_outcome(load, config: dict[str, Any], environment: str) -> str:
    """A PlatformSpec, or a SpecError whose every problem has a path, a message and a fix, three lines each.

    Returns which it was, for hypothesis' statistics (`pytest --hypothesis-show-statistics`).
    """
    try:
        spec = load(config, environment)
    except SpecError as error:
        OUTCOMES["SpecError"] += 1
        assert error.problems, "a SpecError must carry at least one problem"
        for problem in error.problems:
            for field in ("path", "message", "fix"):
                text = getattr(problem, field)
                assert isinstance(text, str) and text.strip(), f"empty {field} in {problem}"
            assert isinstance(problem.value, str)
        text = error.render()
        assert "Traceback" not in text
        assert len(text.splitlines()) == 1 + 3 * len(error.problems), "every problem renders as three lines"
        return f"SpecError from the {'rules' if _shape_is_valid(config, environment) else 'shape checks'}"
    except Exception:
        OUTCOMES["traceback"] += 1
        raise
    OUTCOMES["valid"] += 1
    assert isinstance(spec, PlatformSpec)
    return "valid"


@settings(FUZZ, max_examples=150 * SCALE)
@given(data=st.data())
def test_mutated_environments_load_or_fail_cleanly(data, env_config, load, vocabulary):
    environment = data.draw(st.sampled_from(ENVIRONMENTS), label="environment")
    config = env_config(environment)
    if data.draw(st.booleans(), label="with optional settings"):
        _with_optional_settings(config)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        note(_mutate(data, config, vocabulary))
    event(_assert_clean_outcome(load, config, environment))


SPEC_KEYS = ["owner", "costCenter", "protect", "clusters", "models", "images", "observability", "routing", "hybrid",
             "autoscaling", "policy", "secrets", "environment"]


@settings(FUZZ, max_examples=30 * SCALE)
@given(
    environment=st.sampled_from(ENVIRONMENTS),
    replaced=st.dictionaries(st.sampled_from(SPEC_KEYS).map(lambda k: f"llmplane:{k}"), _junk(), max_size=4),
)
def test_whole_sections_of_garbage_fail_cleanly(environment, replaced, env_config, load):
    config = env_config(environment)
    config.update(replaced)
    event(_assert_clean_outcome(load, config, environment))


@settings(FUZZ, max_examples=20 * SCALE)
@given(raw=st.dictionaries(st.text(max_size=20).map(lambda k: f"llmplane:{k}"),
                           st.text(max_size=20) | _junk().map(json.dumps), max_size=5))
def test_raw_engine_strings_fail_cleanly(raw, load):
    """The engine hands over strings; any string, JSON or not, under any key, ends in a clean outcome."""
    event(_assert_clean_outcome(load, raw, "fuzz"))


def test_every_edge_value_in_every_place_fails_cleanly(env_config, load):
    """Not random: each edge value of EDGES, put in turn at every location of its setting in every environment."""
    outcomes: dict[str, int] = defaultdict(int)
    bases = [(name, config) for name in ENVIRONMENTS
             for config in (env_config(name), _with_optional_settings(env_config(name)))]
    for environment, base in bases:
        for path in list(_paths(base))[1:]:
            for value in EDGES.get(_setting(path), []):
                config = copy.deepcopy(base)
                _at(config, path[:-1])[path[-1]] = value
                try:
                    outcomes[_assert_clean_outcome(load, config, environment)] += 1
                except Exception as error:
                    raise AssertionError(f"{environment}: {path} = {value!r}: {error!r}") from error
    assert set(outcomes) == {"valid", "SpecError from the shape checks", "SpecError from the rules"}, outcomes
