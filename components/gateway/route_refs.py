"""Inference-aware routes, as pure functions of plain values: backendRefs to InferencePools, the header naming the
model that answered, and the filter that puts vLLM's own key on forwarded requests.

One InferencePool per model version, not one per model with versions as subsets: each version keeps its own
pool, its own endpoint picker and its own metrics, and a rollout step stays a weight edit (the gateway's version
split, `components.gateway.version_split`, picks the version's rule). A pool spanning versions would make the
endpoint picker, blind to the split, undo the weights.

No failover inside the gateway: Envoy Gateway fails over through `fallback` Backends, Envoy priority levels in one
cluster, and Envoy AI Gateway turns an InferencePool rule's cluster into an ORIGINAL_DST cluster, which has no
priority levels (envoyproxy/ai-gateway v1.1.0 `internal/extensionserver/post_cluster_modify.go`). Whole clusters
fail over by DNS (`components.networking.global_routing`). See docs/gateway.md.
"""

from __future__ import annotations

from llmplane.components.serving.vllm_service import resource_name

POOL_GROUP = "inference.networking.k8s.io"
"""API group of InferencePool v1 (CRD `inference.networking.k8s.io_inferencepools.yaml` of the Go module
sigs.k8s.io/gateway-api-inference-extension v1.6.2)."""
MODEL_REWRITE_HEADER = "x-gateway-model-name-rewrite"
"""Header the endpoint picker reads to rewrite the request body's `model` before the model server sees it
(`ModelNameRewriteKey` in the inference extension's `pkg/lwepp/metadata/consts.go`, v1.6.2); the token meter
charges the rewritten model."""
BACKEND_GROUP = "gateway.envoyproxy.io"
"""API group of Envoy Gateway's HTTPRouteFilter."""
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


def pool_backend_ref(model: str, version: str, weight: int | None = None) -> dict:
    """An HTTPRoute backendRef to a version's InferencePool (no port: the pool has its target ports) and no
    filters: Envoy Gateway drops filters on extension-handled backendRefs, so the rule carries them."""
    ref = {"group": POOL_GROUP, "kind": "InferencePool", "name": pool_name(model, version)}
    return ref if weight is None else {**ref, "weight": weight}
