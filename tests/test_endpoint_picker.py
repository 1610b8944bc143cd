"""The endpoint picker chooses replicas by prefix cache, as a gateway asks it (issue 17).

A real picker, the Inference Extension's own (sigs.k8s.io/gateway-api-inference-extension v1.3.0, built from its
Go module), configured with our scorer weights, watches our InferencePool in a real API server. Three replicas of
one version are pods whose addresses are vLLM metrics simulators on loopback addresses; the picker scrapes them as
it would vLLM. Our ext_proc client (toolchain/go/epp-probe) then sends requests the way Envoy does. Requests that
share a prompt prefix land on the same replica, and different prefixes spread over the replicas.

The clusters run the llm-d router's picker (same scorers and weights, `components.gateway.inference_pool`), which
is not on the Go module proxy; this is its upstream."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from llmplane.components.gateway.inference_pool import LORA_SCORER, SCORER_WEIGHTS
from llmplane.stacks.crd_sources import INFERENCE_EXTENSION, crd_documents
from llmplane.toolchain import gotools
from llmplane.toolchain.simulator import IDLE, Simulator, serve

from tests.planning import plan_of

NAMESPACE = "picker"
POOL = "llama-3-8b-v1-0-0"
REPLICAS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
"""Loopback addresses standing for the replicas' pod IPs: each has a metrics simulator on the vLLM port."""
VLLM_PORT = 8000
NODE = "gpu-node-unmanaged"
"""A node KWOK does not manage, so the pods keep the addresses and readiness the test gives them."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def picker_config() -> str:
    """The picker's configuration in v1.3.0's format, with the scorers and weights the clusters' picker gets for a
    version that serves LoRA adapters (the adapter-affinity scorer added)."""
    weights = {**SCORER_WEIGHTS, **dict([LORA_SCORER])}
    return yaml.safe_dump({
        "apiVersion": "inference.networking.x-k8s.io/v1alpha1",
        "kind": "EndpointPickerConfig",
        "plugins": [{"type": scorer} for scorer in weights],
        "schedulingProfiles": [{"name": "default", "plugins": [
            {"pluginRef": scorer, "weight": weight} for scorer, weight in weights.items()]}],
    })


def _pool_manifest() -> dict:
    """Our InferencePool of llama-3-8b 1.0.0 as a prod cluster gets it, in the test's namespace."""
    [pool] = [r for r in plan_of("prod").of_type("kubernetes:inference.networking.k8s.io/v1:InferencePool")
              if r.inputs["metadata"]["name"] == POOL and "::aws-use1-" in r.urn]
    manifest = json.loads(json.dumps(pool.inputs))
    manifest["metadata"]["namespace"] = NAMESPACE
    return manifest


def _pod(name: str, labels: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            "spec": {"nodeName": NODE, "serviceAccountName": "replica", "automountServiceAccountToken": False,
                     "containers": [{"name": "vllm", "image": "vllm",
                                                         "ports": [{"containerPort": VLLM_PORT}]}]}}


