"""Tenants at the gateway, as pure functions of plain values: who may call which model, with which keys, and the
Envoy Gateway rate-limit rules that hold each tenant to its token budget.

Why Envoy Gateway's global rate limit (BackendTrafficPolicy `rateLimit.global`) and not Envoy AI Gateway: the
global limiter already takes a per-request cost from the response path (`cost.response`, read from dynamic
metadata when the stream ends), keeps one bucket per tenant across all routes (`shared: true`), answers 429 with
the draft-03 `x-ratelimit-*` headers (`x-ratelimit-reset` says when to retry) and needs no second controller or
route kind (AI Gateway replaces HTTPRoutes by its own AIGatewayRoute). The token count comes from vLLM's `usage`
object, read by a small Lua filter on the response stream (`token_usage.lua`) into `USAGE_METADATA`. Fields
and semantics from the Envoy Gateway v1.8.1 API (`api/v1alpha1/ratelimit_types.go`, `api_key_auth_types.go`
in the Go module github.com/envoyproxy/gateway).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pulumi

CLIENT_HEADER = "x-llmplane-client"
"""Header the API-key filter forwards with the caller's client id (`<tenant>.<key name>`): access logs and the
rate limiter read the tenant from it. Never trusted from outside: the filter overwrites it."""
API_KEY_HEADER = "x-api-key"
"""Header clients send their tenant API key in."""
USAGE_METADATA = ("llmplane.usage", "total_tokens")
"""Dynamic-metadata namespace and key the token-usage filter writes the answer's prompt plus output tokens to."""
WINDOWS = (("tokens_per_minute", "Minute"), ("tokens_per_day", "Day"))
"""Budget field and the Envoy Gateway rate-limit unit it is counted over."""


@dataclass(frozen=True)
class TenantBudget:
    """One tenant as the gateway sees it."""

    name: str
    """Tenant name (a DNS label)."""
    models: tuple[str, ...]
    """Models the tenant may call."""
    key_names: tuple[str, ...]
    """Names of its API keys (keys of `llmplane:secrets`)."""
    tokens_per_minute: int | None = None
    """Prompt plus output tokens allowed per minute, or no per-minute limit."""
    tokens_per_day: int | None = None
    """Prompt plus output tokens allowed per day, or no daily limit."""
    priority: int = 0
    """Served first when pools are saturated if higher (InferenceObjective priority)."""

    def __post_init__(self) -> None:
        if self.tokens_per_minute is None and self.tokens_per_day is None:
            raise ValueError(f"tenant '{self.name}' has no token budget: set tokens_per_minute, tokens_per_day or "
                             "both")
        if not self.key_names:
            raise ValueError(f"tenant '{self.name}' has no API key: name at least one key in key_names")


def client_id(tenant: str, key_name: str) -> str:
    """The client id of one API key: its tenant and the key's name, so a tenant's keys share its budget."""
    return f"{tenant}.{key_name}"


def tenant_pattern(tenant: str) -> str:
    """RE2 pattern matching every client id of the tenant, and no other tenant's."""
    return f"^{re.escape(tenant)}\\.[^.]+$"


def rate_limit_rules(tenants: Sequence[TenantBudget]) -> list[dict]:
    """BackendTrafficPolicy `spec.rateLimit.global.rules`: per tenant and budget window, one bucket shared by all
    the tenant's keys and routes. A request costs 0 on the way in (refused once the bucket is empty) and the
    answer's tokens on the way out."""
    rules = []
    for tenant in tenants:
        for field, unit in WINDOWS:
            limit = getattr(tenant, field)
            if limit is None:
                continue
            rules.append({
                "clientSelectors": [{"headers": [{"name": CLIENT_HEADER, "type": "RegularExpression",
                                                  "value": tenant_pattern(tenant.name)}]}],
                "limit": {"requests": limit, "unit": unit},
                "cost": {"request": {"from": "Number", "number": 0},
                         "response": {"from": "Metadata",
                                      "metadata": {"namespace": USAGE_METADATA[0], "key": USAGE_METADATA[1]}}},
                "shared": True,
                "xRateLimitHeaders": "DraftVersion03",
            })
    return rules


def tenants_of_model(tenants: Iterable[TenantBudget], model: str) -> list[str]:
    """Tenants allowed to call a model, in spec order: the model's route accepts only their keys."""
    return [t.name for t in tenants if model in t.models]


def allowed_models(tenants: Iterable[TenantBudget]) -> dict[str, tuple[str, ...]]:
    """Each tenant's callable models."""
    return {t.name: t.models for t in tenants}


def key_secret_data(tenant: TenantBudget, keys: Mapping[str, pulumi.Input[str]]) -> dict[str, pulumi.Input[str]]:
    """`stringData` of a tenant's API-key Secret as Envoy Gateway's apiKeyAuth reads it: client id -> key."""
    missing = [name for name in tenant.key_names if name not in keys]
    if missing:
        raise ValueError(f"tenant '{tenant.name}' names API keys that are not in llmplane:secrets: "
                         f"{', '.join(missing)}; set each with: pulumi config set --secret --path "
                         f"'llmplane:secrets.<key>' <value>")
    return {client_id(tenant.name, name): keys[name] for name in tenant.key_names}


def secret_name(tenant: str) -> str:
    """Name of a tenant's API-key Secret in the gateway namespace."""
    return f"tenant-{tenant}-api-keys"


def api_key_auth(tenants: Sequence[str]) -> dict:
    """SecurityPolicy `spec.apiKeyAuth` accepting exactly these tenants' keys from `x-api-key` and forwarding the
    client id. The key is kept on the request (vLLM ignores `x-api-key`) so a failover to another cluster's
    gateway authenticates the tenant there again."""
    if not tenants:
        raise ValueError("no tenant may call this model, so its route would accept no key: add the model to a "
                         "tenant's models, or do not route it")
    return {
        "credentialRefs": [{"group": "", "kind": "Secret", "name": secret_name(t)} for t in tenants],
        "extractFrom": [{"headers": [API_KEY_HEADER]}],
        "forwardClientIDHeader": CLIENT_HEADER,
        "sanitize": False,
    }


def objective_priority(tenants: Iterable[TenantBudget]) -> dict[str, int]:
    """Priority of each tenant's InferenceObjective (0 is the endpoint picker's default and is left out)."""
    return {t.name: t.priority for t in tenants if t.priority != 0}
