"""Inference-aware routes, as pure functions of plain values: backendRefs to InferencePools, the header naming the
model that answered, and the fallback chain (other clusters, then a named fallback model).

One InferencePool per model version, not one per model with versions as subsets: the Gateway API's weighted
backendRefs already express canary, A/B pins and shadows version by version, so each version keeps its own pool,
its own endpoint picker and its own metrics, and a rollout step stays a weight edit. A pool spanning versions
would make the endpoint picker, blind to the split, undo the weights.

A failover leaves through an Envoy Gateway `Backend` marked `fallback: true` (Envoy's priority levels: used only
when the pools' endpoints are unhealthy) pointing at a gateway, ours in another cluster or the cluster's own for
a fallback model, with `FAILOVER_HEADER` naming the model to answer; that gateway's failover entry rule sends it
to the target's pools and never fails over again, so chains cannot loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from components.serving.vllm_service import resource_name

POOL_GROUP = "inference.networking.k8s.io"
"""API group of InferencePool v1 (CRD `inference.networking.k8s.io_inferencepools.yaml` of the Go module
sigs.k8s.io/gateway-api-inference-extension v1.6.2)."""
SERVED_BY_HEADER = "x-llmplane-served-by"
"""Response header naming who answered: `<model>@<version>/<cluster>`."""
FAILOVER_HEADER = "x-llmplane-failover-model"
"""Request header a failing-over gateway sets: the model (and `@version` when pinned) the receiver must answer
with."""
MODEL_REWRITE_HEADER = "x-gateway-model-name-rewrite"
"""Header the endpoint picker reads to rewrite the request body's `model` before the model server sees it
(`ModelNameRewriteKey` in the inference extension's `pkg/lwepp/metadata/consts.go`, v1.6.2)."""
BACKEND_GROUP = "gateway.envoyproxy.io"
"""API group of Envoy Gateway's Backend and HTTPRouteFilter."""
EG_API = f"{BACKEND_GROUP}/v1alpha1"
"""apiVersion of every Envoy Gateway resource (policies, Backends, filters, EnvoyProxy)."""
CREDENTIAL_FILTER = "vllm-credential"
"""Name of the HTTPRouteFilter that puts vLLM's own key on every request the gateway forwards."""


def credential_filter(name: str = CREDENTIAL_FILTER) -> dict:
    """The HTTPRoute filter (an ExtensionRef to Envoy Gateway's HTTPRouteFilter) that injects vLLM's key: tenants
    authenticate to the gateway with their own keys and never learn the model servers' one."""
    return {"type": "ExtensionRef", "extensionRef": {"group": BACKEND_GROUP, "kind": "HTTPRouteFilter", "name": name}}


def pool_name(model: str, version: str) -> str:
    """Name of a model version's InferencePool: the name its Deployment and Service already carry."""
    return resource_name(model, version)


def served_by(model: str, version: str, cluster: str) -> str:
    """The `SERVED_BY_HEADER` value of one version in one cluster."""
    return f"{model}@{version}/{cluster}"


def pool_backend_ref(model: str, version: str, cluster: str, weight: int | None = None) -> dict:
    """An HTTPRoute backendRef to a version's InferencePool (no port: the pool has its target ports), with a
    filter that names the answering model, version and cluster in the response."""
    ref = {
        "group": POOL_GROUP,
        "kind": "InferencePool",
        "name": pool_name(model, version),
        "filters": [{"type": "ResponseHeaderModifier", "responseHeaderModifier": {
            "set": [{"name": SERVED_BY_HEADER, "value": served_by(model, version, cluster)}]}}],
    }
    return ref if weight is None else {**ref, "weight": weight}


@dataclass(frozen=True)
class Hop:
    """One step of a fallback chain."""

    model: str
    """Model that answers at this step."""
    cluster: str
    """Cluster whose gateway receives the request."""
    hostname: str
    """That gateway's regional hostname."""
    version: str | None = None
    """Pinned version of the model, or its traffic split."""

    @property
    def target(self) -> str:
        """The `FAILOVER_HEADER` value: `model` or `model@version`."""
        return self.model if self.version is None else f"{self.model}@{self.version}"

    @property
    def backend_name(self) -> str:
        """Name of the Envoy Gateway Backend of this step."""
        suffix = "" if self.version is None else "-v" + self.version.replace(".", "-")
        return f"failover-{self.model}{suffix}-{self.cluster}"[:63].rstrip("-")


def fallback_chain(model: str, cluster: str, model_clusters: Sequence[str], hostnames: dict[str, str],
                   other_clusters: bool = True, fallback_model: str | None = None,
                   fallback_version: str | None = None, fallback_clusters: Sequence[str] = ()) -> list[Hop]:
    """Where a model's requests in `cluster` go, in order, when its pools there cannot answer: the model's other
    clusters (in `model_clusters` order), then the fallback model in this cluster if it runs here, else in the
    first of its clusters."""
    missing = sorted({*model_clusters, *fallback_clusters} - set(hostnames))
    if missing:
        raise ValueError(f"no regional hostname for cluster(s) {', '.join(missing)}: give hostnames for every "
                         "cluster of the model and of its fallback model")
    hops = [Hop(model, other, hostnames[other]) for other in model_clusters if other_clusters and other != cluster]
    if fallback_model is not None:
        if not fallback_clusters:
            raise ValueError(f"fallback model '{fallback_model}' of '{model}' runs in no cluster: give "
                             "fallback_clusters")
        where = cluster if cluster in fallback_clusters else fallback_clusters[0]
        hops.append(Hop(fallback_model, where, hostnames[where], fallback_version))
    return hops


def failover_backend(hop: Hop) -> dict:
    """Spec of the Envoy Gateway Backend of a step: the receiving gateway over TLS, used only as a fallback."""
    return {
        "endpoints": [{"fqdn": {"hostname": hop.hostname, "port": 443}}],
        "fallback": True,
        "tls": {"wellKnownCACertificates": "System", "sni": hop.hostname},
    }


def failover_backend_refs(chain: Sequence[Hop]) -> list[dict]:
    """The backendRefs a model's split rule adds after its pools: one per step, each telling the receiver which
    model to answer with."""
    return [{
        "group": BACKEND_GROUP,
        "kind": "Backend",
        "name": hop.backend_name,
        "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
            "set": [{"name": FAILOVER_HEADER, "value": hop.target}]}}],
    } for hop in chain]


@dataclass(frozen=True)
class ServedVersion:
    """A version of a model that answers users (shadows never do)."""

    version: str
    """The version."""
    weight: int
    """Its percent of the model's traffic."""


def failover_entry_rules(model: str, served: Sequence[ServedVersion], cluster: str) -> list[dict]:
    """Rules a model's route adds so other gateways can fail over to it: a request to `/v1/...` carrying
    `FAILOVER_HEADER` = model (its split) or model@version (that version), answered by the pools here with the
    body's model rewritten to this one, and no further failover."""
    if not served:
        raise ValueError(f"model '{model}' has no version that answers users, so nothing can fail over to it")

    def entry(target: str, refs: list[dict]) -> dict:
        return {
            "matches": [{"path": {"type": "PathPrefix", "value": "/v1"},
                         "headers": [{"name": FAILOVER_HEADER, "value": target}]}],
            "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
                "set": [{"name": MODEL_REWRITE_HEADER, "value": model}]}}],
            "backendRefs": refs,
        }

    rules = [entry(f"{model}@{v.version}", [pool_backend_ref(model, v.version, cluster, 1)]) for v in served]
    rules.append(entry(model, [pool_backend_ref(model, v.version, cluster, v.weight) for v in served]))
    return rules
