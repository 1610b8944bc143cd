"""ModelRollout: one HTTPRoute per model per cluster that splits, pins and mirrors traffic across versions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from components.labels import k8s_labels
from components.options import children_of

from .engine_args import VLLM_PORT
from .vllm_service import resource_name

VARIANT_HEADER = "x-llmplane-variant"
"""Header that pins a client to one A/B version (its value: the version)."""


@dataclass(frozen=True)
class RolloutVersion:
    """One deployed version of a model and its part of the traffic."""

    version: str
    """The version; its VllmService is named `resource_name(model, version)`."""
    weight: int
    """Percent of the model's traffic (0 for a shadow)."""
    role: Literal["stable", "canary", "ab", "shadow"] = "stable"
    """stable or canary (weighted split), ab (also reachable by the variant header) or shadow (mirrored only)."""
    backend_ref: Mapping[str, Any] | None = None
    """Where the version's traffic goes when not straight to its Service: its InferencePool, or KEDA's HTTP
    interceptor while it may be at zero replicas (a Gateway API backendRef, without the weight)."""

    def __post_init__(self) -> None:
        if not 0 <= self.weight <= 100:
            raise ValueError(f"RolloutVersion {self.version}: weight {self.weight} is not a percentage; give 0 to 100")


@dataclass(frozen=True)
class ModelRolloutArgs:
    """A model's versions and weights, and the gateway its route attaches to."""

    model_name: str
    """Model name clients call as `/<model>/v1/...`."""
    versions: Sequence[RolloutVersion]
    """Deployed versions with their roles and weights; the weights of the non-shadow ones sum to 100."""
    namespace: pulumi.Input[str]
    """Namespace of the model's services."""
    hostnames: list[str]
    """Hostnames the route answers: the global one and the cluster's regional one."""
    gateway_name: pulumi.Input[str]
    """Gateway the route attaches to."""
    gateway_namespace: pulumi.Input[str]
    """Namespace of that Gateway."""
    request_filters: Sequence[Mapping[str, Any]] = ()
    """Filters every rule applies before its backends, e.g. the gateway's injection of vLLM's own key."""
    fallback_refs: Sequence[Mapping[str, Any]] = ()
    """Stand-by backendRefs the weighted split lists after its versions (failover to other clusters or a fallback
    model); neither the A/B pins nor the health path fail over, so global health checks see this cluster."""
    entry_rules: Sequence[Mapping[str, Any]] = ()
    """Rules other gateways fail over into (`components.gateway.routing.failover_entry_rules`)."""


def route_rules(model_name: str, versions: Sequence[RolloutVersion], request_filters: Sequence[Mapping] = (),
                fallback_refs: Sequence[Mapping] = (), entry_rules: Sequence[Mapping] = ()) -> list[dict]:
    """HTTPRoute rules: the failover entries, A/B pins by header, a health path for global health checks, then
    the weighted split with shadows mirrored and the failover backends on stand-by (always last).

    Clients call `/<model>/v1/...`; the prefix is rewritten to `/v1` before vLLM sees it.
    """
    extra = [dict(f) for f in request_filters]
    prefix = f"/{model_name}/v1"
    rewrite = {"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/v1"}}}

    refs = {v.version: dict(v.backend_ref) if v.backend_ref else {"name": resource_name(model_name, v.version),
                                                                   "port": VLLM_PORT} for v in versions}

    def backend(version: str, weight: int | None = None) -> dict:
        return refs[version] if weight is None else {**refs[version], "weight": weight}

    mirrors = [
        {"type": "RequestMirror", "requestMirror": {"backendRef": backend(v.version)}}
        for v in versions
        if v.role == "shadow"
    ]
    pinned = [
        {
            "matches": [{"path": {"type": "PathPrefix", "value": prefix},
                         "headers": [{"name": VARIANT_HEADER, "value": v.version}]}],
            "filters": [rewrite, *extra, *mirrors],
            "backendRefs": [backend(v.version, 1)],
        }
        for v in versions
        if v.role == "ab"
    ]
    split = {
        "matches": [{"path": {"type": "PathPrefix", "value": prefix}}],
        "filters": [rewrite, *extra, *mirrors],
        "backendRefs": [backend(v.version, v.weight) for v in versions if v.role != "shadow"],
    }
    health = {
        "matches": [{"path": {"type": "Exact", "value": f"/{model_name}/health"}}],
        "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplaceFullPath",
                                                                    "replaceFullPath": "/health"}}}, *extra],
        "backendRefs": split["backendRefs"],
    }
    split["backendRefs"] = [*split["backendRefs"], *(dict(ref) for ref in fallback_refs)]
    entries = [{**rule, "filters": [*rule.get("filters", []), *extra]} for rule in map(dict, entry_rules)]
    return [*entries, *pinned, health, split]


class ModelRollout(pulumi.ComponentResource):
    """The HTTPRoute of a model: a rollout step or a rollback is a weight edit, nothing is replaced."""

    route_name: pulumi.Output[str]
    """Name of the HTTPRoute."""

    def __init__(self, name: str, args: ModelRolloutArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:serving:ModelRollout", name, None, opts)
        served = sum(v.weight for v in args.versions if v.role != "shadow")
        if served != 100:
            raise ValueError(f"ModelRollout {name}: the weights of {args.model_name}'s non-shadow versions sum to "
                             f"{served}; make them sum to 100")
        stable = next((v.version for v in args.versions if v.role == "stable"), "")
        route = k8s.apiextensions.CustomResource(
            f"{name}-route",
            api_version="gateway.networking.k8s.io/v1",
            kind="HTTPRoute",
            metadata={
                "name": args.model_name,
                "namespace": args.namespace,
                "labels": k8s_labels(name="vllm", instance=args.model_name, component="rollout",
                                     version=stable, model=args.model_name),
            },
            spec={
                "parentRefs": [{"name": args.gateway_name, "namespace": args.gateway_namespace}],
                "hostnames": args.hostnames,
                "rules": route_rules(args.model_name, args.versions, args.request_filters, args.fallback_refs,
                                     args.entry_rules),
            },
            opts=children_of(self, opts),
        )
        self.route_name = route.metadata.apply(lambda m: m["name"])
        self.register_outputs({"route_name": self.route_name})
