"""The autoscaling loop, for real: load on the vLLM metrics raises the replica count through KEDA, the new pods
land on fake GPU nodes until the pool is full, and the count comes back down once the load stops.

The local stack is deployed by the real engine to the embedded cluster with short windows; KEDA's operator and
metrics API server (built from KEDA's Go module) run beside the control plane, and Debian's Prometheus scrapes
a simulator that stands in for the model's pods. Nothing here is mocked: the ScaledObject the stack created
becomes an HPA in kube-controller-manager, which reads KEDA's external metrics through the aggregation layer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from llmplane.stacks.local import cluster_addons
from llmplane.stacks.local.embedded_cluster import EmbeddedCluster
from llmplane.toolchain.localstack import free_port

from tests.engine import Engine, wait_for

NAMESPACE = "llmplane"
DEPLOYMENT = "llama-3-8b-v1-0-0"
MAX_REPLICAS = 5


class Loop:
    def __init__(self, cluster: EmbeddedCluster, engine: Engine) -> None:
        self.cluster, self.engine = cluster, engine

    def replicas(self) -> int:
        deployment = json.loads(self.cluster.kubectl("get", "deployment", DEPLOYMENT, "-n", NAMESPACE, "-o", "json"))
        return deployment["spec"].get("replicas", 0)

    def gpu_nodes(self) -> int:
        """The fake GPU nodes of the local pool (its `nodes.max`), one GPU each."""
        return len(self.cluster.kubectl("get", "nodes", "-l", "llmplane.dev/pool=inference", "-o", "name").split())

    def pods(self) -> list[dict[str, Any]]:
        listed = self.cluster.kubectl("get", "pods", "-n", NAMESPACE, "-l", "llmplane.dev/model=llama-3-8b",
                                      "-o", "json")
        return [p for p in json.loads(listed)["items"] if not p["metadata"].get("deletionTimestamp")]


@pytest.fixture(scope="module")
def loop(embedded_cluster: EmbeddedCluster, tmp_path_factory: pytest.TempPathFactory):
    prometheus_port = free_port()
    kubeconfig = str(embedded_cluster.kubeconfig)
    engine = Engine(tmp_path_factory.mktemp("autoscaling"), lambda c: c.update(kubeconfigFile=kubeconfig))

    def short_windows(config: dict[str, Any]) -> None:
        config["llmplane:models"]["llama-3-8b"]["replicas"] = {"min": 1, "max": MAX_REPLICAS}
        config["llmplane:clusters"][0]["pools"][0]["nodes"]["max"] = MAX_REPLICAS
        # Every GPU for replicas: no placeholder holds a warm slot here.
        config["llmplane:clusters"][0]["pools"][0].pop("warmHeadroom", None)
        config["llmplane:observability"]["prometheusUrl"] = f"http://127.0.0.1:{prometheus_port}"
        config["llmplane:autoscaling"] = {"scaleToZero": False, "queuePerReplica": 4, "scaleUpSeconds": 0,
                                          "scaleDownSeconds": 20, "pollingSeconds": 2, "cooldownSeconds": 30}

    addons = cluster_addons.Addons(prometheus_port, (cluster_addons.SimulatedModel("llama-3-8b", "1.0.0", "1.1.0"),))
    cluster_addons.start(embedded_cluster, addons, say=lambda _m: None)  # KEDA waits for its CRDs
    engine.up(engine.config_file("short-windows", short_windows))
    cluster_addons.start(embedded_cluster, addons, say=lambda _m: None)  # now KEDA starts
    yield Loop(embedded_cluster, engine)
    engine.run("destroy", "--stack", "local", "--yes", "--skip-preview", "--config-file", str(engine.config))
    wait_for(lambda: not embedded_cluster.kubectl("get", "namespace", NAMESPACE, "--ignore-not-found", "-o", "name"),
             "the serving namespace to be gone", timeout=120)


def test_keda_turns_the_stacks_scaled_object_into_an_hpa(loop: Loop) -> None:
    hpa = wait_for(lambda: loop.cluster.kubectl("get", "hpa", "-n", NAMESPACE, "-o", "name", check=False).strip(),
                   "KEDA's HPA")
    assert hpa == f"horizontalpodautoscaler.autoscaling/keda-hpa-{DEPLOYMENT}"


def test_load_scales_up_to_the_pools_gpus_then_pods_wait_for_gpus_and_come_back_down(loop: Loop) -> None:
    assert wait_for(lambda: loop.replicas() == 1, "one replica while the model is quiet", timeout=120)
    cluster_addons.set_load(loop.cluster, "llama-3-8b", "overload")
    wait_for(lambda: loop.replicas() == MAX_REPLICAS, f"{MAX_REPLICAS} replicas under load", timeout=240)

    gpu_nodes = loop.gpu_nodes()
    assert 1 < gpu_nodes < MAX_REPLICAS

    def running_and_waiting() -> bool:
        pods = loop.pods()
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        pending = [p for p in pods if p["status"].get("phase") == "Pending"]
        reasons = " ".join(c.get("message", "") for p in pending for c in p["status"].get("conditions", []))
        return len(running) == gpu_nodes and len(pending) == MAX_REPLICAS - gpu_nodes and \
            "Insufficient nvidia.com/gpu" in reasons

    wait_for(running_and_waiting, "a pod Running on each GPU node and the rest Pending for lack of GPUs",
             timeout=120)
    for pod in loop.pods():
        if pod["status"].get("phase") == "Running":
            node = json.loads(loop.cluster.kubectl("get", "node", pod["spec"]["nodeName"], "-o", "json"))
            assert node["metadata"]["labels"]["llmplane.dev/gpu-type"] == "nvidia-l4"
    cluster_addons.set_load(loop.cluster, "llama-3-8b", "idle")
    wait_for(lambda: loop.replicas() == 1, "back to one replica after the scale-down window", timeout=300)


def test_every_program_the_local_stack_launches_is_one_make_up_installs(loop: Loop) -> None:
    """`make up` installs what it runs: each process beside the control plane (Prometheus, KEDA, the simulator)
    is either the project's own Python or a tool `make up`'s set-up installs, not one only `make test` brings."""
    from llmplane.toolchain import prerequisites

    up_tools = {str(path): tool.name for tool in prerequisites.needed(prerequisites.UP)
                if (path := prerequisites.locate(tool)) is not None}
    launched = loop.cluster.commands()
    assert {"prometheus", "keda-operator", "keda-metrics-apiserver", "etcd", "kube-apiserver"} <= set(launched)
    outside = {name: argv[0] for name, argv in launched.items()
               if argv[0] not in up_tools and Path(argv[0]).name not in ("python", "python3")}
    assert not outside, f"launched by the local stack but not installed by `make up`'s set-up: {outside}"
