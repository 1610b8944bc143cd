"""Scale from zero, executed: KEDA's HTTP add-on holds a request to a version at zero replicas, KEDA scales the
Deployment 0→1, and the request is answered once the new pod is Ready (issue 24; docs/gateway.md).

KEDA's HTTP add-on v0.15.0 (its interceptor and external scaler, built from the Go module) and KEDA's operator
v2.21.0 run against an embedded API server with the KEDA and add-on CRDs. The objects are the dev environment's
(its llama-3-8b 1.1.0 may scale to zero): the version's Deployment, Service and ServiceAccount, its
InterceptorRoute and its ScaledObject, whose last trigger is the `external-push` trigger on the add-on's scaler.
A request sent to the interceptor's proxy with the header the version's HTTPRoute adds on the interceptor backend
is counted and held (interceptor/proxy.go: routing, counting, then interceptor/middleware/endpoint_resolver.go
waits for a ready endpoint of the route's Service); the scaler reads the held count from the interceptor's admin
`/queue` (scaler/queue_pinger.go) and streams "active" to KEDA (scaler/handlers.go, StreamIsActive), which scales
the Deployment from 0 (keda pkg/scaling/executor/scale_scaledobjects.go, scaleFromZeroOrIdle). The pod is
scheduled on a node, made Ready, the EndpointSlice controller lists it, and the interceptor forwards the held
request to `<service>.<namespace>:<port>` (interceptor/middleware/routing.go, resolveUpstreamURL), where a
completion-answering stand-in listens on the pod's address.

A request held past its route's readiness timeout is answered 504 Gateway Timeout with the body "Gateway
Timeout": endpoint_resolver.go answers `http.StatusGatewayTimeout` when the wait's context expired (502 for any
other failure), written by interceptor/handler/static.go as `http.Error(w, StatusText(code), code)`. Issue 24
says 503; v0.15.0 answers 503 only from a route's cold-start placeholder (`spec.coldStart`, interceptor/middleware/
placeholder.go, default status `http.StatusServiceUnavailable`), which the stack's InterceptorRoutes do not
configure (components/autoscaling/scale_from_zero.py).

What differs from a cluster, and why:
- The Deployment is applied at 0 replicas: the stack leaves `replicas` unset (the API's default is 1) and KEDA
  takes it to 0 after the cooldown (900 s in dev). The test starts where that leaves it.
- No kubelet, no kube-proxy, no cluster DNS. The pod lands on a node the test adds once the pod is pending (the
  node Karpenter would provision; KWOK does not manage it), and the test gives the pod its address and Ready
  status, as a kubelet would once vLLM is up. In the interceptor's private /etc/hosts the Service's name is the
  pod's address (kube-proxy would lead the Service's address to that one pod), and KEDA's resolves the scaler's
  name (`EXTERNAL_SCALER`) to the scaler.
- The interceptor's proxy and admin, the scaler's gRPC and KEDA all listen on every interface at fixed ports
  (interceptor/main.go, scaler/main.go: `0.0.0.0:<port>`), and the pod's address must be one the API server takes
  in an EndpointSlice (not loopback). So they run in a network namespace of their own (tests/netns_bridge.py)
  whose loopback carries the pod's, the interceptor's and the scaler's addresses; the API server's port leads to
  the host's. The interceptor's admin port is 9091, not the chart's 9090: here it shares a namespace with the
  scaler, whose gRPC port 9090 is the stack's (`EXTERNAL_SCALER`). The admin Service the scaler reads is given
  the interceptor's address by an EndpointSlice of the test's.
- The add-on's operator does not run: the stack creates the InterceptorRoute and the ScaledObject itself, and the
  operator only turns HTTPScaledObjects (none here) into them. KEDA's metrics API server does not run either: the
  0→1 step is KEDA's operator's own (the HPA takes over from 1 replica). The ScaledObject's Prometheus triggers
  fail (no Prometheus); KEDA scales from zero when any trigger is active, errors or not (scale_scaledobjects.go,
  RequestScale).
- The short-timeout test uses a copy of the version's InterceptorRoute with a 3 s readiness timeout (the stack's
  is the version's cold start, 268 s) towards a copy of its Service that no pod backs.
- The add-on's Prometheus exporters are off (OTEL_PROM_EXPORTER_ENABLED, pkg/observability/config.go) and the
  interceptor stops without its 5 s shutdown delay and 30 s drain (interceptor/config/serving.go).
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from llmplane.components.autoscaling.scale_from_zero import (
    BACKEND_HEADER,
    EXTERNAL_SCALER,
    INTERCEPTOR_PORT,
    KEDA_NAMESPACE,
)
from llmplane.components.autoscaling.scale_from_zero import KEDA_HTTP_ADDON as ADDON_CHART
from llmplane.stacks.crd_sources import KEDA, crd_documents
from llmplane.stacks.crd_sources import KEDA_HTTP_ADDON as ADDON_CRDS
from llmplane.stacks.local.cluster_addons import keda_certs
from llmplane.stacks.local.embedded_cluster import GPU_TAINT_KEY, EmbeddedCluster
from llmplane.toolchain import gotools

from tests.built_tools import built_tool
from tests.gateway_objects import manifest, stream
from tests.planning import plan_of

NAMESPACE = "llmplane"
VERSION = "llama-3-8b-v1-1-0"
"""dev's llama-3-8b 1.1.0: its Deployment, Service, InterceptorRoute and ScaledObject share the name."""
NEVER_READY = f"{VERSION}-never-ready"
HOLD_S = 3
"""The readiness timeout of the short-timeout route copy."""
POD_ADDRESS = "10.244.200.10"
INTERCEPTOR_ADDRESS = "10.244.200.2"
SCALER_ADDRESS = "10.244.200.3"
ADMIN_PORT = 9091
ADMIN_SERVICE = "keda-add-ons-http-interceptor-admin"
INTERCEPTOR_DEPLOYMENT = "keda-add-ons-http-interceptor"
"""The chart's admin Service and Deployment of the interceptor, which the scaler is pointed at."""
NODE = "gpu-node-provisioned"
BRIDGE = Path(__file__).with_name("netns_bridge.py")
CLONE_NEWNET = 0x40000000  # <sched.h>
START_TIMEOUT_S = 60
SCALE_TIMEOUT_S = 60
ANSWER = " Paris."


