"""The real Pulumi engine and the official Kubernetes provider deploy the local stack to a real API server.

The embedded cluster (etcd, kube-apiserver, controller-manager, scheduler, KWOK fake GPU nodes) runs for the
session in a temporary folder; the stack uses a throwaway file backend and a copy of the local environment
whose kubeconfig points at that cluster, so neither .state/ nor environments/ is touched. Every object must
be admitted by the server (custom resources included), a second update must change nothing, drift must be
reported and repaired, and `pulumi destroy` must leave the serving namespace empty.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from llmplane.stacks.local.embedded_cluster import EmbeddedCluster

from tests.engine import STACK, Engine, inline_program, wait_for

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "llmplane"
DEPLOYMENT = "llama-3-8b-v1-0-0"


@dataclass
class Deployed:
    engine: Engine
    cluster: EmbeddedCluster
    first: dict[str, Any]
    second: dict[str, Any]

    def kubectl(self, *args: str, check: bool = True) -> str:
        return self.cluster.kubectl(*args, check=check)

    def get(self, *args: str) -> dict[str, Any]:
        return json.loads(self.kubectl("get", *args, "-o", "json"))


@pytest.fixture(scope="module")
def deployed(embedded_cluster: EmbeddedCluster, tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    kubeconfig = str(embedded_cluster.kubeconfig)

    def aim(cluster: dict[str, Any]) -> None:
        cluster["kubeconfigFile"] = kubeconfig

    engine = Engine(tmp_path_factory.mktemp("engine"), aim)
    first = engine.up()
    return Deployed(engine, embedded_cluster, first, engine.up())


def test_first_up_creates_the_stack_in_the_cluster(deployed: Deployed) -> None:
    assert deployed.first["result"] == "succeeded"
    assert deployed.first["resourceChanges"].get("create", 0) > 20


def test_the_server_admitted_every_object_custom_resources_included(deployed: Deployed) -> None:
    resources = deployed.engine.kubernetes_resources()
    kinds = {r["outputs"]["kind"] for r in resources}
    assert {"CustomResourceDefinition", "Deployment", "Gateway", "HTTPRoute", "ScaledObject"} <= kinds
    for resource in resources:
        outputs = resource["outputs"]
        metadata = outputs["metadata"]
        where = ["-n", metadata["namespace"]] if metadata.get("namespace") else []
        api = outputs["apiVersion"]
        group = api.split("/")[0] if "/" in api else ""
        kind = f"{outputs['kind'].lower()}.{group}" if group else outputs["kind"].lower()
        live = deployed.get(kind, metadata["name"], *where)
        assert live["metadata"]["uid"] == metadata["uid"], f"{kind} {metadata['name']} is not the one Pulumi made"


def test_vllm_pods_run_on_fake_gpu_nodes(deployed: Deployed) -> None:
    def running() -> list[dict[str, Any]]:
        pods = deployed.get("pods", "-n", NAMESPACE, "-l", "llmplane.dev/model=llama-3-8b")["items"]
        return [p for p in pods if p["status"].get("phase") == "Running"]

    pods = wait_for(running, "a Running vLLM pod")
    node = deployed.get("node", pods[0]["spec"]["nodeName"])
    assert node["metadata"]["labels"]["llmplane.dev/gpu-type"] == "nvidia-l4"
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "1"
    limits = pods[0]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1"


def test_second_up_changes_nothing(deployed: Deployed) -> None:
    assert deployed.second["result"] == "succeeded"
    assert set(deployed.second["resourceChanges"]) == {"same"}, deployed.second["resourceChanges"]


def test_no_secret_config_value_reaches_the_state(deployed: Deployed) -> None:
    state = deployed.engine.run("stack", "export", "--stack", STACK).stdout
    for value in deployed.engine.secret_config_values():
        assert value not in state, "a secret config value is in the state in plain text"


def test_editing_replica_bounds_changes_exactly_that_autoscaler(deployed: Deployed) -> None:
    def more_replicas(config: dict[str, Any]) -> None:
        config["llmplane:models"]["llama-3-8b"]["replicas"]["max"] += 1
        config["llmplane:clusters"][0]["pools"][0]["nodes"]["max"] += 1

    edited = deployed.engine.config_file("more-replicas", more_replicas)
    assert deployed.engine.preview(edited) == [("update", "local-llama-3-8b-1.0.0-scaledobject")]


def test_out_of_band_edits_are_reported_by_refresh_and_repaired_by_make_up(deployed: Deployed) -> None:
    engine = deployed.engine
    pdb = deployed.get("pdb", DEPLOYMENT, "-n", NAMESPACE)
    assert pdb["spec"]["maxUnavailable"] == 1
    deployed.kubectl("patch", "pdb", DEPLOYMENT, "-n", NAMESPACE, "--type=merge",
                     "-p", '{"spec":{"maxUnavailable":3}}')
    refresh = engine.run("refresh", "--stack", STACK, "--preview-only", "--json", "--config-file",
                         str(engine.config))
    drifted = [s["urn"].split("::")[-1] for s in json.loads(refresh.stdout)["steps"] if s["op"] == "update"]
    assert drifted == ["local-llama-3-8b-1.0.0-pdb"], drifted
    repaired = engine.up()
    assert repaired["resourceChanges"].get("update") == 1, repaired["resourceChanges"]
    assert deployed.get("pdb", DEPLOYMENT, "-n", NAMESPACE)["spec"]["maxUnavailable"] == 1


def test_a_canary_step_previews_as_a_route_weight_change_only(deployed: Deployed) -> None:
    """With a canary in flight (90/10), moving it to 25 is, in a real preview, one HTTPRoute update."""
    engine = deployed.engine

    def canary(stable: int, weight: int):
        def edit(config: dict[str, Any]) -> None:
            config["llmplane:models"]["llama-3-8b"]["versions"] = [
                {"version": "1.0.0", "weight": stable},
                {"version": "1.1.0", "weight": weight, "role": "canary", "replicas": {"min": 1, "max": 1}}]
            config["llmplane:clusters"][0]["pools"][0]["nodes"]["max"] = 4  # both versions' replicas + the warm slot
        return engine.config_file(f"canary-{weight}", edit)

    engine.up(canary(90, 10))
    changed = engine.preview(canary(75, 25))
    assert changed == [("update", "local-llama-3-8b-route")], changed
    route = deployed.get("httproute", "llama-3-8b", "-n", NAMESPACE)
    assert [b["weight"] for b in route["spec"]["rules"][-1]["backendRefs"]] == [90, 10]
    engine.up()  # back to the base configuration for the tests after this one


def test_a_version_at_zero_replicas_is_reached_through_the_interceptor_that_holds_its_requests(
        deployed: Deployed) -> None:
    """Allowed to scale to zero, the version's route goes to KEDA's HTTP interceptor, whose InterceptorRoute holds
    each request while the first replica starts and then forwards it; the server admits all of it."""
    engine = deployed.engine

    def to_zero(config: dict[str, Any]) -> None:
        config["llmplane:models"]["llama-3-8b"]["replicas"] = {"min": 0, "max": 2}

    # KEDA and its HTTP add-on run outside the stack here (`addons: external`); make up registers their namespace.
    if not deployed.kubectl("get", "namespace", "keda", "--ignore-not-found", "-o", "name").strip():
        deployed.kubectl("create", "namespace", "keda")
    engine.up(engine.config_file("scale-to-zero", to_zero))
    held = deployed.get("interceptorroute", DEPLOYMENT, "-n", NAMESPACE)["spec"]
    assert held["target"] == {"service": DEPLOYMENT, "port": 8000}
    readiness, request = (int(held["timeouts"][key].removesuffix("s")) for key in ("readiness", "request"))
    assert 0 < readiness < request, held["timeouts"]
    backends = deployed.get("httproute", "llama-3-8b", "-n", NAMESPACE)["spec"]["rules"][-1]["backendRefs"]
    assert [(b["name"], b["namespace"]) for b in backends] == [("keda-add-ons-http-interceptor-proxy", "keda")]
    grant = deployed.get("referencegrant", "llmplane-routes-to-interceptor", "-n", "keda")["spec"]
    assert grant["from"] == [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": NAMESPACE}]
    assert deployed.get("scaledobject", DEPLOYMENT, "-n", NAMESPACE)["spec"]["minReplicaCount"] == 0
    engine.up()  # back to the base configuration for the tests after this one
    backends = deployed.get("httproute", "llama-3-8b", "-n", NAMESPACE)["spec"]["rules"][-1]["backendRefs"]
    assert [b["name"] for b in backends] == [DEPLOYMENT]


def test_an_object_the_server_refuses_fails_the_update_with_the_servers_message(
        deployed: Deployed, embedded_cluster: EmbeddedCluster, tmp_path: Path) -> None:
    """A negative backend weight passes the Python SDK but not the Gateway API CRD's validation."""
    program = inline_program(tmp_path / "refused", "refused",
        "import pulumi, pulumi_kubernetes as k8s\n"
        f"provider = k8s.Provider('cluster', kubeconfig=open({str(embedded_cluster.kubeconfig)!r}).read())\n"
        "k8s.apiextensions.CustomResource('route', api_version='gateway.networking.k8s.io/v1', kind='HTTPRoute',\n"
        "    metadata={'name': 'refused', 'namespace': 'default'},\n"
        "    spec={'rules': [{'backendRefs': [{'name': 'x', 'port': 8000, 'weight': -1}]}]},\n"
        "    opts=pulumi.ResourceOptions(provider=provider))\n")
    env = {**deployed.engine.env, "PULUMI_BACKEND_URL": f"file://{tmp_path}"}

    def pulumi_run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["pulumi", *args], cwd=program, env=env, capture_output=True, text=True,
                              timeout=600, check=False)

    assert pulumi_run("stack", "init", "refused").returncode == 0
    done = pulumi_run("up", "--yes", "--stack", "refused")
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "spec.rules[0].backendRefs[0].weight" in output, output
    assert "greater than or equal to 0" in output, output


def test_destroy_leaves_the_serving_namespace_empty(deployed: Deployed) -> None:
    engine = deployed.engine
    engine.run("destroy", "--stack", STACK, "--yes", "--skip-preview", "--config-file", str(engine.config))

    def gone() -> bool:
        listed = deployed.kubectl("get", "deployments,services,pods,httproutes,scaledobjects", "-n", NAMESPACE,
                                  "-o", "name", check=False)
        return not listed.strip()

    wait_for(gone, "the serving namespace to be empty")
    assert engine.kubernetes_resources() == []
