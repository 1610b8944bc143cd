"""GatewayTenants: tenants enforced at a cluster's gateway — API-key Secrets, one SecurityPolicy per model route
admitting only the tenants allowed to call it, and the token budgets as one global rate-limit policy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
from llmplane.components.labels import k8s_labels
from llmplane.components.options import children_of
from llmplane.facts.kubernetes import TENANT_LABEL

from .route_refs import EG_API
from .tenant_budgets import TenantBudget, api_key_auth, key_secret_data, rate_limit_rules, secret_name, tenants_of_model

"""Label of a tenant's API-key Secret (policies/gateway.py reads it)."""


@dataclass(frozen=True)
class GatewayTenantsArgs:
    """The tenants, their keys and the routes they call, in one cluster."""

    tenants: Sequence[TenantBudget]
    """Tenants with their models, key names and budgets."""
    api_keys: Mapping[str, pulumi.Input[str]]
    """API keys by their `llmplane:secrets` key name; Pulumi secrets."""
    routes: Mapping[str, pulumi.Input[str]]
    """HTTPRoute name of each model served in the cluster, by model name."""
    routes_namespace: pulumi.Input[str]
    """Namespace of those HTTPRoutes: their SecurityPolicies and the key Secrets live there (no cross-namespace
    reference, so no ReferenceGrant)."""
    gateway_name: pulumi.Input[str]
    """The Gateway the budgets apply to."""
    gateway_namespace: pulumi.Input[str]
    """Namespace of the Gateway, where the rate-limit policy lives."""


class GatewayTenants(pulumi.ComponentResource):
    """Tenant keys, per-model authentication and token budgets at one gateway."""

    budget_policy: pulumi.Output[str]
    """Name of the BackendTrafficPolicy holding the token budgets."""

    def __init__(self, name: str, args: GatewayTenantsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:gateway:GatewayTenants", name, None, opts)
        child = children_of(self, opts)
        for tenant in args.tenants:
            data = key_secret_data(tenant, args.api_keys)
            k8s.core.v1.Secret(
                f"{name}-{tenant.name}-keys",
                metadata={"name": secret_name(tenant.name), "namespace": args.routes_namespace,
                          "labels": {**k8s_labels(name="gateway", instance=tenant.name, component="tenant"),
                                     TENANT_LABEL: tenant.name}},
                type="Opaque",
                string_data={key: pulumi.Output.secret(value) for key, value in data.items()},
                opts=child,
            )
        for model, route in args.routes.items():
            allowed = tenants_of_model(args.tenants, model)
            k8s.apiextensions.CustomResource(
                f"{name}-{model}-auth",
                api_version=EG_API,
                kind="SecurityPolicy",
                metadata={"name": f"{model}-tenants", "namespace": args.routes_namespace,
                          "labels": k8s_labels(name="gateway", instance=model, component="authentication",
                                               model=model)},
                spec={"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": route}],
                      "apiKeyAuth": api_key_auth(allowed)},
                opts=child,
            )
        policy = k8s.apiextensions.CustomResource(
            f"{name}-budgets",
            api_version=EG_API,
            kind="BackendTrafficPolicy",
            metadata={"name": "tenant-budgets", "namespace": args.gateway_namespace,
                      "labels": k8s_labels(name="gateway", instance="tenant-budgets", component="rate-limit")},
            spec={"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": args.gateway_name}],
                  "rateLimit": {"global": {"rules": rate_limit_rules(args.tenants)}}},
            opts=child,
        )
        self.budget_policy = policy.metadata.apply(lambda m: m["name"])
        self.register_outputs({"budget_policy": self.budget_policy})