def _ready(address: str) -> dict:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"status": {"phase": "Running", "podIP": address, "podIPs": [{"ip": address}],
                       "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]}}


@pytest.fixture(scope="module")
def picker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The picker's ext_proc address, once it sees the three replicas of the pool."""
    from llmplane.stacks.local.embedded_cluster import EmbeddedCluster

    folder = tmp_path_factory.mktemp("picker")
    cluster = EmbeddedCluster(folder / "cluster")
    cluster.up([], say=lambda _message: None)
    servers, logs, process = [], [], None
    try:
        crds = list(crd_documents(INFERENCE_EXTENSION))
        cluster.kubectl("apply", "--server-side", "-f", "-", input_text=yaml.safe_dump_all(crds))
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                        *[f"crd/{d['metadata']['name']}" for d in crds])
        pool = _pool_manifest()
        labels = pool["spec"]["selector"]["matchLabels"]
        objects = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
                   {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}},
                   # Our own account: the namespace's default one may not exist yet when the pods arrive.
                   {"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": "replica", "namespace": NAMESPACE}},
                   pool,
                   *(_pod(f"{POOL}-{index}", labels) for index in range(len(REPLICAS)))]
        cluster.kubectl("apply", "-f", "-", input_text=yaml.safe_dump_all(objects))
        for index, address in enumerate(REPLICAS):
            cluster.kubectl("patch", "pod", f"{POOL}-{index}", "-n", NAMESPACE, "--subresource=status",
                            "--type=merge", "-p", json.dumps(_ready(address)))
            logs.append(open(folder / f"{index}.log", "w"))
            simulator = Simulator("llama-3-8b", "1.0.0", "1.1.0", IDLE, logs[-1])
            servers.append(serve(simulator, address, VLLM_PORT))
        grpc_port = _free_port()
        logs.append(open(folder / "epp.log", "w"))
        process = subprocess.Popen([
            str(gotools.build(gotools.TOOLS["epp"])), "--pool-name", POOL, "--pool-namespace", NAMESPACE,
            "--pool-group", "inference.networking.k8s.io", "--config-text", picker_config(),
            "--grpc-port", str(grpc_port), "--grpc-health-port", str(_free_port()),
            "--metrics-port", str(_free_port()), "--secure-serving=false", "--health-checking=false",
            "--model-server-metrics-path", "/metrics/baseline", "--refresh-metrics-interval", "50ms"],
            stdout=logs[-1], stderr=subprocess.STDOUT, env={"KUBECONFIG": str(cluster.kubeconfig), "PATH": "/usr/bin"})
        address = f"127.0.0.1:{grpc_port}"
        _wait_until_it_picks(address, process, folder / "epp.log")
        yield address
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
        for server in servers:
            server.shutdown()
        for log in logs:
            log.close()
        cluster.down(say=lambda _message: None)


def probe(address: str, bodies: list[dict[str, Any]]) -> list[str]:
    """The endpoint the picker chooses for each request body, asked in order."""
    done = subprocess.run([str(gotools.build(gotools.TOOLS["epp-probe"])), "--addr", address],
                          input="".join(json.dumps(b) + "\n" for b in bodies), capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def _wait_until_it_picks(address: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the picker exited: {log.read_text()[-3000:]}"
        try:
            if probe(address, [_request("warm-up", 0)]):
                return
        except AssertionError:
            time.sleep(1)
    raise AssertionError(f"the picker chose no replica within 90 s: {log.read_text()[-3000:]}")


def _request(family: str, turn: int) -> dict[str, Any]:
    """A completion whose prompt starts with a long system prompt of its family (about 3,000 characters, some
    45 prefix blocks) and ends with a question of its own."""
    words = random.Random(family).choices(["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"], k=500)
    return {"model": "llama-3-8b", "max_tokens": 16,
            "prompt": f"System ({family}): {' '.join(words)}\nUser turn {turn}: question {turn} of {family}?"}


def test_requests_sharing_a_prefix_land_on_the_replica_that_already_holds_it(picker):
    families = [f"tenant-{n}" for n in range(10)]
    first = dict(zip(families, probe(picker, [_request(f, 0) for f in families]), strict=True))
    assert set(first.values()) <= {f"{a}:{VLLM_PORT}" for a in REPLICAS}
    follow_ups = [(f, turn) for turn in (1, 2, 3) for f in families]
    chosen = probe(picker, [_request(f, turn) for f, turn in follow_ups])
    assert [first[f] for f, _ in follow_ups] == chosen


def test_different_prefixes_spread_over_the_replicas(picker):
    families = [f"other-{n}" for n in range(12)]
    assert len(set(probe(picker, [_request(f, 0) for f in families]))) > 1


def test_a_request_naming_a_lora_adapter_is_given_a_replica(picker):
    """Clients ask for an adapter by its name as the model; the picker, adapter affinity on, still places it."""
    request = {**_request("tenant-lora", 0), "model": "sql"}
    [chosen] = probe(picker, [request])
    assert chosen in {f"{a}:{VLLM_PORT}" for a in REPLICAS}
