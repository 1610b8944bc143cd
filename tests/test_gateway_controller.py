"""Envoy Gateway's own controller reconciles the gateway objects a prod cluster gets (docs/gateway.md).

Envoy Gateway v1.8.1, built from its Go module, runs against an embedded API server with the Gateway API, Envoy
Gateway and InferencePool CRDs, with the chart's controller configuration (`chart_values`), and prod's aws-use1
gateway objects are applied for real. The test reads back what the controller wrote: the statuses of the
GatewayClass, the Gateway, every HTTPRoute and every policy, the proxies it deployed, and the xDS it publishes for
the Gateway, read over ADS by toolchain/go/xds-probe the way the Gateway's Envoy would.

What differs from a cluster, and why:
- The provider is Kubernetes, as in the chart: v1.8.1's Custom provider reads resources from files only
  (api/v1alpha1/envoygateway_types.go, `ResourceProviderType` Enum=File; internal/provider/runner/runner.go) and
  writes no status to an API server. So the controller also deploys the proxies (a Deployment and a LoadBalancer
  Service in the Gateway's namespace, `deploy.type: GatewayNamespace`); their pods stay Pending (no node takes
  them) and the Service gets no address. Its rate limiter is not deployed: Envoy Gateway looks for its own
  Service `envoy-gateway`, which the chart creates; nothing here reads the limiter.
- Envoy AI Gateway, the extension server Envoy Gateway hands InferencePool backends to, cannot run here (no module
  on the proxy, docs/gateway.md). The extension manager keeps the chart's resources and hooks but points at a gRPC
  server with no services (every hook answers UNIMPLEMENTED) with `failOpen: true`, so Envoy Gateway publishes
  its own translation: the pools' clusters are what AI Gateway would rewrite. An address nothing listens on would
  not do: the hooks are called with `waitForReady` and no deadline (internal/extension/registry/
  extension_manager.go, xds_hook.go), so the xDS translation would wait forever.
- Leader election and the proxy topology webhook are off (one controller, no admission webhooks here); the admin
  console listens on 127.0.0.1 and Prometheus metrics (fixed at 0.0.0.0:19001, internal/metrics/register.go)
  are off.
- The controller reads its xDS certificate from /certs and, with proxies in their Gateway's namespace, its API
  identity for token reviews from the in-cluster service-account files (internal/xds/runner/runner.go,
  internal/xds/server/kubejwt/tokenreview.go); neither path can be configured. It runs in a private mount
  namespace where /certs is the `envoy-gateway` Secret that `envoy-gateway certgen` created (as the chart's
  certgen job does) and /run and /var/lib are empty tmpfs, so nothing is written outside the test's folder but
  an empty /certs mount point.
- Its xDS (18000), rate-limit xDS (18001), Wasm cache (18002), health (8081) and controller-runtime metrics (8080)
  servers listen on every interface at fixed ports (same files, internal/provider/kubernetes/kubernetes.go, which
  passes the manager no metrics options, internal/globalratelimit/runner/runner.go, internal/wasm/httpserver.go).
  So it runs in a network namespace of its own with a loopback only (tests/netns_bridge.py), where the API
  server's and the extension server's ports lead to the same ports on the host's 127.0.0.1; the xDS probe joins
  that namespace to read 127.0.0.1:18000. None of its servers is on the host.
- The BackendTrafficPolicy CRD gets format int64 for `limit.requests` (tests/gateway_objects.py: Kubernetes 1.36+
  refuses v1.8.1's int32 with a uint32 bound; the clusters run 1.33).
"""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import yaml
from llmplane.components.gateway.envoy_gateway import NAMESPACE as CONTROLLER_NAMESPACE
from llmplane.components.gateway.envoy_gateway import chart_values
from llmplane.components.gateway.tenant_budgets import API_KEY_HEADER, CLIENT_HEADER, USAGE_METADATA
from llmplane.components.gateway.tracing import OTLP_GRPC_PORT
from llmplane.components.gateway.tracing import SERVICE as TRACING_SERVICE
from llmplane.components.networking.regional_gateway import TLS_SECRET
from llmplane.components.serving.model_rollout import SERVED_BY_HEADER, VERSION_HEADER
from llmplane.components.serving.vllm_service import MONITORING_NAMESPACE
from llmplane.stacks.local import pki
from llmplane.stacks.local.embedded_cluster import EmbeddedCluster
from llmplane.toolchain.localstack import free_port

