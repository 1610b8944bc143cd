"""Turns raw stack configuration into a validated PlatformSpec, or a SpecError listing every problem."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from llmplane.facts.clouds import REGIONS_BY_CLOUD
from pydantic import ValidationError

from .errors import Problem, SpecError, inline, problems_from
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


GCP_PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")


def provider_settings(config: Mapping[str, Any]) -> list[Problem]:
    """The cloud providers' own settings the stack relies on: `aws:region` and `gcp:project`."""
    problems = []
    region = config.get("aws:region")
    if region is not None and region not in REGIONS_BY_CLOUD["aws"]:
        problems.append(Problem("aws:region", "not an AWS region", inline(region),
                                f"use one of: {', '.join(sorted(REGIONS_BY_CLOUD['aws']))}"))
    project = config.get("gcp:project")
    if project is not None and not (isinstance(project, str) and GCP_PROJECT_ID.match(project)):
        problems.append(Problem("gcp:project", "not a GCP project ID", inline(project),
                                "use the project's ID (6-30 lowercase letters, digits and dashes, starting with a "
                                "letter), not its name or number"))
    return problems


def load_spec(config: Mapping[str, Any], environment: str) -> PlatformSpec:
    """Validate everything at once; raise SpecError with all problems, before any resource exists."""
    data = spec_data(config, environment)
    settings = provider_settings(config)
    try:
        spec = PlatformSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(environment, settings + problems_from(error, data)) from None
    except (TypeError, ValueError) as error:
        raise SpecError(environment, [Problem("(top level)", str(error), "", "fix the structure")]) from None
    problems = settings + check(spec)
    if problems:
        raise SpecError(environment, problems)
    return spec
