"""Enforcement per environment: the spec's `policy` section turned into levels, and into the JSON file
`pulumi preview/up --policy-pack policies --policy-pack-config FILE` takes."""

from __future__ import annotations

import difflib
from typing import Any

from llmplane.spec.errors import Problem, SpecError
from llmplane.spec.models import PlatformSpec, Policy

from .rules import RULES, Rule

LEVELS = ("mandatory", "advisory", "disabled")


def enforcement_levels(policy: Policy, environment: str, rules: list[Rule] = RULES) -> dict[str, str]:
    """Level of every policy: the environment's default, then its per-policy overrides.

    Raises SpecError when an override names no policy (a typo would otherwise silently keep the default).
    """
    names = [rule.name for rule in rules]
    unknown = [name for name in policy.overrides if name not in names]
    if unknown:
        raise SpecError(environment, [
            Problem(
                path=f"policy.overrides.{name}",
                message="no policy has this name",
                value=name,
                fix=_suggest(name, names),
            )
            for name in unknown
        ])
    return {name: policy.overrides.get(name, policy.enforcement) for name in names}


def _suggest(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1)
    if close:
        return f"did you mean '{close[0]}'? (`llmplane policy-config <env>` lists every policy)"
    return "use a policy name from `llmplane policy-config <env>`"


def pack_config(spec: PlatformSpec, rules: list[Rule] = RULES) -> dict[str, Any]:
    """`--policy-pack-config` JSON: `{policy: {"enforcementLevel": ..., "environment": ...}}` for every policy.

    `environment` is what rules that judge by environment (config schema `environment`) read; the others
    ignore it (the engine validates only against a policy's own schema, which allows extra keys).
    """
    levels = enforcement_levels(spec.policy, spec.environment, rules)
    return {name: {"enforcementLevel": level, "environment": spec.environment} for name, level in levels.items()}