from tests.built_tools import built_tool
from tests.gateway_objects import NAMESPACES, gateway_cluster, gateway_objects, manifest
from tests.test_gateway_version_split import run_source, users

SAME_NAMESPACES = {name: name for name in NAMESPACES}
"""Prod's own namespaces: the Gateway admits routes by the label of the namespace `llmplane`."""
GATEWAY = ("llmplane-gateway", "llmplane")
BRIDGE = Path(__file__).with_name("netns_bridge.py")
BRIDGE_TIMEOUT_S = 10
STATUS_TIMEOUT_S = 120
XDS_TIMEOUT_S = 60
POLICY_KINDS = ("securitypolicy", "backendtrafficpolicy", "clienttrafficpolicy", "envoyextensionpolicy")
XDS_AUDIENCE = f"envoy-gateway.{CONTROLLER_NAMESPACE}.svc.cluster.local"
"""The audience the xDS server asks of a proxy's token and the name on its certificate (kubejwt, certgen)."""


def _private_network(cluster: EmbeddedCluster, folder: Path, ports: list[int]) -> str:
    """Start the bridge whose network namespace leads the ports to the host's loopback (tests/netns_bridge.py),
    stopped with the cluster; returns the path naming the namespace once the bridge listens in it."""
    ready = folder / "netns"
    cluster.start_process("netns-bridge", [sys.executable, str(BRIDGE), str(ready), *map(str, ports)])
    deadline = time.monotonic() + BRIDGE_TIMEOUT_S
    while not ready.exists():
        if "netns-bridge" not in cluster.running() or time.monotonic() > deadline:
            pytest.fail(f"the network namespace bridge did not start:\n"
                        f"{(cluster.logs / 'netns-bridge.log').read_text()[-4000:]}")
        time.sleep(0.1)
    return ready.read_text()


