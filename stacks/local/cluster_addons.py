"""What runs beside the embedded cluster so its autoscalers really scale and its routes answer: metrics, KEDA,
and a stand-in for the Gateway's proxy.

The fake GPU nodes run no vLLM, so a vLLM metrics simulator per served model
stands in for the model's pods (same metric names and `model_name` labels),
Debian's Prometheus scrapes them at the address the environment names
(`observability.prometheusUrl`), and KEDA's operator and metrics API server,
built from KEDA's Go module, run as processes against the cluster: a
ScaledObject becomes an HPA, the HPA reads KEDA's external metrics through
the API aggregation layer, and the Deployment's replicas follow the load.
The local gateway (toolchain/local_gateway.py) stands where the Gateway's
Envoy would, so a request to the stack's routes gets a completion from the
simulator.

KEDA needs its CRDs, which the stack installs; until they exist KEDA is not
started, and `llmplane cluster up` after the update (which `make up` runs)
starts it.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from llmplane.monitoring import rules
from llmplane.toolchain import gotools
from llmplane.toolchain.localstack import LOOPBACK, free_port, http_ok, prometheus_argv, simulator_argv

from . import pki
from .embedded_cluster import ClusterError, EmbeddedCluster

ROOT = Path(__file__).resolve().parents[2]
KEDA_NAMESPACE = "keda"
KEDA_METRICS_SERVICE = "keda-metrics-apiserver"
SCALED_OBJECT_CRD = "scaledobjects.keda.sh"
READY_TIMEOUT_S = 90
GATEWAY = "gateway"
"""The local data plane's name among the cluster's processes and ports."""


@dataclass(frozen=True)
class SimulatedModel:
    """A model whose pods the simulator stands in for: its name and two served versions."""

    model: str
    baseline: str
    canary: str


@dataclass(frozen=True)
class Addons:
    """What to run: where Prometheus listens, and which models to simulate."""

    prometheus_port: int
    models: tuple[SimulatedModel, ...]
    keda: bool = True


def _simulator_ports(cluster: EmbeddedCluster, addons: Addons) -> dict[str, int]:
    state = cluster.read_ports()
    return {m.model: state.get(f"simulator-{m.model}") or free_port() for m in addons.models}


def start(cluster: EmbeddedCluster, addons: Addons, say=print) -> None:
    """Start what is not running: simulators, Prometheus, and KEDA once its CRDs exist."""
    running = cluster.running()
    ports = _simulator_ports(cluster, addons)
    work = cluster.dir / "addons"
    work.mkdir(exist_ok=True)
    for model in addons.models:
        name = f"simulator-{model.model}"
        cluster.record_port(name, ports[model.model])
        if name not in running:
            cluster.start_process(name, simulator_argv(ports[model.model], "normal", model.model,
                                                       cluster.logs / f"{name}-requests.log",
                                                       (model.baseline, model.canary)), cwd=ROOT)
    if "prometheus" not in running:
        sd_urls = [f"http://{LOOPBACK}:{ports[m.model]}/targets" for m in addons.models]
        argv = prometheus_argv(work, sd_urls, rules.AlertParams(), "2s", addons.prometheus_port)
        cluster.start_process("prometheus", argv)
        _wait(f"http://{LOOPBACK}:{addons.prometheus_port}/-/ready", "prometheus", cluster)
    say(f"cluster: Prometheus on {LOOPBACK}:{addons.prometheus_port} scraping a vLLM metrics simulator for "
        f"{', '.join(m.model for m in addons.models) or 'no model'}")
    _start_gateway(cluster, ports, running, say)
    if not addons.keda:
        return
    if not cluster.kubectl("get", "crd", SCALED_OBJECT_CRD, "--ignore-not-found", "-o", "name").strip():
        say("cluster: KEDA starts once the stack has installed its CRDs (`make up` runs `llmplane cluster up` "
            "again after the update)")
        return
    if {"keda-operator", "keda-metrics-apiserver"} <= set(running):
        say("cluster: KEDA running")
        return
    _start_keda(cluster, say)


def _start_gateway(cluster: EmbeddedCluster, simulators: dict[str, int], running: dict[str, int], say) -> None:
    """The stand-in for the Gateway's Envoy (toolchain/local_gateway.py), on a port kept across restarts."""
    port = cluster.read_ports().get(GATEWAY) or free_port()
    cluster.record_port(GATEWAY, port)
    if GATEWAY not in running:
        kubectl = gotools.build(gotools.TOOLS["kubectl"])
        cluster.start_process(GATEWAY, [
            sys.executable, "-m", "llmplane.toolchain.local_gateway", f"--kubeconfig={cluster.kubeconfig}",
            f"--kubectl={kubectl}", f"--port={port}",
            *[f"--simulator={model}={sim_port}" for model, sim_port in simulators.items()]], cwd=ROOT)
    say(f"cluster: the Gateway's routes answer on http://{LOOPBACK}:{port} (toolchain/local_gateway.py)")


