"""A real API server admits the gateway objects a prod cluster gets (issue 17): with the Gateway API's, Envoy
Gateway's and the Inference Extension's CRDs at the pinned versions installed, every InferencePool, endpoint picker,
HTTPRoute (a rule per version with one pool, key injection), HTTPRouteFilter, SecurityPolicy, BackendTrafficPolicy,
EnvoyExtensionPolicy, EnvoyProxy, GatewayClass and Gateway passes schema and CEL validation (server-side dry run).

The cluster is one of its own, so the CRDs installed here never meet the local stack's. cert-manager's Certificate
and Issuers are left out: cert-manager publishes its CRDs as Helm templates only."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stacks.crd_sources import ENVOY_GATEWAY, GATEWAY_API, INFERENCE_EXTENSION, crd_documents
from stacks.plan import PlannedResource
from tests.planning import plan_of

CLUSTER = "aws-use1"
GATEWAY_COMPONENTS = ("llmplane:gateway:ModelInferencePool", "llmplane:gateway:UpstreamCredential",
                      "llmplane:gateway:GatewayTenants",
                      "llmplane:gateway:TokenUsage", "llmplane:gateway:EnvoyGatewayInstall",
                      "llmplane:serving:ModelRollout", "llmplane:networking:RegionalGateway")
"""The components whose Kubernetes objects make up the inference gateway."""
NAMESPACES = {"llmplane": "admit-serving", "llmplane-gateway": "admit-gateway",
              "envoy-gateway-system": "admit-envoy-gateway", "monitoring": "admit-monitoring"}
"""The objects' namespaces, renamed so that the dry run needs only namespaces of its own."""


@pytest.fixture(scope="module")
def gateway_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from toolchain.embedded_cluster import EmbeddedCluster

    cluster = EmbeddedCluster(tmp_path_factory.mktemp("admission"))
    cluster.up([], say=lambda _message: None)
    try:
        crds = [d for source in (GATEWAY_API, ENVOY_GATEWAY, INFERENCE_EXTENSION) for d in crd_documents(source)]
        cluster.kubectl("apply", "--server-side", "-f", "-", input_text=_stream(crds))
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                        *[f"crd/{d['metadata']['name']}" for d in crds])
        cluster.kubectl("apply", "-f", "-", input_text=_stream(
            [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}} for name in NAMESPACES.values()]))
        yield cluster
    finally:
        cluster.down(say=lambda _message: None)


def _dry_run(cluster: Any, path: Path) -> tuple[str, str]:
    """What the API server says to a server-side apply of the file, without persisting it: (stdout, stderr)."""
    done = subprocess.run([str(cluster.kubectl_bin), f"--kubeconfig={cluster.kubeconfig}", "apply",
                           "--server-side", "--dry-run=server", "-f", str(path)],
                          capture_output=True, text=True, timeout=120, check=False)
    return done.stdout, done.stderr


def _stream(documents: list[dict]) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False)


def _renamed(value: Any) -> Any:
    """The object with every namespace reference moved to the test's namespaces."""
    if isinstance(value, dict):
        return {key: (NAMESPACES.get(item, item) if key == "namespace" and isinstance(item, str) else _renamed(item))
                for key, item in value.items()}
    if isinstance(value, list):
        return [_renamed(item) for item in value]
    return value


def _manifest(resource: PlannedResource) -> dict:
    """The object as the provider would send it; secrets (redacted in plans) get a stand-in value."""
    manifest = _renamed(dict(resource.inputs))
    if manifest.get("stringData") == "[secret]":
        manifest["stringData"] = {"credential": "Bearer stand-in"}
    assert "[unknown]" not in json.dumps(manifest), resource.urn
    return manifest


def _gateway_objects() -> list[PlannedResource]:
    plan = plan_of("prod")
    return [r for r in plan.resources
            if r.type.startswith("kubernetes:") and r.type != "kubernetes:helm.sh/v3:Release"
            and f"::{CLUSTER}-" in r.urn and any(f"{token}$" in r.urn for token in GATEWAY_COMPONENTS)]


def test_the_api_server_admits_every_gateway_object_of_a_prod_cluster(gateway_cluster, tmp_path: Path):
    objects = _gateway_objects()
    kinds = {r.inputs["kind"] for r in objects}
    assert {"InferencePool", "HTTPRoute", "HTTPRouteFilter", "SecurityPolicy", "BackendTrafficPolicy",
            "EnvoyExtensionPolicy", "EnvoyProxy", "GatewayClass", "Gateway", "Deployment", "NetworkPolicy"} <= kinds
    manifests = [_manifest(r) for r in objects]
    (tmp_path / "objects.yaml").write_text(_stream(manifests))
    admitted, refused = _dry_run(gateway_cluster, tmp_path / "objects.yaml")
    assert refused == ""
    assert admitted.count("serverside-applied (server dry run)") == len(manifests), admitted


def test_a_route_the_schema_refuses_is_refused(gateway_cluster, tmp_path: Path):
    [route] = [r for r in _gateway_objects() if r.inputs["kind"] == "HTTPRoute"
               and r.inputs["metadata"]["name"] == "llama-3-8b"]
    manifest = _manifest(route)
    manifest["spec"]["rules"][-1]["backendRefs"][0]["weight"] = -1
    (tmp_path / "route.yaml").write_text(_stream([manifest]))
    admitted, refused = _dry_run(gateway_cluster, tmp_path / "route.yaml")
    assert admitted == "" and "weight" in refused