def controller_config(extension_port: int, admin_port: int) -> dict:
    """The chart's EnvoyGateway configuration, with the changes this machine needs (module docstring)."""
    config = copy.deepcopy(chart_values("ratelimit-valkey.envoy-gateway-system.svc.cluster.local:6379")
                           ["config"]["envoyGateway"])
    config["provider"]["kubernetes"].update(
        {"leaderElection": {"disable": True}, "proxyTopologyInjector": {"disabled": True}})
    config["extensionManager"].update(
        {"service": {"ip": {"address": "127.0.0.1", "port": extension_port}}, "failOpen": True})
    config["admin"] = {"address": {"host": "127.0.0.1", "port": admin_port}}
    config["telemetry"] = {"metrics": {"prometheus": {"disable": True}}}
    return {"apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "EnvoyGateway", **config}


_PRIVATE_MOUNTS = """set -e
mkdir -p /certs
mount -n --bind "$1" /certs
mount -n -t tmpfs tmpfs /run
mount -n -t tmpfs tmpfs /var/lib
mkdir -p /run/secrets/kubernetes.io/serviceaccount
mount -n --bind "$2" /run/secrets/kubernetes.io/serviceaccount
shift 2
exec "$@"
"""
"""Run the controller with its fixed paths bound to the test's files, seen by it alone."""


@dataclass(frozen=True)
class Controller:
    cluster: EmbeddedCluster
    objects: list[dict]
    certs: Path
    folder: Path
    log: Path
    netns: str

    def of_kind(self, kind: str) -> list[dict]:
        return [o for o in self.objects if o["kind"] == kind]


def _in_cluster_identity(cluster: EmbeddedCluster, folder: Path) -> Path:
    """The service-account files the controller's token reviews use: its own account, allowed to review tokens."""
    folder.mkdir()
    cluster.kubectl("create", "serviceaccount", "envoy-gateway", "-n", CONTROLLER_NAMESPACE)
    cluster.kubectl("create", "clusterrolebinding", "envoy-gateway-token-review", "--clusterrole",
                    "system:auth-delegator", f"--serviceaccount={CONTROLLER_NAMESPACE}:envoy-gateway")
    (folder / "token").write_text(cluster.kubectl("create", "token", "envoy-gateway", "-n", CONTROLLER_NAMESPACE,
                                                  "--duration=2h").strip())
    (folder / "ca.crt").write_bytes((cluster.pki / "ca.crt").read_bytes())
    (folder / "namespace").write_text(CONTROLLER_NAMESPACE)
    return folder


def _control_plane_certs(cluster: EmbeddedCluster, binary: Path, env: dict[str, str], folder: Path) -> Path:
    """The certificates `envoy-gateway certgen` puts in Secrets (the chart's certgen job), and the controller's own
    Secret as the files it mounts at /certs."""
    subprocess.run([str(binary), "certgen", "--disable-topology-injector"], env=env, check=True,
                   capture_output=True, timeout=60)
    secret = json.loads(cluster.kubectl("get", "secret", "envoy-gateway", "-n", CONTROLLER_NAMESPACE, "-o", "json"))
    folder.mkdir()
    for name, encoded in secret["data"].items():
        (folder / name).write_bytes(base64.b64decode(encoded))
    return folder


def _objects() -> list[dict]:
    """Prod's gateway objects, the model Services, the shadow comparator's Service the routes mirror to, and a
    stand-in for the Jaeger
    chart's Service (a Helm release, so not in the plan) that the EnvoyProxy traces to, each with one ready endpoint
    standing for its pods: Envoy Gateway refuses the Gateway when the tracing backend has no ready endpoint
    (internal/gatewayapi/listener.go, processProxyObservability) and drops a mirror to a Service without one."""
    services = [manifest(r, SAME_NAMESPACES)
                for r in gateway_objects(("llmplane:serving:VllmService", "llmplane:serving:ShadowComparator"))
                if r.inputs["kind"] == "Service"]
    jaeger = {"apiVersion": "v1", "kind": "Service",
              "metadata": {"name": TRACING_SERVICE, "namespace": MONITORING_NAMESPACE},
              "spec": {"ports": [{"name": "otlp-grpc", "port": OTLP_GRPC_PORT}]}}
    endpoints = [_ready_endpoint(service, f"10.244.200.{n}") for n, service in enumerate([*services, jaeger], 1)]
    return [manifest(r, SAME_NAMESPACES) for r in gateway_objects()] + services + [jaeger] + endpoints


def _ready_endpoint(service: dict, address: str) -> dict:
    """An EndpointSlice of the Service with one ready address, beside the slices the controller manager keeps."""
    ports = [{"name": port.get("name", ""), "protocol": "TCP",
              "port": port["targetPort"] if isinstance(port.get("targetPort"), int) else port["port"]}
             for port in service["spec"]["ports"]]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service['metadata']['name']}-ready", "namespace": service["metadata"]["namespace"],
                         "labels": {"kubernetes.io/service-name": service["metadata"]["name"],
                                    "endpointslice.kubernetes.io/managed-by": "llmplane-test"}},
            "addressType": "IPv4", "ports": ports,
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}]}


def _tls_secret(cluster: EmbeddedCluster, folder: Path, hostnames: list[str]) -> None:
    """The Gateway's certificate, which cert-manager issues in a cluster (its CRDs are not installed here)."""
    folder.mkdir()
    ca = pki.ensure_ca(folder, "gateway-ca")
    pair = pki.ensure_leaf(folder, TLS_SECRET, ca, hostnames[0], server_names=tuple(hostnames))
    cluster.kubectl("create", "secret", "tls", TLS_SECRET, "-n", GATEWAY[0], f"--cert={pair.cert}",
                    f"--key={pair.key}")