# --- the stand-in for vLLM behind the pod's address ------------------------------------------------------------

@dataclass
class StandIn:
    """What the stand-in was sent: (path, the version header, the request body) per request."""

    received: list[tuple[str, str | None, dict]] = field(default_factory=list)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        received = self.received

        class Completions(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                received.append((self.path, self.headers.get(BACKEND_HEADER), body))
                if self.path != "/v1/completions":
                    self.send_error(404)
                    return
                answer = json.dumps({"id": "cmpl-stand-in", "object": "text_completion", "model": body["model"],
                                     "choices": [{"index": 0, "text": ANSWER, "finish_reason": "stop"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args) -> None:
                pass

        return Completions


# --- the private network namespace ------------------------------------------------------------------------------

def _enter(netns: str) -> Callable[[], None]:
    """A thread initializer: the thread joins the namespace (setns acts on the calling thread only)."""
    def enter() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        descriptor = os.open(netns, os.O_RDONLY)
        try:
            if libc.setns(descriptor, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns into the test's network namespace")
        finally:
            os.close(descriptor)
    return enter


def _private_network(cluster: EmbeddedCluster, folder: Path, api_port: int) -> str:
    """The bridge's namespace (tests/netns_bridge.py), with the pod's, interceptor's and scaler's addresses."""
    ready = folder / "netns"
    cluster.start_process("netns-bridge", [sys.executable, str(BRIDGE), str(ready), str(api_port)])
    deadline = time.monotonic() + 10
    while not ready.exists():
        if "netns-bridge" not in cluster.running() or time.monotonic() > deadline:
            pytest.fail(f"the network namespace bridge did not start:\n"
                        f"{(cluster.logs / 'netns-bridge.log').read_text()[-4000:]}")
        time.sleep(0.1)
    netns = ready.read_text()
    for address in (POD_ADDRESS, INTERCEPTOR_ADDRESS, SCALER_ADDRESS):
        subprocess.run(["nsenter", f"--net={netns}", "ip", "address", "add", f"{address}/32", "dev", "lo"],
                       check=True, capture_output=True, timeout=30)
    return netns


_PRIVATE_HOSTS = """set -e
mount -n --bind "$1" /etc/hosts
shift
exec "$@"
"""
"""Run a program with the test's /etc/hosts, seen by it alone."""


def _in_namespace(netns: str, hosts: Path, argv: list[str]) -> list[str]:
    return ["nsenter", f"--net={netns}", "unshare", "--mount", "--propagation", "private", "sh", "-c",
            _PRIVATE_HOSTS, "sh", str(hosts), *argv]


# --- the cluster ------------------------------------------------------------------------------------------------

def _planned() -> dict[str, dict]:
    """dev's objects of the version, by kind, as the provider would send them."""
    plan = plan_of("dev")
    found = {r.inputs["kind"]: manifest(r, {}) for r in plan.resources
             if r.type.startswith("kubernetes:") and r.inputs.get("metadata", {}).get("name") == VERSION
             and r.inputs["kind"] in ("Deployment", "Service", "ServiceAccount", "InterceptorRoute", "ScaledObject")}
    assert sorted(found) == ["Deployment", "InterceptorRoute", "ScaledObject", "Service", "ServiceAccount"]
    return found


def _objects(planned: dict[str, dict]) -> list[dict]:
    deployment = json.loads(json.dumps(planned["Deployment"]))
    deployment["spec"]["replicas"] = 0  # where KEDA leaves it after the cooldown (module docstring)
    never_ready = json.loads(json.dumps(planned["Service"]))
    never_ready["metadata"]["name"] = NEVER_READY
    never_ready["spec"]["selector"] = {"llmplane.dev/no-pod": "true"}
    short = json.loads(json.dumps(planned["InterceptorRoute"]))
    short["metadata"]["name"] = NEVER_READY
    short["spec"]["target"]["service"] = NEVER_READY
    short["spec"]["rules"][0]["headers"][0]["value"] = NEVER_READY
    short["spec"]["timeouts"]["readiness"] = f"{HOLD_S}s"
    admin = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": ADMIN_SERVICE, "namespace": KEDA_NAMESPACE},
             "spec": {"ports": [{"name": "http", "port": ADMIN_PORT}]}}
    admin_endpoint = {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{ADMIN_SERVICE}-test", "namespace": KEDA_NAMESPACE,
                     "labels": {"kubernetes.io/service-name": ADMIN_SERVICE,
                                "endpointslice.kubernetes.io/managed-by": "llmplane-test"}},
        "addressType": "IPv4", "ports": [{"name": "http", "protocol": "TCP", "port": ADMIN_PORT}],
        "endpoints": [{"addresses": [INTERCEPTOR_ADDRESS], "conditions": {"ready": True}}]}
    return [*({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
              for name in (NAMESPACE, KEDA_NAMESPACE)),
            planned["ServiceAccount"], planned["Service"], deployment, planned["InterceptorRoute"],
            planned["ScaledObject"], never_ready, short, admin, admin_endpoint]


@dataclass(frozen=True)
class Loop:
    cluster: EmbeddedCluster
    planned: dict[str, dict]
    stand_in: StandIn
    clients: ThreadPoolExecutor

    def replicas(self) -> int:
        deployment = json.loads(self.cluster.kubectl("get", "deployment", VERSION, "-n", NAMESPACE, "-o", "json"))
        return deployment["spec"].get("replicas", 0)

    def pods(self) -> list[dict]:
        selector = ",".join(f"{k}={v}" for k, v in
                            self.planned["Deployment"]["spec"]["selector"]["matchLabels"].items())
        return json.loads(self.cluster.kubectl("get", "pods", "-n", NAMESPACE, "-l", selector, "-o", "json"))["items"]

    def active_triggers(self) -> set[str]:
        scaled = json.loads(self.cluster.kubectl("get", "scaledobject", VERSION, "-n", NAMESPACE, "-o", "json"))
        return {name for name, activity in scaled.get("status", {}).get("triggersActivity", {}).items()
                if activity["isActive"]}

    def send(self, backend: str) -> Future:
        """A completion request to the interceptor's proxy, as the version's route sends it; answers (status,
        headers, body, seconds)."""
        return self.clients.submit(_post, backend)

    def logs(self) -> str:
        return "\n".join(f"--- {name}:\n{(self.cluster.logs / f'{name}.log').read_text()[-3000:]}"
                         for name in ("keda-http-interceptor", "keda-http-scaler", "keda-operator"))


def _post(backend: str) -> tuple[int, dict[str, str], bytes, float]:
    started = time.monotonic()
    connection = HTTPConnection(INTERCEPTOR_ADDRESS, INTERCEPTOR_PORT, timeout=120)
    body = json.dumps({"model": "llama-3-8b", "prompt": "The capital of France is", "max_tokens": 4})
    connection.request("POST", "/v1/completions", body=body,
                       headers={"Content-Type": "application/json", BACKEND_HEADER: backend})
    response = connection.getresponse()
    answer = (response.status, {k.lower(): v for k, v in response.getheaders()}, response.read(),
              time.monotonic() - started)
    connection.close()
    return answer


def _wait(what: str, check: Callable[[], object], timeout: float, loop: Loop) -> object:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s\n{loop.logs()}")
        time.sleep(0.3)


def _start_processes(cluster: EmbeddedCluster, netns: str, hosts: Path) -> None:
    """The interceptor, the scaler and KEDA's operator, in the namespace with the test's /etc/hosts."""
    scaler_host, _, scaler_port = EXTERNAL_SCALER.rpartition(":")
    hosts.write_text(f"127.0.0.1 localhost\n{POD_ADDRESS} {VERSION}.{NAMESPACE}\n{SCALER_ADDRESS} {scaler_host}\n")
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "OTEL_PROM_EXPORTER_ENABLED": "false"}
    interceptor = [str(built_tool("keda-http-interceptor"))]
    cluster.start_process("keda-http-interceptor", _in_namespace(netns, hosts, interceptor),
                          env={**env, "KEDA_HTTP_PROXY_PORT": str(INTERCEPTOR_PORT),
                               "KEDA_HTTP_ADMIN_PORT": str(ADMIN_PORT), "KEDA_HTTP_SHUTDOWN_DELAY": "0s",
                               "KEDA_HTTP_DRAIN_TIMEOUT": "1s"})
    cluster.start_process("keda-http-scaler", _in_namespace(netns, hosts, [str(built_tool("keda-http-scaler"))]),
                          env={**env, "KEDA_HTTP_SCALER_PORT": scaler_port,
                               "KEDA_HTTP_SCALER_TARGET_ADMIN_NAMESPACE": KEDA_NAMESPACE,
                               "KEDA_HTTP_SCALER_TARGET_ADMIN_SERVICE": ADMIN_SERVICE,
                               "KEDA_HTTP_SCALER_TARGET_ADMIN_DEPLOYMENT": INTERCEPTOR_DEPLOYMENT,
                               "KEDA_HTTP_SCALER_TARGET_ADMIN_PORT": str(ADMIN_PORT)})
    certs = keda_certs(cluster)
    # As stacks/local/cluster_addons.py starts it, its own ports on the namespace's loopback.
    cluster.start_process("keda-operator", _in_namespace(netns, hosts, [
        str(built_tool("keda")), "--leader-elect=false", "--enable-cert-rotation=false",
        "--enable-webhook-patching=false", "--enable-apiservice-patching=false",
        f"--cert-dir={certs}", f"--ca-dir={certs}", "--metrics-bind-address=127.0.0.1:18080",
        "--health-probe-bind-address=127.0.0.1:18081", "--metrics-service-bind-address=127.0.0.1:19666",
        "--zap-log-level=info"]),
        env={**env, "WATCH_NAMESPACE": "", "POD_NAMESPACE": KEDA_NAMESPACE,
             "KEDA_CLUSTER_OBJECT_NAMESPACE": KEDA_NAMESPACE})


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    if os.geteuid() != 0:
        pytest.fail("the scale-from-zero test needs root: the add-on runs in a private network namespace "
                    "(tests/netns_bridge.py) with a private /etc/hosts (`unshare --mount`)")
    for name in ("keda-http-interceptor", "keda-http-scaler", "keda"):
        built_tool(name)
    folder = tmp_path_factory.mktemp("scale-from-zero")
    planned = _planned()
    cluster = EmbeddedCluster(folder / "cluster")
    cluster.up([], say=lambda _message: None)
    stand_in, server, clients = StandIn(), None, None
    try:
        crds = [*crd_documents(KEDA), *crd_documents(ADDON_CRDS)]
        cluster.kubectl("apply", "--server-side", "-f", "-", input_text=stream(crds))
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                        *[f"crd/{d['metadata']['name']}" for d in crds])
        cluster.kubectl("apply", "-f", "-", input_text=stream(_objects(planned)))
        netns = _private_network(cluster, folder, cluster.read_ports()["kube-apiserver"])
        clients = ThreadPoolExecutor(max_workers=4, thread_name_prefix="in-netns", initializer=_enter(netns))
        address = (POD_ADDRESS, planned["InterceptorRoute"]["spec"]["target"]["port"])
        server = clients.submit(ThreadingHTTPServer, address, stand_in.handler()).result()
        threading.Thread(target=server.serve_forever, daemon=True).start()
        _start_processes(cluster, netns, folder / "hosts")
        started = Loop(cluster, planned, stand_in, clients)
        _wait("KEDA's HPA for the version", lambda: cluster.kubectl(
            "get", "hpa", f"keda-hpa-{VERSION}", "-n", NAMESPACE, "--ignore-not-found", "-o", "name").strip(),
            START_TIMEOUT_S, started)
        yield started
    finally:
        if server is not None:
            server.shutdown()
        if clients is not None:
            clients.shutdown(wait=False, cancel_futures=True)
        cluster.down(say=lambda _message: None)


def _ready(address: str) -> dict:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"status": {"phase": "Running", "podIP": address, "podIPs": [{"ip": address}],
                       "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                                      {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                                      {"type": "Ready", "status": "True", "lastTransitionTime": now}]}}


def _node(gpu_type: str) -> dict:
    """The GPU node a provisioner adds for the pending pod (not managed by KWOK: the test runs its pod)."""
    capacity = {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "200Gi", "nvidia.com/gpu": "1"}
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE, "llmplane.dev/gpu-type": gpu_type}},
            "spec": {"taints": [{"key": GPU_TAINT_KEY, "value": "present", "effect": "NoSchedule"}]},
            "status": {"capacity": capacity, "allocatable": capacity,
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "lastHeartbeatTime": now, "lastTransitionTime": now}]}}


