"""Gateway policies: model traffic goes through its InferencePool, every tenant has a token budget, and no route
of a gateway that serves tenants bypasses authentication.

Each rule judges what a stack has: the pool rule applies in a cluster that has InferencePools, the budget and
authentication rules in a cluster that has tenant key Secrets (label `TENANT_LABEL`). A stack without the
inference gateway yet gets no verdict from them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from .base import (
    Context,
    Finding,
    ResourceView,
    Rule,
    as_dict,
    as_list,
    display,
    get,
    k8s_kind,
    labels_of,
    metadata,
    namespace_of,
    same_namespace,
    same_scope,
)

TENANT_LABEL = "llmplane.dev/tenant"
"""Label of a tenant's API-key Secret; its value is the tenant's name."""
CLIENT_PROBE_KEY = "any-key"
"""A key name no tenant uses: a rate-limit rule budgets a tenant if it selects `<tenant>.<this>`."""
HOLDING_PROXY = ("keda", "keda-add-ons-http-interceptor-proxy")
"""Namespace and name of KEDA's HTTP interceptor Service: a version that may be at zero replicas is reached through
it, since it holds requests until a replica is ready (an endpoint picker with no endpoint would refuse them)."""
AUTH_FIELDS = ("apiKeyAuth", "jwt", "basicAuth", "extAuth", "oidc")
"""SecurityPolicy fields that authenticate a caller (Envoy Gateway v1.9.1 SecurityPolicySpec)."""


def _of_kind(resources: Sequence[ResourceView], kind: str) -> list[ResourceView]:
    return [r for r in resources if k8s_kind(r.type) == kind]


def _name(view: ResourceView) -> str:
    value = metadata(view).get("name")
    return value if isinstance(value, str) else view.name


def routes_through_pools(resources: Sequence[ResourceView], _: Context) -> Iterator[Finding]:
    """In a cluster with InferencePools, a route sends users to pools (or failover Backends, or KEDA's interceptor
    for a version that may be at zero), never straight to a Service: a Service backend would skip the endpoint
    picker's cache- and load-aware choice."""
    pools = _of_kind(resources, "InferencePool")
    for route in _of_kind(resources, "HTTPRoute"):
        if not any(same_scope(route, pool) for pool in pools):
            continue
        for rule in as_list(get(route.props, "spec", "rules")):
            for ref in as_list(as_dict(rule).get("backendRefs")):
                kind = as_dict(ref).get("kind", "Service")
                holder = (get(ref, "namespace", default=namespace_of(route)), get(ref, "name"))
                if kind == "Service" and holder != HOLDING_PROXY:
                    yield Finding(route.urn, f"{display(route)} sends traffic to Service '{get(ref, 'name')}' "
                                  "directly, bypassing its InferencePool")


def _selects(rule: object, tenant: str) -> bool:
    """Whether a global rate-limit rule's header selector matches the tenant's client ids."""
    probe = f"{tenant}.{CLIENT_PROBE_KEY}"
    for selector in as_list(get(rule, "clientSelectors")):
        for header in as_list(as_dict(selector).get("headers")):
            value, kind = get(header, "value"), get(header, "type", default="Exact")
            if not isinstance(value, str):
                continue
            try:
                if (kind == "RegularExpression" and re.fullmatch(value, probe)) or (kind == "Exact" and value == probe):
                    return True
            except re.error:
                continue
    return False


def tenants_budgeted(resources: Sequence[ResourceView], _: Context) -> Iterator[Finding]:
    """Every tenant with API keys in a cluster is held to a token budget there by a global rate-limit rule."""
    policies = _of_kind(resources, "BackendTrafficPolicy")
    for secret in _of_kind(resources, "Secret"):
        tenant = labels_of(secret).get(TENANT_LABEL)
        if not isinstance(tenant, str):
            continue
        rules = [rule for policy in policies if same_scope(policy, secret)
                 for rule in as_list(get(policy.props, "spec", "rateLimit", "global", "rules"))]
        if not any(_selects(rule, tenant) for rule in rules):
            yield Finding(secret.urn, f"tenant '{tenant}' has API keys but no token budget: no global rate-limit "
                          "rule selects its client ids")


def _targets(policy: ResourceView) -> list[tuple[str, str]]:
    spec = as_dict(policy.props.get("spec"))
    refs = [*as_list(spec.get("targetRefs")), *([spec["targetRef"]] if "targetRef" in spec else [])]
    return [(str(get(ref, "kind")), str(get(ref, "name"))) for ref in refs]


def routes_authenticated(resources: Sequence[ResourceView], _: Context) -> Iterator[Finding]:
    """In a cluster whose gateway serves tenants, every route is covered by an authenticating SecurityPolicy,
    on the route itself or on the Gateway it attaches to."""
    tenant_secrets = [s for s in _of_kind(resources, "Secret") if TENANT_LABEL in labels_of(s)]
    security = [p for p in _of_kind(resources, "SecurityPolicy")
                if any(f in as_dict(p.props.get("spec")) for f in AUTH_FIELDS)]
    for route in _of_kind(resources, "HTTPRoute"):
        if not any(same_scope(route, s) for s in tenant_secrets):
            continue
        on_route = any(("HTTPRoute", _name(route)) in _targets(p) and same_namespace(p, route) for p in security)
        parents = [(str(get(ref, "name")), str(get(ref, "namespace", default=namespace_of(route))))
                   for ref in as_list(get(route.props, "spec", "parentRefs"))]
        on_gateway = any(("Gateway", name) in _targets(p) and namespace_of(p) == namespace and same_scope(p, route)
                         for p in security for name, namespace in parents)
        if not (on_route or on_gateway):
            yield Finding(route.urn, f"{display(route)} accepts requests without authentication: no SecurityPolicy "
                          "with apiKeyAuth (or jwt, basicAuth, extAuth, oidc) targets it or its Gateway")


RULES: list[Rule] = [
    Rule(
        name="platform-route-through-pool",
        description="Where a cluster has InferencePools, every HTTPRoute sends model traffic to InferencePools "
        "(or failover Backends), never straight to a Service.",
        remediation="Build the route's backendRefs with components.gateway.routing.pool_backend_ref (group "
        "inference.networking.k8s.io, kind InferencePool); mirror shadows with a RequestMirror filter instead.",
        resource_types=None,
        check=routes_through_pools,
    ),
    Rule(
        name="platform-tenant-budget",
        description="Every tenant with API keys in a cluster is held to a token budget by a global rate-limit "
        "rule of a BackendTrafficPolicy there.",
        remediation="Give the tenant tokensPerMinute or tokensPerDay (tenants[] in the environment file) and keep "
        "the gateway's BackendTrafficPolicy built from components.gateway.tenancy.rate_limit_rules.",
        resource_types=None,
        check=tenants_budgeted,
    ),
    Rule(
        name="platform-route-authenticated",
        description="Where a gateway serves tenants, no HTTPRoute bypasses authentication: a SecurityPolicy with "
        "apiKeyAuth (or another authentication) targets the route or its Gateway.",
        remediation="Attach the model's SecurityPolicy (components.gateway.tenancy.api_key_auth of the tenants "
        "allowed to call it) to the route, or one to the Gateway.",
        resource_types=None,
        check=routes_authenticated,
    ),
]