@pytest.fixture(scope="module")
def controller(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Controller]:
    if os.geteuid() != 0:
        pytest.fail("the controller test needs root: Envoy Gateway's fixed paths (/certs, the service-account "
                    "files) are bound in a private mount namespace (`unshare --mount`) and its fixed ports are "
                    "in a private network namespace (tests/netns_bridge.py)")
    binary = built_tool("envoy-gateway")
    built_tool("xds-probe")
    folder = tmp_path_factory.mktemp("envoy-gateway")
    stub = grpc.server(ThreadPoolExecutor(max_workers=2))
    extension_port = stub.add_insecure_port("127.0.0.1:0")
    stub.start()
    objects = _objects()
    [gateway] = [o for o in objects if o["kind"] == "Gateway"]
    with gateway_cluster(folder / "cluster", SAME_NAMESPACES) as cluster:
        api_port = cluster.read_ports()["kube-apiserver"]
        env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "ENVOY_GATEWAY_NAMESPACE": CONTROLLER_NAMESPACE,
               "KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(api_port)}
        certs = _control_plane_certs(cluster, binary, env, folder / "certs")
        identity = _in_cluster_identity(cluster, folder / "serviceaccount")
        config = folder / "envoy-gateway.yaml"
        config.write_text(yaml.safe_dump(controller_config(extension_port, free_port()), sort_keys=False))
        netns = _private_network(cluster, folder, [api_port, extension_port])
        cluster.start_process("envoy-gateway", [
            "nsenter", f"--net={netns}", "unshare", "--mount", "--propagation", "private", "sh", "-c",
            _PRIVATE_MOUNTS, "sh", str(certs), str(identity), str(binary), "server", "--config-path", str(config)],
            env=env)
        _tls_secret(cluster, folder / "gateway-tls", [item["hostname"] for item in gateway["spec"]["listeners"]])
        cluster.kubectl("apply", "--server-side", "-f", "-", input_text=yaml.safe_dump_all(objects))
        try:
            yield Controller(cluster, objects, certs, folder, cluster.logs / "envoy-gateway.log", netns)
        finally:
            stub.stop(grace=None)


def _conditions(entry: dict) -> dict[str, dict]:
    return {c["type"]: c for c in entry.get("conditions", [])}


def _statuses(cluster: EmbeddedCluster) -> dict[str, list[dict]]:
    kinds = ("gatewayclass", "gateway", "httproute", *POLICY_KINDS)
    return {kind: json.loads(cluster.kubectl("get", kind, "-A", "-o", "json"))["items"] for kind in kinds}


def _complete(statuses: dict[str, list[dict]]) -> bool:
    """Whether the controller has written every status the test reads."""
    [gateway_class], [gateway] = statuses["gatewayclass"], statuses["gateway"]
    return ("Accepted" in _conditions(gateway_class.get("status", {}))
            and {"Accepted", "Programmed"} <= set(_conditions(gateway.get("status", {})))
            and all(route.get("status", {}).get("parents") for route in statuses["httproute"])
            and all(policy.get("status", {}).get("ancestors")
                    for kind in POLICY_KINDS for policy in statuses[kind]))


@pytest.fixture(scope="module")
def statuses(controller: Controller) -> dict[str, list[dict]]:
    deadline = time.monotonic() + STATUS_TIMEOUT_S
    while True:
        found = _statuses(controller.cluster)
        if _complete(found):
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"Envoy Gateway wrote no complete status in {STATUS_TIMEOUT_S} s: "
                        f"{json.dumps({k: [i.get('status') for i in v] for k, v in found.items()})[:4000]}\n"
                        f"its log ends:\n{controller.log.read_text()[-4000:]}")
        time.sleep(2)


def test_the_gateway_class_is_accepted(statuses):
    [gateway_class] = statuses["gatewayclass"]
    assert _conditions(gateway_class["status"])["Accepted"]["status"] == "True", gateway_class["status"]


def test_the_gateway_is_accepted_and_waits_for_an_address(statuses):
    [gateway] = statuses["gateway"]
    conditions = _conditions(gateway["status"])
    assert conditions["Accepted"]["status"] == "True", conditions
    # Programmed needs an address on the proxies' LoadBalancer Service, which only a cloud's load-balancer
    # controller assigns (internal/gatewayapi/status/gateway.go, updateGatewayProgrammedCondition).
    assert (conditions["Programmed"]["status"], conditions["Programmed"]["reason"]) == ("False", "AddressNotAssigned")
    for listener in gateway["status"]["listeners"]:
        listener_conditions = _conditions(listener)
        assert {kind: listener_conditions[kind]["status"] for kind in ("Accepted", "ResolvedRefs", "Programmed")} \
            == {"Accepted": "True", "ResolvedRefs": "True", "Programmed": "True"}, listener
        assert listener["attachedRoutes"] == len(statuses["httproute"])


