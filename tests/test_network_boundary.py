"""The monitoring plane's trust boundary in prod's plan (issue 29): a default deny in every namespace the stack
creates, Grafana locked, nothing of monitoring exposed, and Prometheus' remote-write receiver reachable only from
Loki's ruler, through the guard that keeps it off the query port."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from llmplane.components.network_policy import PROMETHEUS_PODS
from llmplane.components.observability.boundary import (
    GRAFANA_PODS,
    LOKI_PODS,
    PROMETHEUS_QUERY_PORT,
    PROMETHEUS_WRITE_PORT,
    guard_config,
)
from llmplane.policies.network_graph import NetworkGraph, Pod

from tests.planning import plan_of

CLUSTERS = ("aws-use1", "aws-usw2", "gcp-usc1", "onprem-dc1")
MONITORING = "monitoring"


@pytest.fixture(scope="module")
def prod():
    return plan_of("prod")


def _created_namespaces(plan, cluster: str) -> set[str]:
    """Namespaces the cluster's resources create: Namespace objects and Helm releases with createNamespace."""
    made = {r.inputs["metadata"]["name"] for r in plan.of_type("kubernetes:core/v1:Namespace")
            if r.name.startswith(f"{cluster}-")}
    made |= {r.inputs["namespace"] for r in plan.of_type("kubernetes:helm.sh/v3:Release")
             if r.name.startswith(f"{cluster}-") and r.inputs.get("createNamespace")}
    return made


def _policies(plan, cluster: str) -> list[dict[str, Any]]:
    return [r.inputs for r in plan.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
            if r.name.startswith(f"{cluster}-")]


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_every_namespace_the_cluster_creates_denies_by_default_both_ways(prod, cluster: str):
    namespaces = _created_namespaces(prod, cluster)
    assert {"monitoring", "keda", "cert-manager", "envoy-gateway-system", "envoy-ai-gateway-system",
            "llmplane-gateway", "llmplane"} <= namespaces
    denying = {p["metadata"]["namespace"] for p in _policies(prod, cluster)
               if p["spec"]["podSelector"] == {} and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
               and not p["spec"].get("ingress") and not p["spec"].get("egress")}
    assert namespaces - denying == set()
    # and an unlisted pod there can neither be reached nor reach out (DNS aside)
    graph = NetworkGraph(_policies(prod, cluster), {})
    for namespace in namespaces:
        stranger = Pod(namespace, {"app": "stranger"})
        assert not graph.allows(stranger, Pod(MONITORING, PROMETHEUS_PODS), PROMETHEUS_QUERY_PORT), namespace
        assert not graph.allows(Pod(MONITORING, PROMETHEUS_PODS), stranger, 8080), namespace


def _release(plan, cluster: str, chart: str):
    [release] = [r for r in plan.of_type("kubernetes:helm.sh/v3:Release")
                 if r.inputs["chart"] == chart and r.name.startswith(f"{cluster}-")]
    return release


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_grafana_has_no_anonymous_access_and_a_generated_secret_admin_password(prod, cluster: str):
    grafana = _release(prod, cluster, "kube-prometheus-stack").inputs["values"]["grafana"]
    assert grafana["grafana.ini"]["auth.anonymous"]["enabled"] is False
    assert "adminPassword" not in grafana  # Helm would keep it in clear in its release record
    [secret] = [r for r in prod.of_type("kubernetes:core/v1:Secret")
                if r.name == f"{cluster}-observability-grafana-admin"]
    assert grafana["admin"]["existingSecret"] == secret.inputs["metadata"]["name"]
    assert secret.inputs["metadata"]["namespace"] == MONITORING
    assert secret.inputs["stringData"] == "[secret]"
    assert [r.name for r in prod.of_type("random:index/randomPassword:RandomPassword")
            if r.name == f"{cluster}-observability-grafana-admin"]


