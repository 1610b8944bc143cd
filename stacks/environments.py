"""Reading `environments/Pulumi.<env>.yaml` without the engine, for validation and the offline plan."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from llmplane.stacks.yaml_loader import SAFE_LOADER

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = PROJECT_ROOT / "environments"
SECRET_PLACEHOLDER = "[secret]"
SECRETS_CONFIG_KEY = "llmplane:secrets"
PLAINTEXT_ALLOWED = ("local",)
"""Environments whose throwaway secrets may sit in clear in the file (with a warning): the local stack only."""


class EnvironmentFileError(ValueError):
    """An environment file that is not shaped like a Pulumi stack config."""


@dataclass(frozen=True)
class StackConfig:
    """A stack's config as the engine would pass it: values as strings, secure ones replaced and marked secret."""

    environment: str
    values: dict[str, str]
    secret_keys: list[str]
    plaintext_secrets: tuple[str, ...] = ()
    """Paths under `llmplane:secrets` whose value is written in clear in the file (not `secure:`)."""


def _plaintext_leaves(value: Any, path: str) -> list[str]:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return []
        return [p for key, item in value.items() for p in _plaintext_leaves(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _plaintext_leaves(item, f"{path}[{i}]")]
    return [path] if value not in (None, "") else []


def environment_file(environment: str, root: Path = ENVIRONMENTS) -> Path:
    """Path of an environment's stack config file."""
    return root / f"Pulumi.{environment}.yaml"


def known_environments(root: Path = ENVIRONMENTS) -> list[str]:
    """Environments that have a stack config file."""
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


def _redact(value: Any) -> tuple[Any, bool]:
    """Replace `{secure: ...}` leaves by the placeholder; say whether any was found."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return SECRET_PLACEHOLDER, True
        found = False
        out = {}
        for key, item in value.items():
            out[key], hit = _redact(item)
            found = found or hit
        return out, found
    if isinstance(value, list):
        pairs = [_redact(item) for item in value]
        return [p[0] for p in pairs], any(p[1] for p in pairs)
    return value, False


MAX_FILE_BYTES = 1 << 20
"""An environment file is a few kilobytes; a megabyte is a mistake (or an attack)."""
MAX_ALIASES = 100
"""YAML anchors are fine for sharing a block; more aliases than this is an expansion bomb."""
MAX_EXPANDED_NODES = 100_000
"""Nodes after expanding every alias: bounds what `json.dumps` and the validator would walk."""
MAX_DEPTH = 32
"""Nesting deeper than any spec section (the spec is 5 levels deep) is refused before it is built."""
STR_TAG, MERGE_TAG = "tag:yaml.org,2002:str", "tag:yaml.org,2002:merge"
ENVIRONMENT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")


def check_environment_name(environment: str) -> None:
    if not ENVIRONMENT_NAME.match(environment):
        shown = environment if len(environment) <= 60 else f"{environment[:40]}... ({len(environment)} characters)"
        raise EnvironmentFileError(f"environment name {shown!r} is not valid; use lowercase letters, digits and "
                                   "dashes, starting with a letter, at most 40 characters (e.g. prod)")


def _guarded_yaml(text: str, file: Path) -> Any:
    """Parse YAML after checking its shape from the event stream and the node graph (aliases, depth, expanded
    size, key types), so no input can exhaust the machine or the interpreter's recursion."""
    try:
        aliases, depth = 0, 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):  # a stream of events: no recursion yet
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise EnvironmentFileError(f"{file}: line {event.start_mark.line + 1}: nesting deeper than "
                                               f"{MAX_DEPTH} levels; an environment is a few levels deep, so flatten "
                                               "the file")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
            elif isinstance(event, yaml.AliasEvent):
                aliases += 1
        if aliases > MAX_ALIASES:
            raise EnvironmentFileError(f"{file}: {aliases} YAML aliases, more than {MAX_ALIASES}; write the values "
                                       "out (anchors are for sharing a block or two)")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise EnvironmentFileError(f"{file}: YAML syntax error at {where}: {error.problem or error}; fix the "
                                   "indentation or quoting there (a value with ': ' or '#' needs quotes)") from None
    except yaml.YAMLError as error:
        raise EnvironmentFileError(f"{file}: not valid YAML ({error}); check the file's syntax") from None
    if root is None:
        return {}
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:  # iterative post-order: the expanded size without recursion
        node, done = stack.pop()
        children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                    else node.value if isinstance(node, yaml.SequenceNode) else [])
        if isinstance(node, yaml.MappingNode):
            for key, _ in node.value:
                if not (isinstance(key, yaml.ScalarNode) and key.tag in (STR_TAG, MERGE_TAG)):
                    raise EnvironmentFileError(f"{file}: line {key.start_mark.line + 1}: the key "
                                               f"{key.value if isinstance(key, yaml.ScalarNode) else '(a block)'!r} "
                                               "is not a name; keys are names like `replicas` (quote numbers)")
        if id(node) in sizes:
            continue
        if done:
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[id(node)] > MAX_EXPANDED_NODES:
                raise EnvironmentFileError(f"{file}: expands to more than {MAX_EXPANDED_NODES} values (YAML aliases "
                                           f"repeating blocks, {aliases} aliases); write the values out")
            continue
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)
    return yaml.load(text, Loader=SAFE_LOADER)


def read_stack_config(environment: str, path: Path | None = None) -> StackConfig:
    """Load the stack config file; every problem with the file itself is an EnvironmentFileError naming the file
    and the fix (FileNotFoundError, naming the known environments, when it does not exist)."""
    check_environment_name(environment)
    file = path or environment_file(environment)
    if not file.exists():
        known = ", ".join(known_environments(file.parent)) or "none"
        raise FileNotFoundError(f"no environment '{environment}': {file} does not exist (known: {known})")
    if not file.is_file():
        raise EnvironmentFileError(f"{file} is not a file (a directory?); an environment is one YAML file, "
                                   f"Pulumi.{environment}.yaml")
    raw = file.read_bytes()
    if len(raw) > MAX_FILE_BYTES:
        raise EnvironmentFileError(f"{file} is {len(raw)} bytes; an environment file is at most {MAX_FILE_BYTES} "
                                   "bytes, so check that this is the right file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        raise EnvironmentFileError(
            f"{file}: line {line} is not UTF-8 (byte {error.start}); save the file as UTF-8") from None
    document = _guarded_yaml(text, file) or {}
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise EnvironmentFileError(
            f"{file}: `config:` must be a mapping of settings (llmplane:clusters, llmplane:models, ...)")
    values: dict[str, str] = {}
    secret_keys: list[str] = []
    plaintext = _plaintext_leaves(config.get(SECRETS_CONFIG_KEY, {}), SECRETS_CONFIG_KEY)
    for key, raw in config.items():
        value, secret = _redact(raw)
        values[key] = value if isinstance(value, str) else json.dumps(value)
        if secret:
            secret_keys.append(key)
    return StackConfig(environment, values, secret_keys, tuple(plaintext))


def plaintext_secret_problems(config: StackConfig) -> list[str]:
    """One line per secret written in clear: an error outside `local`, a warning there (see `PLAINTEXT_ALLOWED`)."""
    return [f"{path} is written in plain text in {environment_file(config.environment).name}; store it encrypted: "
            f"pulumi config set --secret --path '{path}' <value>" for path in config.plaintext_secrets]