def test_every_route_is_accepted_with_its_references_resolved(statuses):
    routes = statuses["httproute"]
    assert {r["metadata"]["name"] for r in routes} == {"llama-3-8b", "llama-3-70b"}
    for route in routes:
        [parent] = route["status"]["parents"]
        assert (parent["parentRef"]["namespace"], parent["parentRef"]["name"]) == GATEWAY
        conditions = _conditions(parent)
        assert {"Accepted", "ResolvedRefs"} <= set(conditions), conditions
        # Every condition holds, BackendsAvailable included where Envoy Gateway writes it (mirrors to Services).
        assert {kind: c["status"] for kind, c in conditions.items() if c["status"] != "True"} == {}, \
            (route["metadata"]["name"], conditions)


def test_every_policy_is_accepted_and_none_is_overridden(statuses):
    policies = [(kind, p) for kind in POLICY_KINDS for p in statuses[kind]]
    assert sorted((kind, p["metadata"]["name"]) for kind, p in policies) == [
        ("backendtrafficpolicy", "tenant-budgets"), ("clienttrafficpolicy", "request-buffer"),
        ("envoyextensionpolicy", "token-usage"), ("securitypolicy", "llama-3-70b-tenants"),
        ("securitypolicy", "llama-3-8b-tenants")]
    for kind, policy in policies:
        for ancestor in policy["status"]["ancestors"]:
            conditions = _conditions(ancestor)
            assert conditions["Accepted"]["status"] == "True", (kind, policy["metadata"]["name"], conditions)
            assert conditions.get("Overridden", {}).get("status") != "True", (kind, policy["metadata"]["name"])


def test_the_proxies_run_in_the_gateway_namespace_as_the_envoy_proxy_asks(controller, statuses):
    namespace, name = GATEWAY
    [proxy] = controller.of_kind("EnvoyProxy")
    wanted = proxy["spec"]["provider"]["kubernetes"]
    deployment = json.loads(controller.cluster.kubectl("get", "deployment", name, "-n", namespace, "-o", "json"))
    service = json.loads(controller.cluster.kubectl("get", "service", name, "-n", namespace, "-o", "json"))
    assert deployment["spec"]["replicas"] == wanted["envoyDeployment"]["replicas"]
    assert service["spec"]["type"] == wanted["envoyService"]["type"] == "LoadBalancer"
    assert wanted["envoyService"]["annotations"].items() <= service["metadata"]["annotations"].items()


# --- what the Gateway's Envoy would be sent ----------------------------------------------------------------------

def _proxy_token(controller: Controller) -> tuple[str, Path]:
    """A proxy pod's name and a token of its service account bound to it, as its Envoy presents (Envoy Gateway's
    xDS server checks the token's pod against the node id, internal/xds/server/kubejwt/tokenreview.go)."""
    namespace, name = GATEWAY
    pods = json.loads(controller.cluster.kubectl(
        "get", "pods", "-n", namespace, "-l", f"gateway.envoyproxy.io/owning-gateway-name={name}", "-o", "json"))
    pod = pods["items"][0]
    token = controller.folder / "proxy-token"
    token.write_text(controller.cluster.kubectl(
        "create", "token", pod["spec"]["serviceAccountName"], "-n", namespace, f"--audience={XDS_AUDIENCE}",
        "--bound-object-kind=Pod", f"--bound-object-name={pod['metadata']['name']}", "--duration=10m"))
    return pod["metadata"]["name"], token


