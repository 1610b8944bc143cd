"""NetworkPolicy building blocks every namespace the stack creates shares: a default deny (ingress and egress), DNS
to kube-dns, and the peers that are not pods (the Kubernetes API server, the cloud's APIs).

Kubernetes admits a connection only when the source's egress and the destination's ingress both allow it
(kubernetes.io/docs/concepts/services-networking/network-policies). The allowed pairs are listed, with their
reasons, in docs/network.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s

ANYWHERE = "0.0.0.0/0"
API_SERVER_PORTS = (443, 6443)
"""The Kubernetes API server is not a pod: it has no labels to select, and its addresses (the EKS/GKE control plane's
ENIs or public endpoint, an on-prem VIP) are not known to the stack. It is reached by port, through an ipBlock: 443
(EKS, GKE) or 6443 (kubeadm and most on-prem control planes)."""
KUBE_DNS_LABELS = {"k8s-app": "kube-dns"}
"""Label of the cluster DNS pods in kube-system: CoreDNS on EKS and kubeadm, kube-dns on GKE keep this label."""
JAEGER_PODS = {"app.kubernetes.io/name": "jaeger", "app.kubernetes.io/component": "all-in-one"}
"""Labels of the Jaeger pod (chart 4.11.1 templates/jaeger/jaeger-deploy.yaml: `jaeger.selectorLabels` and the
all-in-one component), the one trace collector: the gateway's proxies, the endpoint pickers and vLLM send to it."""
OTLP_GRPC_PORT = 4317
PROXY_PODS = {"app.kubernetes.io/name": "envoy", "app.kubernetes.io/component": "proxy",
              "app.kubernetes.io/managed-by": "envoy-gateway"}
"""Labels Envoy Gateway puts on every proxy pod it deploys (v1.8.1 internal/infrastructure/kubernetes/proxy/
resource.go `EnvoyAppLabel`), in the Gateway's namespace."""
PROMETHEUS_PODS = {"app.kubernetes.io/name": "prometheus"}
"""Labels prometheus-operator gives every Prometheus server pod (`makeSelectorLabels`,
pkg/prometheus/server/operator.go)."""
PROMETHEUS_QUERY_PORT = 9091
"""Prometheus' query port: its write guard's port for every path but the write endpoints (the Service's 9090 targets
it; see observability.boundary)."""
CREDENTIAL_ENDPOINTS = {"aws": "169.254.170.23/32", "gcp": "169.254.169.254/32"}
"""Where workload identity hands out credentials: the EKS Pod Identity agent, the GKE metadata server (port 80)."""


def pods(namespace: pulumi.Input[str], labels: Mapping[str, str] | None = None) -> dict:
    """A peer: the pods with `labels` (all pods where None) in `namespace`, by its immutable name label."""
    peer: dict = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}
    if labels:
        peer["podSelector"] = {"matchLabels": dict(labels)}
    return peer


def local(labels: Mapping[str, str]) -> dict:
    """A peer: pods with `labels` in the policy's own namespace."""
    return {"podSelector": {"matchLabels": dict(labels)}}


def cidr(block: str = ANYWHERE) -> dict:
    """A peer that is not a pod: an address block."""
    return {"ipBlock": {"cidr": block}}


def tcp(*ports: int) -> list[dict]:
    """TCP ports of a rule."""
    return [{"port": port, "protocol": "TCP"} for port in ports]


def rule(peers: Sequence[dict], ports: Iterable[int]) -> dict:
    """One ingress or egress rule (`from` and `to` are filled in by `policy`)."""
    return {"peers": list(peers), "ports": tcp(*ports)}


def api_server() -> dict:
    """Egress to the Kubernetes API server, by port (see API_SERVER_PORTS)."""
    return rule([cidr()], API_SERVER_PORTS)


def from_api_server(port: int) -> dict:
    """Ingress from the Kubernetes API server to a webhook or aggregated API on `port`: the API server calls from
    its own addresses, which no pod selector matches."""
    return rule([cidr()], [port])


def https_anywhere() -> dict:
    """Egress to services outside the cluster whose addresses are not fixed (cloud APIs, ACME, object storage): by
    port 443."""
    return rule([cidr()], [443])


def credentials(cloud: str | None) -> list[dict]:
    """Egress to the cloud's workload-identity endpoint, where it has one; every cloud's where the caller does not
    know the cloud (both are link-local addresses no other service answers on)."""
    clouds = list(CREDENTIAL_ENDPOINTS) if cloud is None else [cloud] if cloud in CREDENTIAL_ENDPOINTS else []
    return [rule([cidr(CREDENTIAL_ENDPOINTS[c]) for c in clouds], [80])] if clouds else []


def _rules(rules: Sequence[dict], side: str) -> list[dict]:
    return [{side: r["peers"], "ports": r["ports"]} for r in rules]


def policy(resource_name: str, namespace: pulumi.Input[str], name: str, labels: Mapping[str, str],
           selector: Mapping[str, str], opts: pulumi.ResourceOptions, *, ingress: Sequence[dict] = (),
           egress: Sequence[dict] = ()) -> k8s.networking.v1.NetworkPolicy:
    """What the pods with `selector` may receive and send beside the namespace's default deny. Both directions
    are listed as policy types, so an empty side stays closed."""
    return k8s.networking.v1.NetworkPolicy(resource_name, metadata={
        "name": name, "namespace": namespace, "labels": dict(labels)}, spec={
        "podSelector": {"matchLabels": dict(selector)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": _rules(ingress, "from"),
        "egress": _rules(egress, "to"),
    }, opts=opts)


def namespace_baseline(resource_prefix: str, namespace: pulumi.Input[str], labels: Mapping[str, str],
                       opts: pulumi.ResourceOptions) -> list[k8s.networking.v1.NetworkPolicy]:
    """The default deny of a namespace (every pod, ingress and egress) and the one flow every pod keeps: DNS
    lookups to kube-dns. Every other flow is a policy of its own."""
    deny = k8s.networking.v1.NetworkPolicy(f"{resource_prefix}-default-deny", metadata={
        "name": "default-deny", "namespace": namespace, "labels": dict(labels)},
        spec={"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, opts=opts)
    dns = k8s.networking.v1.NetworkPolicy(f"{resource_prefix}-allow-dns", metadata={
        "name": "allow-dns", "namespace": namespace, "labels": dict(labels)},
        spec={"podSelector": {}, "policyTypes": ["Egress"],
              "egress": [{"to": [pods("kube-system", KUBE_DNS_LABELS)],
                          "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]},
        opts=opts)
    return [deny, dns]
