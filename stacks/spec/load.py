"""Turns raw stack configuration into a validated PlatformSpec, or a SpecError listing every problem."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from .errors import Problem, SpecError, problems_from
from .models import PlatformSpec
from .rules import check

NAMESPACE = "llmplane"
"""Pulumi config namespace of the spec keys (`llmplane:models`, ...)."""

SECRETS_KEY = "secrets"
"""The config key (`llmplane:secrets`, an object of secure values) the program reads as Pulumi secrets; never part
of the spec, so no secret can reach a plan or an error message."""


def spec_data(config: Mapping[str, Any], environment: str) -> dict[str, Any]:
    """The spec's raw data from `llmplane:*` config entries (JSON strings as the engine passes them, or objects)."""
    data: dict[str, Any] = {"environment": environment}
    prefix = f"{NAMESPACE}:"
    for key, raw in config.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        if name == SECRETS_KEY:
            continue
        data[name] = _parse(raw)
    return data


def _parse(raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def load_spec(config: Mapping[str, Any], environment: str) -> PlatformSpec:
    """Validate everything at once; raise SpecError with all problems, before any resource exists."""
    data = spec_data(config, environment)
    try:
        spec = PlatformSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(environment, problems_from(error, data)) from None
    except (TypeError, ValueError) as error:
        raise SpecError(environment, [Problem("(top level)", str(error), "", "fix the structure")]) from None
    problems = check(spec)
    if problems:
        raise SpecError(environment, problems)
    return spec