def keda_certs(cluster: EmbeddedCluster) -> Path:
    """The folder of KEDA's mutual-TLS gRPC pair: one pair for both ends (operator serves, metrics server
    connects), with tls.crt, tls.key and ca.crt as KEDA reads them from its --cert-dir."""
    certs = cluster.pki / "keda"
    certs.mkdir(exist_ok=True)
    ca = pki.ensure_ca(cluster.pki, "ca")
    pki.ensure_leaf(certs, "tls", ca, "keda-operator", client=True,
                    server_names=("127.0.0.1", "localhost", f"keda-operator.{KEDA_NAMESPACE}.svc"))
    (certs / "ca.crt").write_bytes(ca.cert.read_bytes())
    return certs


def _start_keda(cluster: EmbeddedCluster, say) -> None:
    certs = keda_certs(cluster)
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "WATCH_NAMESPACE": "",
           "POD_NAMESPACE": KEDA_NAMESPACE, "KEDA_CLUSTER_OBJECT_NAMESPACE": KEDA_NAMESPACE}
    grpc_port = cluster.read_ports().get("keda-grpc") or free_port()
    api_port = cluster.read_ports().get("keda-metrics-apiserver") or free_port()
    for name, port in (("keda-grpc", grpc_port), ("keda-metrics-apiserver", api_port)):
        cluster.record_port(name, port)
    cluster.kubectl("apply", "-f", "-", input_text=json.dumps(_registration(api_port)))
    binaries = gotools.build_many(["keda", "keda-adapter"])
    running = cluster.running()
    if "keda-operator" not in running:
        cluster.start_process("keda-operator", [
            str(binaries["keda"]), "--leader-elect=false", "--enable-cert-rotation=false",
            "--enable-webhook-patching=false", "--enable-apiservice-patching=false",
            f"--cert-dir={certs}", f"--ca-dir={certs}",
            f"--metrics-bind-address={LOOPBACK}:{free_port()}",
            f"--health-probe-bind-address={LOOPBACK}:{free_port()}",
            f"--metrics-service-bind-address={LOOPBACK}:{grpc_port}",
            "--zap-log-level=info",
        ], env=env)
    if "keda-metrics-apiserver" not in running:
        cluster.start_process("keda-metrics-apiserver", [
            str(binaries["keda-adapter"]), f"--secure-port={api_port}", f"--bind-address={LOOPBACK}",
            f"--cert-dir={certs}", f"--metrics-service-address={LOOPBACK}:{grpc_port}",
            "--metrics-service-grpc-authority=localhost",
            f"--authentication-kubeconfig={cluster.kubeconfig}", f"--authorization-kubeconfig={cluster.kubeconfig}",
            f"--lister-kubeconfig={cluster.kubeconfig}", f"--kubeconfig={cluster.kubeconfig}",
            f"--port={free_port()}",
        ], env=env)
    _wait_external_metrics(cluster)
    say("cluster: KEDA operator and metrics API server running (external.metrics.k8s.io available)")


def _registration(api_port: int) -> dict:
    """The keda namespace, and the external metrics API served by the metrics server on the loopback: an
    ExternalName Service to localhost, which the aggregation layer resolves to https://localhost:<port>."""
    return {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KEDA_NAMESPACE}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": KEDA_METRICS_SERVICE, "namespace": KEDA_NAMESPACE},
         "spec": {"type": "ExternalName", "externalName": "localhost",
                  "ports": [{"name": "https", "port": api_port, "targetPort": api_port}]}},
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
         "metadata": {"name": "v1beta1.external.metrics.k8s.io"},
         "spec": {"group": "external.metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100,
                  "versionPriority": 100, "insecureSkipTLSVerify": True,
                  "service": {"name": KEDA_METRICS_SERVICE, "namespace": KEDA_NAMESPACE, "port": api_port}}},
    ]}


def _wait(url: str, what: str, cluster: EmbeddedCluster) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if http_ok(url):
            return
        time.sleep(0.3)
    raise ClusterError(f"{what} was not ready within {READY_TIMEOUT_S} s; see {cluster.logs}/{what}.log")


def _wait_external_metrics(cluster: EmbeddedCluster) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        status = cluster.kubectl("get", "apiservice", "v1beta1.external.metrics.k8s.io", "-o",
                                 "jsonpath={.status.conditions[?(@.type=='Available')].status}", check=False)
        if status.strip() == "True":
            return
        time.sleep(1)
    raise ClusterError(f"KEDA's external metrics API did not become available within {READY_TIMEOUT_S} s; see "
                       f"{cluster.logs}/keda-metrics-apiserver.log and keda-operator.log")


def set_load(cluster: EmbeddedCluster, model: str, mode: str) -> None:
    """Switch a simulated model's traffic, e.g. `overload` then `idle`."""
    port = cluster.read_ports()[f"simulator-{model}"]
    request = urllib.request.Request(f"http://{LOOPBACK}:{port}/mode", data=mode.encode(), method="PUT")
    with urllib.request.urlopen(request, timeout=10):
        pass


def prometheus_value(port: int, query: str) -> float | None:
    url = f"http://{LOOPBACK}:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=10) as response:
        result = json.load(response)["data"]["result"]
    return float(result[0]["value"][1]) if result else None
