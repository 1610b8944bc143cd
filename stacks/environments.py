"""Reading `environments/Pulumi.<env>.yaml` without the engine, for validation and the offline plan."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = PROJECT_ROOT / "environments"
SECRET_PLACEHOLDER = "[secret]"


class EnvironmentFileError(ValueError):
    """An environment file that is not shaped like a Pulumi stack config."""


@dataclass(frozen=True)
class StackConfig:
    """A stack's config as the engine would pass it: values as strings, secure ones replaced and marked secret."""

    environment: str
    values: dict[str, str]
    secret_keys: list[str]


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


def read_stack_config(environment: str, path: Path | None = None) -> StackConfig:
    """Load the stack config file; raise FileNotFoundError naming the known environments."""
    file = path or environment_file(environment)
    if not file.exists():
        known = ", ".join(known_environments(file.parent)) or "none"
        raise FileNotFoundError(f"no environment '{environment}': {file} does not exist (known: {known})")
    document = yaml.safe_load(file.read_text()) or {}
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise EnvironmentFileError(f"{file}: `config:` must be a mapping of settings (llmplane:clusters, llmplane:models, ...)")
    values: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, raw in config.items():
        value, secret = _redact(raw)
        values[key] = value if isinstance(value, str) else json.dumps(value)
        if secret:
            secret_keys.append(key)
    return StackConfig(environment, values, secret_keys)
