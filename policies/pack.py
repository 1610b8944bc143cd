"""The rules as CrossGuard policies: what `policies/__main__.py` hands to `pulumi_policy.PolicyPack`.

CrossGuard's `args.props` are the resource's inputs as the engine sends them: the wire dict (camelCase
keys), wrapped in a proxy that raises on unknown values, with secrets already unwrapped. `plain()` turns
them into the same shape the offline plan records (unknowns as "[unknown]", whole numbers as ints), so
one rule body serves both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import (
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.policy import Policy
from pulumi_policy.proxy import _DictProxy, _is_unknown, _ListProxy

from .base import UNKNOWN, Context, ResourceView, Rule
from .rules import RULES

PACK_NAME = "llmplane"

ENVIRONMENT_SCHEMA = PolicyConfigSchema(properties={
    "environment": {
        "type": "string",
        "description": "Stack the verdict is for (local, dev, staging, prod); the stack in the URN when unset.",
    },
})


def plain(value: Any) -> Any:
    """A CrossGuard props value as plain dicts and lists, unknowns as "[unknown]", whole floats as ints."""
    if isinstance(value, Mapping):
        target = value["__target"] if isinstance(value, _DictProxy) else value  # the proxy's raw dict: no raising
        return {key: plain(item) for key, item in target.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        target = value["__target"] if isinstance(value, _ListProxy) else value
        return [plain(item) for item in target]
    if _is_unknown(value):
        return UNKNOWN
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def stack_of(urn: str) -> str | None:
    """The stack name in a URN: `urn:pulumi:<stack>::<project>::...`."""
    parts = urn.split("::")
    if len(parts) >= 2 and parts[0].startswith("urn:pulumi:"):
        return parts[0][len("urn:pulumi:"):] or None
    return None


def context(config: Mapping[str, Any] | None, urns: Sequence[str]) -> Context:
    """The judging context: the configured environment, else the stack the resources belong to."""
    environment = (config or {}).get("environment")
    if not environment:
        environment = next((s for s in map(stack_of, urns) if s), None)
    return Context(environment=environment, secrets_marked=False)


def _provider_urn(provider: Any) -> str | None:
    return getattr(provider, "urn", None) if provider is not None else None


def resource_view(args: ResourceValidationArgs) -> ResourceView:
    return ResourceView(
        type=args.resource_type,
        urn=args.urn,
        props=plain(args.props),
        name=args.name,
        scope=_provider_urn(args.provider),
    )


def stack_views(args: StackValidationArgs) -> list[ResourceView]:
    return [
        ResourceView(
            type=r.resource_type,
            urn=r.urn,
            props=plain(r.props),
            name=r.name,
            scope=_provider_urn(r.provider),
            dependencies={key: tuple(d.urn for d in deps) for key, deps in (r.property_dependencies or {}).items()},
        )
        for r in args.resources
    ]


def _resource_policy(rule: Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if not rule.applies_to(args.resource_type):
            return
        view = resource_view(args)
        for message in rule.check(view, context(args.get_config(), [args.urn])):
            report_violation(with_fix(message, rule), None)

    return ResourceValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        config_schema=ENVIRONMENT_SCHEMA if rule.uses_environment else None,
        remediation_steps=rule.remediation,
    )


def with_fix(message: str, rule: Rule) -> str:
    """A violation as the engine prints it: what is wrong, then how to fix it (the CLI shows no remediation)."""
    return f"{message}\nFix: {rule.remediation}"


def _stack_policy(rule: Rule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        views = stack_views(args)
        for finding in rule.check(views, context(args.get_config(), [v.urn for v in views])):
            report_violation(with_fix(finding.message, rule), finding.urn or None)

    return StackValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        config_schema=ENVIRONMENT_SCHEMA if rule.uses_environment else None,
        remediation_steps=rule.remediation,
    )


def build_policies(rules: Sequence[Rule] = RULES) -> list[Policy]:
    """One CrossGuard policy per rule, same name, description and remediation; enforcement is left to the
    pack's default (advisory) and the `--policy-pack-config` file (`llmplane policy-config <env>`)."""
    return [_stack_policy(rule) if rule.is_stack_rule else _resource_policy(rule) for rule in rules]