# --- the tests --------------------------------------------------------------------------------------------------

def test_the_tools_are_the_charts_version():
    assert gotools.KEDA_HTTP_ADDON_VERSION == ADDON_CHART.version == "0.15.0"


def test_a_held_request_is_answered_once_the_deployment_went_0_to_1_and_the_pod_is_ready(loop: Loop):
    assert (loop.replicas(), loop.pods()) == (0, [])
    held = loop.send(VERSION)
    _wait("KEDA scaling the Deployment from zero", lambda: loop.replicas() >= 1, SCALE_TIMEOUT_S, loop)
    [pod] = _wait("the version's pod", loop.pods, SCALE_TIMEOUT_S, loop)
    assert not held.done(), held.result()
    # What woke it is the held request: the add-on's concurrency metric of the route, the third trigger (the
    # Prometheus triggers reach no Prometheus here).
    _wait("the held-requests trigger active in the ScaledObject's status",
          lambda: loop.active_triggers() == {"s2-http_llama-3-8b-v1-1-0_concurrency"}, SCALE_TIMEOUT_S, loop)
    # No node has a GPU: the pod waits for the one a provisioner adds.
    [term] = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"]
    [gpu_type] = term["matchExpressions"][0]["values"]
    loop.cluster.kubectl("create", "-f", "-", input_text=json.dumps(_node(gpu_type)))
    _wait("the pod's scheduling", lambda: all(p["spec"].get("nodeName") == NODE for p in loop.pods()),
          SCALE_TIMEOUT_S, loop)
    time.sleep(1)
    assert not held.done(), held.result()
    assert loop.stand_in.received == []
    loop.cluster.kubectl("patch", "pod", pod["metadata"]["name"], "-n", NAMESPACE, "--subresource=status",
                         "--type=merge", "-p", json.dumps(_ready(POD_ADDRESS)))
    status, headers, body, _seconds = held.result(timeout=30)
    assert status == 200, body
    assert json.loads(body)["choices"][0]["text"] == ANSWER
    assert headers["x-keda-http-cold-start"] == "true"
    assert [(path, backend) for path, backend, _body in loop.stand_in.received] == [("/v1/completions", VERSION)]
    assert loop.replicas() == 1


def test_a_request_held_past_the_readiness_timeout_gets_504_gateway_timeout(loop: Loop):
    status, _headers, body, seconds = loop.send(NEVER_READY).result(timeout=60)
    assert (status, body) == (504, b"Gateway Timeout\n")
    assert HOLD_S <= seconds < HOLD_S + 5
    assert [backend for _path, backend, _body in loop.stand_in.received if backend == NEVER_READY] == []
