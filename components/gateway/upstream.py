"""What a cluster's gateway adds between a tenant and the model servers: vLLM's own key on every forwarded request
(UpstreamCredential), and the stand-by Backends and retry/ejection policy of a model's failover (ModelFailover).

API fields follow Envoy Gateway v1.9.1: HTTPRouteFilter `credentialInjection` (the Secret's `credential` key holds
the whole header value), Backend `fallback` (Envoy priority levels: used only while the primary backends are
unhealthy), BackendTrafficPolicy `retry` and `healthCheck.passive` (outlier detection).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.labels import k8s_labels
from components.options import children_of

from .routing import CREDENTIAL_FILTER, EG_API, Hop, failover_backend

CREDENTIAL_SECRET = "vllm-upstream-credential"
"""Secret holding `Bearer <vLLM's key>` for the credential filter."""
RETRY_STATUS_CODES = (429, 503)
"""Answers that mean the pools are saturated or have no ready endpoint (the endpoint picker sheds with 429, an
empty pool answers 503): retried once on another endpoint before the failover Backends take over."""


@dataclass(frozen=True)
class UpstreamCredentialArgs:
    """vLLM's key and where the serving routes live."""

    namespace: pulumi.Input[str]
    """Namespace of the model routes (the filter and its Secret must be beside them)."""
    api_key: pulumi.Input[str]
    """vLLM's `--api-key`; a Pulumi secret."""


class UpstreamCredential(pulumi.ComponentResource):
    """A Secret with vLLM's key as a bearer credential, and the HTTPRouteFilter that injects it (overwriting
    whatever Authorization a client sent)."""

    filter_name: pulumi.Output[str]
    """Name of the HTTPRouteFilter (what `routing.credential_filter` refers to)."""

    def __init__(self, name: str, args: UpstreamCredentialArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:gateway:UpstreamCredential", name, None, opts)
        child = children_of(self, opts)
        labels = k8s_labels(name="gateway", instance=CREDENTIAL_FILTER, component="upstream-credential")
        secret = k8s.core.v1.Secret(
            f"{name}-secret",
            metadata={"name": CREDENTIAL_SECRET, "namespace": args.namespace, "labels": labels},
            type="Opaque",
            string_data={"credential": pulumi.Output.secret(pulumi.Output.concat("Bearer ", args.api_key))},
            opts=child,
        )
        route_filter = k8s.apiextensions.CustomResource(
            f"{name}-filter",
            api_version=EG_API,
            kind="HTTPRouteFilter",
            metadata={"name": CREDENTIAL_FILTER, "namespace": args.namespace, "labels": labels},
            spec={"credentialInjection": {"header": "Authorization", "overwrite": True,
                                          "credential": {"valueRef": {"name": secret.metadata.name}}}},
            opts=child,
        )
        self.filter_name = route_filter.metadata.apply(lambda m: m["name"])
        self.register_outputs({"filter_name": self.filter_name})


@dataclass(frozen=True)
class ModelFailoverArgs:
    """One model's failover chain in one cluster."""

    model: str
    """Model name."""
    chain: Sequence[Hop]
    """Where its requests go, in order, when its pools here cannot answer (`routing.fallback_chain`)."""
    namespace: pulumi.Input[str]
    """Namespace of the model's route."""
    route_name: pulumi.Input[str]
    """The model's HTTPRoute, which lists the chain's Backends after its pools."""

    def __post_init__(self) -> None:
        if not self.chain:
            raise ValueError(f"ModelFailoverArgs.chain of '{self.model}' is empty: give at least one hop, or "
                             "create no ModelFailover")


class ModelFailover(pulumi.ComponentResource):
    """The stand-by Backends of a model's failover chain and the policy that ejects failing endpoints and retries
    saturated answers, so that traffic moves to the Backends only when the pools here cannot answer."""

    backend_names: pulumi.Output[list[str]]
    """Names of the Backends, in chain order."""

    def __init__(self, name: str, args: ModelFailoverArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:gateway:ModelFailover", name, None, opts)
        child = children_of(self, opts)
        labels = k8s_labels(name="gateway", instance=args.model, component="failover", model=args.model)
        backends = [k8s.apiextensions.CustomResource(
            f"{name}-{hop.backend_name}",
            api_version=EG_API,
            kind="Backend",
            metadata={"name": hop.backend_name, "namespace": args.namespace, "labels": labels},
            spec=failover_backend(hop),
            opts=child,
        ) for hop in args.chain]
        k8s.apiextensions.CustomResource(
            f"{name}-policy",
            api_version=EG_API,
            kind="BackendTrafficPolicy",
            metadata={"name": f"{args.model}-failover", "namespace": args.namespace, "labels": labels},
            spec={
                "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": args.route_name}],
                "retry": {"numRetries": 1, "retryOn": {
                    "triggers": ["connect-failure", "reset", "retriable-status-codes"],
                    "httpStatusCodes": list(RETRY_STATUS_CODES)}},
                "healthCheck": {"passive": {"consecutive5XxErrors": 3, "consecutiveGatewayErrors": 3,
                                            "interval": "10s", "baseEjectionTime": "30s",
                                            "maxEjectionPercent": 100}},
            },
            opts=child,
        )
        self.backend_names = pulumi.Output.all(*[b.metadata.apply(lambda m: m["name"]) for b in backends])
        self.register_outputs({"backend_names": self.backend_names})
