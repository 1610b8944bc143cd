"""Prod's gateway objects as the Kubernetes provider would send them, and an embedded cluster with the CRDs they
need: shared by the admission test (the API server admits them) and the controller test (Envoy Gateway reconciles
them). The cluster is one of its own, so the CRDs installed here never meet the local stack's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from llmplane.stacks.crd_sources import ENVOY_GATEWAY, GATEWAY_API, INFERENCE_EXTENSION, crd_documents
from llmplane.stacks.local.embedded_cluster import EmbeddedCluster
from llmplane.stacks.plan import PlannedResource

from tests.planning import plan_of

CLUSTER = "aws-use1"
GATEWAY_COMPONENTS = ("llmplane:gateway:ModelInferencePool", "llmplane:gateway:UpstreamCredential",
                      "llmplane:gateway:GatewayTenants",
                      "llmplane:gateway:TokenUsage", "llmplane:gateway:EnvoyGatewayInstall",
                      "llmplane:serving:ModelRollout", "llmplane:networking:RegionalGateway")
"""The components whose Kubernetes objects make up the inference gateway."""
NAMESPACES = {"llmplane": "admit-serving", "llmplane-gateway": "admit-gateway",
              "envoy-gateway-system": "admit-envoy-gateway", "monitoring": "admit-monitoring",
              "envoy-ai-gateway-system": "admit-ai-gateway"}
"""The objects' namespaces, renamed so that the cluster needs only namespaces of its own."""
INT32_MAX = 2**31 - 1


@contextmanager
def gateway_cluster(state_dir: Path, namespaces: dict[str, str] = NAMESPACES) -> Iterator[EmbeddedCluster]:
    """An embedded cluster with the Gateway API, Envoy Gateway and InferencePool CRDs at their pinned versions and
    the objects' namespaces; stopped (with every process started beside it) on exit."""
    cluster = EmbeddedCluster(state_dir)
    cluster.up([], say=lambda _message: None)
    try:
        crds = [_int32_bounds_widened(d)
                for source in (GATEWAY_API, ENVOY_GATEWAY, INFERENCE_EXTENSION) for d in crd_documents(source)]
        cluster.kubectl("apply", "--server-side", "-f", "-", input_text=stream(crds))
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                        *[f"crd/{d['metadata']['name']}" for d in crds])
        cluster.kubectl("apply", "-f", "-", input_text=stream(
            [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}} for name in namespaces.values()]))
        yield cluster
    finally:
        cluster.down(say=lambda _message: None)


def _int32_bounds_widened(schema: Any) -> Any:
    """The CRD with every int32 field whose bound an int32 cannot hold declared int64.

    Envoy Gateway v1.8.1 renders BackendTrafficPolicy's uint32 `limit.requests` (global and local rate limits) as
    format int32 with maximum 4294967295, and Kubernetes 1.36+ refuses every object against it ("Maximum boundary
    value must be of type integer with format int32", envoyproxy/gateway issue 9186); v1.9.1 declares format int64
    for that reason (api/v1alpha1/ratelimit_types.go). The clusters run Kubernetes 1.33 (`kubernetes_version`),
    the embedded cluster 1.37: here the field gets v1.9.1's format, so the tenants' budgets are admitted as a
    cluster admits them."""
    if isinstance(schema, dict):
        widened = {key: _int32_bounds_widened(item) for key, item in schema.items()}
        if widened.get("format") == "int32" and widened.get("maximum", 0) > INT32_MAX:
            widened["format"] = "int64"
        return widened
    if isinstance(schema, list):
        return [_int32_bounds_widened(item) for item in schema]
    return schema


def stream(documents: list[dict]) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False)


def renamed(value: Any, namespaces: dict[str, str] = NAMESPACES) -> Any:
    """The object with every namespace reference moved to the test's namespaces."""
    if isinstance(value, dict):
        return {key: (namespaces.get(item, item) if key == "namespace" and isinstance(item, str)
                      else renamed(item, namespaces)) for key, item in value.items()}
    if isinstance(value, list):
        return [renamed(item, namespaces) for item in value]
    return value


def manifest(resource: PlannedResource, namespaces: dict[str, str] = NAMESPACES) -> dict:
    """The object as the provider would send it, in `namespaces`; secrets (redacted in plans) get a stand-in
    value."""
    sent = renamed(dict(resource.inputs), namespaces)
    if sent.get("stringData") == "[secret]":
        sent["stringData"] = {"credential": "Bearer stand-in"}
    assert "[unknown]" not in json.dumps(sent), resource.urn
    return sent


def gateway_objects(components: tuple[str, ...] = GATEWAY_COMPONENTS) -> list[PlannedResource]:
    """Every Kubernetes object (Helm releases aside) of these components in prod's aws-use1 cluster; by default
    the gateway's."""
    plan = plan_of("prod")
    return [r for r in plan.resources
            if r.type.startswith("kubernetes:") and r.type != "kubernetes:helm.sh/v3:Release"
            and f"::{CLUSTER}-" in r.urn and any(f"{token}$" in r.urn for token in components)]
