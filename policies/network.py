"""Network trust-boundary policies (issue 29): every namespace the stack creates starts from a default deny, the
monitoring plane is never exposed outside the cluster, and Prometheus' remote-write receiver (whose series steer
autoscaling, alerts and tenant costs) admits only named pods."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from llmplane.facts.namespaces import MONITORING_NAMESPACE

from .base import (
    UNKNOWN,
    Context,
    Finding,
    ResourceView,
    Rule,
    as_dict,
    as_list,
    display,
    get,
    is_true,
    k8s_kind,
    metadata,
    namespace_of,
    same_scope,
)
from .network_graph import NetworkGraph, Pod, policy_types, selector_is_empty

HELM_RELEASE = "kubernetes:helm.sh/*:Release"
SERVICE = "kubernetes:core/v1:Service"
INGRESS = "kubernetes:networking.k8s.io/*:Ingress"
GATEWAY_ROUTE = "kubernetes:gateway.networking.k8s.io/*:*Route"
EXPOSED_SERVICE_TYPES = ("LoadBalancer", "NodePort")
"""Service types reachable from outside the cluster (a node's port, a cloud load balancer)."""

# ------------------------------------------------------------------ default deny per namespace


def _created_namespaces(resources: Sequence[ResourceView]) -> list[tuple[ResourceView, str]]:
    """(resource, namespace) for every namespace the stack creates: Namespace objects, and the namespaces Helm
    releases create (`createNamespace: true`), once per cluster."""
    found: dict[tuple[str | None, str], ResourceView] = {}
    for view in resources:
        if k8s_kind(view.type) == "Namespace":
            name = metadata(view).get("name")
        elif view.type.startswith("kubernetes:helm.sh/") and k8s_kind(view.type) == "Release" and is_true(
                view.props.get("createNamespace")):
            name = view.props.get("namespace")
        else:
            continue
        if isinstance(name, str) and name and name != UNKNOWN:
            found.setdefault((view.scope, name), view)
    return [(view, name) for (_scope, name), view in found.items()]


def _peer_is_everyone(peer: Mapping[str, Any]) -> bool:
    """A peer matching every pod of every namespace, or every IPv4 or IPv6 address."""
    block = as_dict(peer.get("ipBlock"))
    if block:
        return block.get("cidr") in ("0.0.0.0/0", "::/0") and not block.get("except")
    namespaces, pods = peer.get("namespaceSelector"), peer.get("podSelector")
    return selector_is_empty(as_dict(namespaces) if namespaces is not None else None) and (
        pods is None or selector_is_empty(as_dict(pods)))


def _rule_allows_all(rule: Mapping[str, Any], peers_key: str) -> bool:
    """A rule admitting every peer on every port: no ports, and no peers or an everyone peer."""
    peers = as_list(rule.get(peers_key))
    return not as_list(rule.get("ports")) and (not peers or any(_peer_is_everyone(as_dict(p)) for p in peers))


def is_default_deny(view: ResourceView) -> bool:
    """A NetworkPolicy selecting every pod of its namespace, isolating both directions, none of its rules
    allowing all traffic."""
    spec = as_dict(view.props.get("spec"))
    return (k8s_kind(view.type) == "NetworkPolicy"
            and selector_is_empty(as_dict(spec.get("podSelector")))
            and {"Ingress", "Egress"} <= set(policy_types(spec))
            and not any(_rule_allows_all(as_dict(r), "from") for r in as_list(spec.get("ingress")))
            and not any(_rule_allows_all(as_dict(r), "to") for r in as_list(spec.get("egress"))))


def namespace_default_deny(resources: Sequence[ResourceView], _: Context) -> Iterator[Finding]:
    denials = [r for r in resources if is_default_deny(r)]
    for view, name in _created_namespaces(resources):
        if any(same_scope(d, view) and namespace_of(d) in (name, UNKNOWN) for d in denials):
            continue
        where = f" in {view.scope}" if view.scope else ""
        yield Finding(view.urn, f"namespace {name}{where} (created by {display(view)}) has no default-deny "
                                "NetworkPolicy (podSelector {}, policyTypes Ingress and Egress): its pods accept "
                                "and open connections to anything in the cluster until a policy selects them")


# ------------------------------------------------------------------ monitoring stays inside the cluster


def _exposures(values: Any, path: str = "") -> Iterator[str]:
    """Chart values that expose a Service outside the cluster: a `service.type` of LoadBalancer or NodePort, or
    an `ingress.enabled: true`, at any depth (Grafana, Prometheus, Alertmanager, Loki's gateway, Jaeger)."""
    if isinstance(values, Mapping):
        service, ingress = as_dict(values.get("service")), as_dict(values.get("ingress"))
        if service.get("type") in EXPOSED_SERVICE_TYPES:
            yield f"{path}service.type: {service['type']}"
        if is_true(ingress.get("enabled")):
            yield f"{path}ingress.enabled: true"
        for key, value in values.items():
            yield from _exposures(value, f"{path}{key}.")
    elif isinstance(values, list):
        for index, item in enumerate(values):
            yield from _exposures(item, f"{path}{index}.")


def _route_backends(view: ResourceView) -> Iterator[tuple[str, str]]:
    """(namespace, name) of every Service a Gateway API route sends to (a backendRef's namespace defaults to the
    route's, its kind to Service)."""
    for rule in as_list(get(view.props, "spec", "rules")):
        for ref in as_list(get(rule, "backendRefs")):
            if get(ref, "kind", default="Service") == "Service" and get(ref, "group", default="") in ("", "core"):
                yield str(get(ref, "namespace", default=namespace_of(view))), str(get(ref, "name"))


def monitoring_not_exposed(view: ResourceView, _: Context) -> Iterator[str]:
    kind = k8s_kind(view.type)
    if kind == "Release":
        if view.props.get("namespace") == MONITORING_NAMESPACE:
            for exposure in _exposures(view.props.get("values")):
                yield (f"Helm release {view.name} in {MONITORING_NAMESPACE} sets {exposure}: a monitoring "
                       "Service reachable from outside the cluster")
        return
    if namespace_of(view) == MONITORING_NAMESPACE and kind == "Service":
        service_type = get(view.props, "spec", "type")
        if service_type in EXPOSED_SERVICE_TYPES:
            yield f"{display(view)} is of type {service_type}: reachable from outside the cluster"
    elif namespace_of(view) == MONITORING_NAMESPACE and kind == "Ingress":
        yield f"{display(view)} exposes Services of {MONITORING_NAMESPACE} outside the cluster"
    elif kind.endswith("Route"):
        for namespace, name in _route_backends(view):
            if namespace == MONITORING_NAMESPACE:
                yield f"{display(view)} routes to Service {namespace}/{name} from outside the cluster"


# ------------------------------------------------------------------ remote-write receiver

PROMETHEUS_POD_LABELS = {"app.kubernetes.io/name": "prometheus", "app.kubernetes.io/managed-by": "prometheus-operator",
                         "operator.prometheus.io/shard": "0"}
"""Labels the Prometheus operator gives every Prometheus server pod (prometheus-operator `makeSelectorLabels`),
whatever the Prometheus is called."""
PROMETHEUS_NAME_LABELS = ("prometheus", "operator.prometheus.io/name", "app.kubernetes.io/instance")
"""Labels the operator sets to the Prometheus resource's name."""


def _receivers(resources: Sequence[ResourceView]) -> Iterator[tuple[ResourceView, str, str | None]]:
    """(resource, namespace, Prometheus name or None when Helm names it) for every Prometheus with the remote-write
    receiver on: kube-prometheus-stack releases by their values, Prometheus resources by their spec."""
    for view in resources:
        kind = k8s_kind(view.type)
        if kind == "Release" and str(view.props.get("chart", "")).rstrip("/").endswith("kube-prometheus-stack"):
            if is_true(get(view.props, "values", "prometheus", "prometheusSpec", "enableRemoteWriteReceiver")):
                yield view, str(view.props.get("namespace") or "default"), None
        elif kind == "Prometheus" and view.type.startswith("kubernetes:monitoring.coreos.com/"):
            if is_true(get(view.props, "spec", "enableRemoteWriteReceiver")):
                name = metadata(view).get("name")
                yield view, namespace_of(view), name if isinstance(name, str) and name != UNKNOWN else None


def _prometheus_pod(namespace: str, name: str) -> Pod:
    return Pod(namespace, {**PROMETHEUS_POD_LABELS, **dict.fromkeys(PROMETHEUS_NAME_LABELS, name)})


def _names_pods(rule: Mapping[str, Any]) -> bool:
    """An ingress rule whose every peer names pods: a non-empty podSelector, within a namespaceSelector that is not
    every namespace (no ipBlock, no empty `from`)."""
    peers = [as_dict(p) for p in as_list(rule.get("from"))]
    return bool(peers) and all(
        "ipBlock" not in p and p.get("podSelector") is not None and not selector_is_empty(as_dict(p["podSelector"]))
        and (p.get("namespaceSelector") is None or not selector_is_empty(as_dict(p["namespaceSelector"])))
        for p in peers)


def _remote_write_problem(graph: NetworkGraph, pod: Pod) -> str | None:
    """Why this Prometheus pod admits more than named pods, or None. Every ingress rule counts, whatever its port:
    the receiver is on 9090 unless Prometheus listens on loopback behind a proxy in its pod, whose ports are the
    ones that reach /api/v1/write."""
    isolating = graph.selecting(pod, "Ingress")
    if not isolating:
        return "no NetworkPolicy isolates its pods for ingress: every pod in the cluster can write series"
    open_policies = sorted({policy.name for policy in isolating for rule in policy.rules("Ingress")
                            if not _names_pods(rule)})
    if open_policies:
        return (f"NetworkPolicy {', '.join(open_policies)} admits its pods from more than named pods "
                "(no peers, an empty podSelector, every pod of a namespace or an ipBlock)")
    return None


def remote_write_restricted(resources: Sequence[ResourceView], _: Context) -> Iterator[Finding]:
    policies = [r for r in resources if k8s_kind(r.type) == "NetworkPolicy"]
    for view, namespace, name in _receivers(resources):
        here = [p for p in policies if same_scope(p, view) and namespace_of(p) in (namespace, UNKNOWN)]
        objects = [{**p.props, "metadata": {**metadata(p), "namespace": namespace}} for p in here]
        graph = NetworkGraph(objects, {})
        if name is not None:
            names = [name]
        else:  # Helm names it: a name a policy here pins is taken to be it, else it matches no name selector
            names = sorted({str(value) for p in here for key, value in as_dict(
                get(p.props, "spec", "podSelector", "matchLabels")).items() if key in PROMETHEUS_NAME_LABELS})
            names.append("")
        problems = [_remote_write_problem(graph, _prometheus_pod(namespace, n)) for n in names]
        if all(problems):
            chosen = next((p for p in problems if not p.startswith("no NetworkPolicy")), problems[0])
            yield Finding(view.urn, f"{display(view)} enables Prometheus' remote-write receiver "
                                    f"({namespace}, /api/v1/write), but {chosen}")


RULES = [
    Rule(
        name="k8s-namespace-default-deny",
        description="Every namespace the stack creates (Namespace objects, Helm releases with createNamespace) has "
        "a default-deny NetworkPolicy: empty podSelector, policyTypes Ingress and Egress, no rule allowing all.",
        remediation="Add a NetworkPolicy in that namespace with podSelector {} and policyTypes [Ingress, Egress] "
        "(no rules), then one policy per component allowing only the pairs listed in docs/network.md.",
        resource_types=None,
        check=namespace_default_deny,
    ),
    Rule(
        name="platform-monitoring-not-exposed",
        description="No Service of the monitoring namespace is reachable from outside the cluster: no LoadBalancer "
        "or NodePort type, no Ingress, no Gateway API route to it, no chart value that makes one.",
        remediation="Keep monitoring Services ClusterIP and reach Grafana through `kubectl port-forward` or the "
        "cloud's private access; remove the chart's service.type or ingress.enabled setting.",
        resource_types=(SERVICE, INGRESS, GATEWAY_ROUTE, HELM_RELEASE),
        check=monitoring_not_exposed,
    ),
    Rule(
        name="platform-remote-write-restricted",
        description="A Prometheus with the remote-write receiver on is isolated for ingress, and every rule admitting "
        "its pods (on 9090, or the port of a proxy fronting it) names the pods it admits: no empty podSelector, no "
        "whole namespace, no ipBlock.",
        remediation="Add a NetworkPolicy selecting the Prometheus pods (app.kubernetes.io/name: prometheus) whose "
        "ingress on 9090 lists each writer and reader by podSelector (Loki, KEDA, Grafana, the pickers), or turn "
        "prometheus.prometheusSpec.enableRemoteWriteReceiver off.",
        resource_types=None,
        check=remote_write_restricted,
    ),
]