def _read_xds(controller: Controller, pod: str, token: Path) -> dict[str, list[dict]]:
    """The xDS as the controller serves it on its namespace's loopback, read from inside that namespace."""
    done = subprocess.run(["nsenter", f"--net={controller.netns}", str(built_tool("xds-probe")),
                           "-addr", "127.0.0.1:18000", "-server-name", XDS_AUDIENCE,
                           "-ca", str(controller.certs / "ca.crt"), "-token-file", str(token), "-node-id", pod,
                           "-node-cluster", "/".join(GATEWAY), "-timeout", "20s"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _route_names(controller: Controller) -> set[str]:
    """The name prefix Envoy Gateway gives each HTTPRoute rule's route (httproute/<ns>/<name>/rule/<i>/match/0/)."""
    return {f"httproute/{r['metadata']['namespace']}/{r['metadata']['name']}/rule/{i}/match/0/"
            for r in controller.of_kind("HTTPRoute") for i in range(len(r["spec"]["rules"]))}


@pytest.fixture(scope="module")
def xds(controller: Controller, statuses) -> dict[str, list[dict]]:
    """Listeners, route configurations and clusters published for the Gateway, once every rule of every route is
    in them."""
    pod, token = _proxy_token(controller)
    wanted = _route_names(controller)
    deadline = time.monotonic() + XDS_TIMEOUT_S
    while True:
        found = _read_xds(controller, pod, token)
        names = {route["name"] for config in found["routes"] for host in config.get("virtualHosts", [])
                 for route in host.get("routes", [])}
        if found["routes"] and all(any(n.startswith(w) for n in names) for w in wanted):
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"the xDS for {'/'.join(GATEWAY)} lacks rules {sorted(wanted)} after {XDS_TIMEOUT_S} s; "
                        f"it has {sorted(names)}")
        time.sleep(2)


def _virtual_hosts(xds: dict[str, list[dict]]) -> list[dict]:
    return [host for config in xds["routes"] for host in config["virtualHosts"]]


def _http_filters(xds: dict[str, list[dict]]) -> list[list[dict]]:
    """The HTTP filter chain of each HTTPS listener's filter chain, in order."""
    return [f["typedConfig"]["httpFilters"] for listener in xds["listeners"]
            if listener["name"].startswith("/".join(GATEWAY)) for chain in listener["filterChains"]
            for f in chain["filters"] if f["name"] == "envoy.filters.network.http_connection_manager"]


def _model_routes(host: dict) -> list[dict]:
    return [route for route in host["routes"] if route["name"].startswith("httproute/")]


def test_every_listener_hostname_has_its_routes_and_none_answers_by_itself(controller, xds):
    hosts = {host["domains"][0] for host in _virtual_hosts(xds)}
    [gateway] = controller.of_kind("Gateway")
    assert hosts == {listener["hostname"] for listener in gateway["spec"]["listeners"]}
    for host in _virtual_hosts(xds):
        wanted = _route_names(controller)
        assert {w for w in wanted if any(r["name"].startswith(w) for r in host["routes"])} == wanted
        # A policy Envoy Gateway refuses turns the routes it targets into direct 500s (as Strict Lua validation
        # did to every route, components.gateway.envoy_gateway.LUA_VALIDATION).
        assert [r["name"] for r in host["routes"] if "directResponse" in r] == []


def test_each_version_has_a_route_of_its_own_before_the_stable_fallback(controller, xds):
    [route] = [r for r in controller.of_kind("HTTPRoute") if r["metadata"]["name"] == "llama-3-8b"]
    versions = [m["headers"][0]["value"] for rule in route["spec"]["rules"] for m in rule["matches"]
                if m.get("headers")]
    assert versions == ["1.0.0", "1.1.0"]
    for host in _virtual_hosts(xds):
        model = [r for r in _model_routes(host) if r["match"].get("pathSeparatedPrefix") == "/llama-3-8b/v1"]
        by_version = {m["stringMatch"]["exact"]: r for r in model for m in r["match"].get("headers", [])
                      if m["name"] == VERSION_HEADER}
        assert sorted(by_version) == versions
        assert len({r["route"]["cluster"] for r in by_version.values()}) == len(versions)
        for version, r in by_version.items():
            served_by = {h["header"]["key"]: h["header"]["value"] for h in r["responseHeadersToAdd"]}
            assert served_by[SERVED_BY_HEADER] == f"llama-3-8b@{version}/aws-use1"
        # Envoy takes the first route that matches: the route without the header must come after the versions'.
        [fallback] = [r for r in model if not r["match"].get("headers")]
        assert all(model.index(r) < model.index(fallback) for r in by_version.values())


def test_the_version_split_runs_after_the_tenant_key_and_before_the_token_meter_and_budgets(controller, xds):
    [policy] = controller.of_kind("EnvoyExtensionPolicy")
    split, meter = (lua["inline"] for lua in policy["spec"]["lua"])
    assert "clearRouteCache" in split and "clearRouteCache" not in meter
    for host in _virtual_hosts(xds):
        for route in _model_routes(host):
            scripts = {name: config["sourceCode"]["inlineString"]
                       for name, config in route["typedPerFilterConfig"].items()
                       if name.startswith("envoy.filters.http.lua/")}
            assert sorted(scripts.values()) == sorted([split, meter]), route["name"]
    [split_filter] = [n for n, s in scripts.items() if s == split]
    [meter_filter] = [n for n, s in scripts.items() if s == meter]
    for chain in _http_filters(xds):
        order = [f["name"] for f in chain]
        budgets = order.index("envoy.filters.http.ratelimit/" + "/".join((GATEWAY[0], "tenant-budgets")))
        assert order.index("envoy.filters.http.api_key_auth") < order.index(split_filter) \
            < order.index(meter_filter) < budgets < order.index("envoy.filters.http.router"), order


def test_the_published_split_sends_a_tenth_of_the_users_to_the_canary(controller, xds, tmp_path):
    """The 90/10 canary, as the configuration Envoy receives has it: the version split's script taken from the
    xDS, run on 3,000 users."""
    [host, *_] = _virtual_hosts(xds)
    [route, *_] = [r for r in _model_routes(host) if r["match"].get("pathSeparatedPrefix") == "/llama-3-8b/v1"]
    [split] = [config["sourceCode"]["inlineString"] for name, config in route["typedPerFilterConfig"].items()
               if name.startswith("envoy.filters.http.lua/") and "clearRouteCache" in
               config["sourceCode"]["inlineString"]]
    counts = Counter(r["version"] for r in run_source(split, users("llama-3-8b", 3000), tmp_path))
    assert set(counts) == {"1.0.0", "1.1.0"}
    assert 0.08 <= counts["1.1.0"] / 3000 <= 0.12, counts


def test_every_model_route_checks_the_tenant_key_and_charges_every_budget_in_tokens(controller, xds):
    [budgets] = controller.of_kind("BackendTrafficPolicy")
    rules = budgets["spec"]["rateLimit"]["global"]["rules"]
    tokens = f"%DYNAMIC_METADATA({USAGE_METADATA[0]}:{USAGE_METADATA[1]})%"
    for host in _virtual_hosts(xds):
        for route in _model_routes(host):
            key = route["typedPerFilterConfig"]["envoy.filters.http.api_key_auth"]
            assert key["keySources"] == [{"header": API_KEY_HEADER}] and key["forwarding"]["header"] == CLIENT_HEADER
            charged = {}
            for limit in route["route"]["rateLimits"]:
                [rule] = [a["genericKey"]["descriptorValue"] for a in limit["actions"] if "genericKey" in a]
                [client] = [a["headerValueMatch"]["headers"][0] for a in limit["actions"] if "headerValueMatch" in a]
                assert client["name"] == CLIENT_HEADER
                if limit.get("applyOnStreamDone"):
                    charged[rule] = (client["stringMatch"]["safeRegex"]["regex"], limit["hitsAddend"]["format"])
            assert charged == {f"{GATEWAY[0]}/tenant-budgets/rule/{i}":
                               (rule["clientSelectors"][0]["headers"][0]["value"], tokens)
                               for i, rule in enumerate(rules)}, route["name"]


def test_every_model_route_injects_the_upstream_credential(controller, xds):
    [credential] = controller.of_kind("HTTPRouteFilter")
    name = f"envoy.filters.http.credential_injector/httproutefilter/{credential['metadata']['namespace']}/" \
           f"{credential['metadata']['name']}"
    for chain in _http_filters(xds):
        [injector] = [f for f in chain if f["name"] == name]
        config = injector["typedConfig"]
        assert injector["disabled"] and config["overwrite"]
        assert config["credential"]["typedConfig"]["header"] == credential["spec"]["credentialInjection"]["header"]
    for host in _virtual_hosts(xds):
        assert [r["name"] for r in _model_routes(host) if name not in r["typedPerFilterConfig"]] == []
