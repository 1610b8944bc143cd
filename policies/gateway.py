"""Gateway policies: model traffic goes through its InferencePool, one pool per route rule, every tenant has a token
budget that no route's own traffic policy drops, and no route of a gateway that serves tenants bypasses
authentication.

Each rule judges what a stack has: the pool rule applies in a cluster that has InferencePools, the budget and
authentication rules in a cluster that has tenant key Secrets (label `TENANT_LABEL`). A stack without the
inference gateway yet gets no verdict from them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from llmplane.facts.kubernetes import MODEL_LABEL, TENANT_LABEL

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

"""Label of a tenant's API-key Secret; its value is the tenant's name."""
CLIENT_PROBE_KEY = "any-key"
"""A key name no tenant uses: a rate-limit rule budgets a tenant if it selects `<tenant>.<this>`."""
HOLDING_PROXY = ("keda", "keda-add-ons-http-interceptor-proxy")
"""Namespace and name of KEDA's HTTP interceptor Service: a version that may be at zero replicas is reached through
it, since it holds requests until a replica is ready (an endpoint picker with no endpoint would refuse them)."""
AUTH_FIELDS = ("apiKeyAuth", "jwt", "basicAuth", "extAuth", "oidc")
"""SecurityPolicy fields that authenticate a caller (Envoy Gateway v1.8.1 SecurityPolicySpec)."""


def _of_kind(resources: Sequence[ResourceView], kind: str) -> list[ResourceView]:
    return [r for r in resources if k8s_kind(r.type) == kind]


def _name(view: ResourceView) -> str:
    value = metadata(view).get("name")
    return value if isinstance(value, str) else view.name


def routes_through_pools(resources: Sequence[ResourceView], _: Context) -> Iterator[Finding]:
    """In a cluster with InferencePools, a route sends users to pools (or KEDA's interceptor for a version that
    may be at zero), never straight to a Service: a Service backend would skip the endpoint picker's cache- and
    load-aware choice. Only a model's routes (labelled `llmplane.dev/model`) carry model traffic; others, such as
    the feedback endpoint's, go to their Service."""
    pools = _of_kind(resources, "InferencePool")
    for route in _of_kind(resources, "HTTPRoute"):
        if not any(same_scope(route, pool) for pool in pools) or MODEL_LABEL not in labels_of(route):
            continue
        for rule in as_list(get(route.props, "spec", "rules")):
            for ref in as_list(as_dict(rule).get("backendRefs")):
                kind = as_dict(ref).get("kind", "Service")
                holder = (get(ref, "namespace", default=namespace_of(route)), get(ref, "name"))
                if kind == "Service" and holder != HOLDING_PROXY:
                    yield Finding(route.urn, f"{display(route)} sends traffic to Service '{get(ref, 'name')}' "
                                  "directly, bypassing its InferencePool")


def one_pool_per_rule(resources: Sequence[ResourceView], _: Context) -> Iterator[Finding]:
    """An HTTPRoute rule that names an InferencePool names nothing else: Envoy AI Gateway v1.1.0 refuses a rule
    with several pools ("at most one inferencepool can be referenced per route rule",
    internal/extensionserver/post_route_modify.go), and Envoy Gateway, whose extension does not fail open, then
    publishes no new configuration for the whole Gateway; other backends in the rule would share the pool's
    ORIGINAL_DST cluster."""
    for route in _of_kind(resources, "HTTPRoute"):
        for index, rule in enumerate(as_list(get(route.props, "spec", "rules"))):
            refs = as_list(as_dict(rule).get("backendRefs"))
            pools = [get(ref, "name") for ref in refs if as_dict(ref).get("kind") == "InferencePool"]
            if pools and len(refs) > 1:
                others = [str(get(ref, "name")) for ref in refs if as_dict(ref).get("kind") != "InferencePool"]
                yield Finding(route.urn, f"{display(route)}: rule {index} names InferencePool(s) "
                              f"{', '.join(map(str, pools))}" + (f" beside {', '.join(others)}" if others else "")
                              + "; a rule with a pool must name only that pool")


MERGE_TYPES = ("StrategicMerge", "JSONMerge")
"""BackendTrafficPolicy `mergeType` values that keep a Gateway policy's settings under a route's own policy
(api/v1alpha1/backendtrafficpolicy_types.go, Envoy Gateway v1.8.1)."""


def budgets_kept_on_routes(resources: Sequence[ResourceView], _: Context) -> Iterator[Finding]:
    """A route's own BackendTrafficPolicy merges with its Gateway's when the Gateway's carries the tenants' rate
    limits: without `mergeType` Envoy Gateway applies only the most specific policy, marks the Gateway's
    `Overridden`, and the route serves without budgets (internal/gatewayapi/backendtrafficpolicy.go)."""
    policies = _of_kind(resources, "BackendTrafficPolicy")
    budgets = [p for p in policies if ("Gateway" in {kind for kind, _ in _targets(p)})
               and get(p.props, "spec", "rateLimit") not in (None, {})]
    for policy in policies:
        if not any(kind == "HTTPRoute" for kind, _ in _targets(policy)):
            continue
        if not any(same_scope(policy, budget) for budget in budgets):
            continue
        if get(policy.props, "spec", "mergeType") not in MERGE_TYPES:
            yield Finding(policy.urn, f"{display(policy)} targets a route without mergeType, so it replaces the "
                          "Gateway's BackendTrafficPolicy there and the tenants' token budgets are dropped")


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
        "(or KEDA's interceptor), never straight to a Service.",
        remediation="Build the route's backendRefs with components.gateway.route_refs.pool_backend_ref (group "
        "inference.networking.k8s.io, kind InferencePool); mirror shadows with a RequestMirror filter instead.",
        resource_types=None,
        check=routes_through_pools,
    ),
    Rule(
        name="platform-one-pool-per-rule",
        description="An HTTPRoute rule that names an InferencePool names only that pool (Envoy AI Gateway refuses "
        "more, and then the whole Gateway gets no new configuration).",
        remediation="Split versions with ModelRolloutArgs(split='version_header'): one rule per version, chosen by "
        "the gateway's version split (components.gateway.version_split).",
        resource_types=None,
        check=one_pool_per_rule,
    ),
    Rule(
        name="platform-budget-kept-on-routes",
        description="A BackendTrafficPolicy on a route sets mergeType where the Gateway's policy holds the "
        "tenants' token budgets, so the route keeps them.",
        remediation="Set spec.mergeType: StrategicMerge on the route's BackendTrafficPolicy.",
        resource_types=None,
        check=budgets_kept_on_routes,
    ),
    Rule(
        name="platform-tenant-budget",
        description="Every tenant with API keys in a cluster is held to a token budget by a global rate-limit "
        "rule of a BackendTrafficPolicy there.",
        remediation="Give the tenant tokensPerMinute or tokensPerDay (tenants[] in the environment file) and keep "
        "the gateway's BackendTrafficPolicy built from components.gateway.tenant_budgets.rate_limit_rules.",
        resource_types=None,
        check=tenants_budgeted,
    ),
    Rule(
        name="platform-route-authenticated",
        description="Where a gateway serves tenants, no HTTPRoute bypasses authentication: a SecurityPolicy with "
        "apiKeyAuth (or another authentication) targets the route or its Gateway.",
        remediation="Attach the model's SecurityPolicy (components.gateway.tenant_budgets.api_key_auth of the tenants "
        "allowed to call it) to the route, or one to the Gateway.",
        resource_types=None,
        check=routes_authenticated,
    ),
]