def _service_types(values: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, type) of every `service.type`-like value and `ingress.enabled: true` in chart values."""
    if isinstance(values, dict):
        for key, value in values.items():
            where = f"{path}.{key}" if path else key
            if key == "type" and isinstance(value, str) and path.lower().endswith("service"):
                yield where, value
            if key == "ingress" and isinstance(value, dict) and value.get("enabled"):
                yield where, "Ingress"
            yield from _service_types(value, where)
    elif isinstance(values, list):
        for index, item in enumerate(values):
            yield from _service_types(item, f"{path}[{index}]")


def test_no_monitoring_service_is_reachable_from_outside_the_cluster(prod):
    releases = [r for r in prod.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["namespace"] == MONITORING]
    assert {r.inputs["chart"] for r in releases} == {"kube-prometheus-stack", "loki", "alloy", "dcgm-exporter",
                                                      "jaeger"}
    exposed = [(r.name, where, kind) for r in releases for where, kind in _service_types(r.inputs["values"])
               if kind != "ClusterIP"]
    assert exposed == []
    services = [r for r in prod.of_type("kubernetes:core/v1:Service")
                if r.inputs["metadata"].get("namespace") == MONITORING]
    assert all(s.inputs["spec"].get("type", "ClusterIP") == "ClusterIP" for s in services)
    jaeger = _release(prod, "aws-use1", "jaeger").inputs["values"]["jaeger"]
    assert jaeger["service"]["type"] == "ClusterIP"


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_prometheus_write_receiver_admits_only_lokis_ruler(prod, cluster: str):
    values = _release(prod, cluster, "kube-prometheus-stack").inputs["values"]["prometheus"]
    spec = values["prometheusSpec"]
    assert spec["enableRemoteWriteReceiver"] is True and spec["listenLocal"] is True  # 9090 on loopback only
    assert values["service"]["targetPort"] == PROMETHEUS_QUERY_PORT
    ruler = _release(prod, cluster, "loki").inputs["values"]["loki"]["rulerConfig"]["remote_write"]
    assert ruler["clients"]["prometheus"]["url"].endswith(f":{PROMETHEUS_WRITE_PORT}/api/v1/write")

    graph = NetworkGraph(_policies(prod, cluster), {})
    prometheus = Pod(MONITORING, PROMETHEUS_PODS)
    writers = [Pod(MONITORING, LOKI_PODS)]
    others = [Pod(MONITORING, GRAFANA_PODS), Pod(MONITORING, {"app.kubernetes.io/name": "alloy"}),
              Pod("keda", {"app.kubernetes.io/name": "keda-operator"}), Pod("llmplane", {"app": "anything"}),
              Pod(MONITORING, {"app": "anything"}), Pod("llmplane-gateway", {
                  "app.kubernetes.io/name": "envoy", "app.kubernetes.io/component": "proxy",
                  "app.kubernetes.io/managed-by": "envoy-gateway"})]
    assert all(graph.allows(w, prometheus, PROMETHEUS_WRITE_PORT) for w in writers)
    assert not any(graph.allows(o, prometheus, PROMETHEUS_WRITE_PORT) for o in others)
    # the readers keep reading, but on the port whose guard refuses writes
    assert graph.allows(Pod(MONITORING, GRAFANA_PODS), prometheus, PROMETHEUS_QUERY_PORT)
    assert not graph.allows(Pod(MONITORING, LOKI_PODS), prometheus, PROMETHEUS_QUERY_PORT)
    # and on Prometheus' own side, whatever other namespaces' egress may one day allow: the write port's only
    # admitted peer is Loki's pods, and no rule admits every port
    ingress = [rule for policy in graph.selecting(prometheus, "Ingress") for rule in policy.rules("Ingress")]
    assert all(rule.get("ports") for rule in ingress)
    write_rules = [rule for rule in ingress if any(p["port"] == PROMETHEUS_WRITE_PORT for p in rule["ports"])]
    assert [rule["from"] for rule in write_rules] == [[{"podSelector": {"matchLabels": LOKI_PODS}}]]


def test_the_guard_refuses_writes_on_the_query_port_and_serves_only_writes_on_the_write_port(prod):
    [configmap] = [r for r in prod.of_type("kubernetes:core/v1:ConfigMap")
                   if r.name == "aws-use1-observability-prometheus-write-guard"]
    config = yaml.safe_load(configmap.inputs["data"]["envoy.yaml"])
    assert config == guard_config()
    listeners = {listener["address"]["socket_address"]["port_value"]: listener
                 for listener in config["static_resources"]["listeners"]}

    def routes(port: int) -> list[dict]:
        manager = listeners[port]["filter_chains"][0]["filters"][0]["typed_config"]
        assert manager["normalize_path"] and manager["merge_slashes"]
        return manager["route_config"]["virtual_hosts"][0]["routes"]

    def first_match(port: int, path: str) -> dict:
        for route in routes(port):
            match = route["match"]
            if match.get("path") == path or ("prefix" in match and path.startswith(match["prefix"])):
                return route
        raise AssertionError(f"no route for {path} on {port}")

    assert first_match(PROMETHEUS_QUERY_PORT, "/api/v1/write")["direct_response"]["status"] == 403
    assert first_match(PROMETHEUS_QUERY_PORT, "/api/v1/query")["route"]["cluster"] == "prometheus"
    assert first_match(PROMETHEUS_WRITE_PORT, "/api/v1/write")["route"]["cluster"] == "prometheus"
    assert first_match(PROMETHEUS_WRITE_PORT, "/api/v1/query")["direct_response"]["status"] == 404
    [cluster] = config["static_resources"]["clusters"]
    assert cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"] == {
        "socket_address": {"address": "127.0.0.1", "port_value": 9090}}
