"""A real API server admits the gateway objects a prod cluster gets (issue 17): with the Gateway API's, Envoy
Gateway's and the Inference Extension's CRDs at the pinned versions installed, every InferencePool, endpoint picker,
HTTPRoute (a rule per version with one pool, key injection), HTTPRouteFilter, SecurityPolicy, BackendTrafficPolicy,
EnvoyExtensionPolicy, EnvoyProxy, GatewayClass and Gateway passes schema and CEL validation (server-side dry run).

cert-manager's Certificate and Issuers are left out: cert-manager publishes its CRDs as Helm templates only."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway_objects import gateway_cluster as started
from tests.gateway_objects import gateway_objects, manifest, stream


@pytest.fixture(scope="module")
def gateway_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with started(tmp_path_factory.mktemp("admission")) as cluster:
        yield cluster


def _dry_run(cluster: Any, path: Path) -> tuple[str, str]:
    """What the API server says to a server-side apply of the file, without persisting it: (stdout, stderr)."""
    done = subprocess.run([str(cluster.kubectl_bin), f"--kubeconfig={cluster.kubeconfig}", "apply",
                           "--server-side", "--dry-run=server", "-f", str(path)],
                          capture_output=True, text=True, timeout=120, check=False)
    return done.stdout, done.stderr


def test_the_api_server_admits_every_gateway_object_of_a_prod_cluster(gateway_cluster, tmp_path: Path):
    objects = gateway_objects()
    kinds = {r.inputs["kind"] for r in objects}
    assert {"InferencePool", "HTTPRoute", "HTTPRouteFilter", "SecurityPolicy", "BackendTrafficPolicy",
            "EnvoyExtensionPolicy", "EnvoyProxy", "GatewayClass", "Gateway", "Deployment", "NetworkPolicy"} <= kinds
    manifests = [manifest(r) for r in objects]
    (tmp_path / "objects.yaml").write_text(stream(manifests))
    admitted, refused = _dry_run(gateway_cluster, tmp_path / "objects.yaml")
    assert refused == ""
    assert admitted.count("serverside-applied (server dry run)") == len(manifests), admitted


def test_a_route_the_schema_refuses_is_refused(gateway_cluster, tmp_path: Path):
    [route] = [r for r in gateway_objects() if r.inputs["kind"] == "HTTPRoute"
               and r.inputs["metadata"]["name"] == "llama-3-8b"]
    sent = manifest(route)
    sent["spec"]["rules"][-1]["backendRefs"][0]["weight"] = -1
    (tmp_path / "route.yaml").write_text(stream([sent]))
    admitted, refused = _dry_run(gateway_cluster, tmp_path / "route.yaml")
    assert admitted == "" and "weight" in refused
