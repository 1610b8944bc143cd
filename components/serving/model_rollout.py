"""ModelRollout: one HTTPRoute per model per cluster that splits, pins and mirrors traffic across versions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s
from llmplane.components.labels import k8s_labels
from llmplane.components.options import children_of

from .engine_args import VLLM_PORT
from .vllm_service import resource_name

VARIANT_HEADER = "x-llmplane-variant"
"""Header that pins a client to one A/B version (its value: the version)."""
VERSION_HEADER = "x-llmplane-version"
"""Header the gateway's version split sets (components.gateway.version_split): the version that answers."""
SERVED_BY_HEADER = "x-llmplane-served-by"
"""Response header naming who answered: `<model>@<version>/<cluster>`."""
Split = Literal["weights", "version_header"]
"""How a route divides a model's traffic between versions: Gateway API weights, or the gateway's version header."""


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


EXPERIMENTS_ANNOTATION = "llmplane.dev/experiments"
"""On a model's HTTPRoute: JSON, per experiment, each treatment's weight and the weight its recorded verdict
allows (the `platform-experiment-verdict` policy compares them)."""


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
    split: Split = "weights"
    """`weights` (Gateway API weights in one rule) or `version_header` (a rule per version, chosen by the
    gateway's version split; required where versions are InferencePools)."""
    annotations: Mapping[str, str] | None = None
    """Annotations of the HTTPRoute, e.g. `EXPERIMENTS_ANNOTATION`: what the policy pack judges weights against."""
    served_by: Mapping[str, str] | None = None
    """Per version, the `SERVED_BY_HEADER` value its rules put on responses (rule filters: Envoy Gateway drops
    filters on InferencePool backendRefs)."""
    mirror: Mapping[str, Any] | None = None
    """Where the shadows' mirrored requests go instead of to each shadow: the model's shadow comparator
    (`shadow_compare.mirror_backend_ref`), which calls every shadow and stable itself."""
    mirror_percent: int = 100
    """Percent of requests mirrored (Gateway API `requestMirror.percent`): bounds the comparator's extra stable
    generations."""


def route_rules(model_name: str, versions: Sequence[RolloutVersion], request_filters: Sequence[Mapping] = (),
                split: Split = "weights", served_by: Mapping[str, str] | None = None,
                mirror: Mapping[str, Any] | None = None, mirror_percent: int = 100) -> list[dict]:
    """HTTPRoute rules: A/B pins by header, a health path for global health checks, then the versions that answer
    users, with shadows mirrored.

    `split="weights"`: one rule weighs the versions' backends (Gateway API weights; any implementation).
    `split="version_header"`: one rule per version matching `VERSION_HEADER`, which the gateway's version split
    sets from the weights, and a last rule without it to the stable version; every rule has exactly one backend,
    as Envoy AI Gateway requires of InferencePool rules. `served_by` (version -> value) names who answered in a
    response header set by each version's rule.

    Clients call `/<model>/v1/...`; the prefix is rewritten to `/v1` before vLLM sees it.
    """
    extra = [dict(f) for f in request_filters]
    prefix = f"/{model_name}/v1"
    rewrite = {"type": "URLRewrite",
               "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/v1"}}}

    refs = {v.version: dict(v.backend_ref) if v.backend_ref else {"name": resource_name(model_name, v.version),
                                                                   "port": VLLM_PORT} for v in versions}
    answering = [v for v in versions if v.role != "shadow"]
    if split == "weights":
        pools = [v.version for v in answering if refs[v.version].get("kind") == "InferencePool"]
        if len(pools) > 1:
            raise ValueError(f"ModelRollout {model_name}: versions {', '.join(pools)} are InferencePools; one rule "
                             "may name at most one pool (Envoy AI Gateway): give split='version_header'")

    def backend(version: str, weight: int | None = None) -> dict:
        return refs[version] if weight is None else {**refs[version], "weight": weight}

    def named(version: str) -> list[dict]:
        if not served_by or version not in served_by:
            return []
        return [{"type": "ResponseHeaderModifier", "responseHeaderModifier": {
            "set": [{"name": SERVED_BY_HEADER, "value": served_by[version]}]}}]

    shadows = [backend(v.version) for v in versions if v.role == "shadow"]
    share = {"percent": mirror_percent} if mirror_percent < 100 else {}
    mirrors = [{"type": "RequestMirror", "requestMirror": {"backendRef": ref, **share}}
               for ref in ([dict(mirror)] if mirror and shadows else shadows)]
    pinned = [
        {
            "matches": [{"path": {"type": "PathPrefix", "value": prefix},
                         "headers": [{"name": VARIANT_HEADER, "value": v.version}]}],
            "filters": [rewrite, *extra, *mirrors, *named(v.version)],
            "backendRefs": [backend(v.version, 1)],
        }
        for v in versions
        if v.role == "ab"
    ]
    stable = next((v for v in answering if v.role == "stable"), max(answering, key=lambda v: v.weight))
    health_backends = ([backend(v.version, v.weight) for v in answering] if split == "weights"
                       else [backend(stable.version, 1)])
    health = {
        "matches": [{"path": {"type": "Exact", "value": f"/{model_name}/health"}}],
        "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplaceFullPath",
                                                                    "replaceFullPath": "/health"}}}, *extra],
        "backendRefs": health_backends,
    }
    if split == "weights":
        serving = [{
            "matches": [{"path": {"type": "PathPrefix", "value": prefix}}],
            "filters": [rewrite, *extra, *mirrors],
            "backendRefs": [backend(v.version, v.weight) for v in answering],
        }]
    else:
        serving = [{
            "matches": [{"path": {"type": "PathPrefix", "value": prefix},
                         "headers": [{"name": VERSION_HEADER, "value": v.version}]}],
            "filters": [rewrite, *extra, *mirrors, *named(v.version)],
            "backendRefs": [backend(v.version, 1)],
        } for v in answering if v.weight > 0]
        serving.append({
            "matches": [{"path": {"type": "PathPrefix", "value": prefix}}],
            "filters": [rewrite, *extra, *mirrors, *named(stable.version)],
            "backendRefs": [backend(stable.version, 1)],
        })
    return [*pinned, health, *serving]


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
                **({"annotations": dict(args.annotations)} if args.annotations else {}),
                "labels": k8s_labels(name="vllm", instance=args.model_name, component="rollout",
                                     version=stable, model=args.model_name),
            },
            spec={
                "parentRefs": [{"name": args.gateway_name, "namespace": args.gateway_namespace}],
                "hostnames": args.hostnames,
                "rules": route_rules(args.model_name, args.versions, args.request_filters, args.split,
                                     args.served_by, args.mirror, args.mirror_percent),
            },
            opts=children_of(self, opts),
        )
        self.route_name = route.metadata.apply(lambda m: m["name"])
        self.register_outputs({"route_name": self.route_name})
