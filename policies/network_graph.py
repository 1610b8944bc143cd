"""Kubernetes NetworkPolicy semantics, evaluated from the objects alone: may this pod reach that pod (or address) on
this port? No CNI runs where the plan is made, so the stack's NetworkPolicies are judged the way Kubernetes defines
them, written once here.

Sources, followed rule by rule:
- kubernetes.io/docs/concepts/services-networking/network-policies/ ("Network Policies"): the two sorts of pod
  isolation (a pod is isolated for a direction only when some policy selecting it has that policyType), policies
  being additive, a connection needing both the source's egress and the destination's ingress, the four peer
  forms (podSelector in the policy's namespace, namespaceSelector, both ANDed in one peer, ipBlock with except),
  the namespace label `kubernetes.io/metadata.name` the API server sets on every namespace;
- the networking.k8s.io/v1 API reference (kubernetes.io/docs/reference/kubernetes-api/policy-resources/
  network-policy-v1/): policyTypes default (Ingress always, Egress when the policy has egress rules, as
  `SetDefaults_NetworkPolicy` does), an empty or missing `from`/`to` matching every peer, empty or missing `ports`
  every port, a port's protocol defaulting to TCP, a missing port matching every port, a named port resolved on the
  destination pod, endPort closing a range;
- label selectors as apimachinery's LabelSelector (kubernetes.io/docs/concepts/overview/working-with-objects/
  labels/): `{}` selects everything, matchLabels and matchExpressions all hold, NotIn holds where the key is absent.

No maintained Python library does this: network-config-analyzer (np-guard) is a CLI pinning exact versions
(PyYAML==6.0.2, lxml, ghapi) whose line moved on to Go, and kube-netpol's and knetvis's simulators skip ipBlock,
named ports and matchExpressions. Traffic from a pod's own node, which Kubernetes always allows, is not modelled.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""Set by the API server on every namespace to its name: what a namespaceSelector can always select on."""

Direction = Literal["Ingress", "Egress"]


@dataclass(frozen=True)
class Pod:
    """A pod as policies see it: namespace, labels, named container ports and (for ipBlock peers) its address."""

    namespace: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    """Container port name -> (number, protocol): what a named port in a policy resolves to on this pod."""
    ip: str | None = None
    """The pod's IP, only for judging ipBlock peers; None: no ipBlock matches it."""

    @classmethod
    def of_template(cls, namespace: str, labels: Mapping[str, str], pod_spec: Mapping[str, Any],
                    ip: str | None = None) -> Pod:
        """The pod a workload's template makes: its labels, and the named ports of all its containers."""
        ports = {
            port["name"]: (int(port["containerPort"]), port.get("protocol") or "TCP")
            for key in ("containers", "initContainers")
            for container in pod_spec.get(key) or []
            for port in container.get("ports") or []
            if port.get("name")
        }
        return cls(namespace, dict(labels), ports, ip)


@dataclass(frozen=True)
class Address:
    """An endpoint outside the pod network (a cloud API, a user): only ipBlock peers can match it."""

    ip: str


Endpoint = Pod | Address


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """LabelSelector semantics: every matchLabels pair and every matchExpressions requirement holds; `{}` matches
    all labels."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        if operator == "In":
            held = key in labels and labels[key] in values
        elif operator == "NotIn":
            held = key not in labels or labels[key] not in values
        elif operator == "Exists":
            held = key in labels
        elif operator == "DoesNotExist":
            held = key not in labels
        else:
            raise ValueError(f"label selector operator {operator!r} is none of In, NotIn, Exists, DoesNotExist")
        if not held:
            return False
    return True


def selector_is_empty(selector: Mapping[str, Any] | None) -> bool:
    """Whether a selector selects everything (`{}`: no matchLabels, no matchExpressions)."""
    return selector is not None and not selector.get("matchLabels") and not selector.get("matchExpressions")


def policy_types(spec: Mapping[str, Any]) -> tuple[str, ...]:
    """The directions a policy isolates: as given, or Ingress plus Egress when it has egress rules (the API's
    default)."""
    given = spec.get("policyTypes")
    if given:
        return tuple(given)
    return ("Ingress", "Egress") if spec.get("egress") else ("Ingress",)


def _in_block(block: Mapping[str, Any], ip: str | None) -> bool:
    if ip is None:
        return False
    address = ipaddress.ip_address(ip)
    cidr = ipaddress.ip_network(block["cidr"], strict=False)
    if address.version != cidr.version or address not in cidr:
        return False
    return not any(address in ipaddress.ip_network(e, strict=False)
                   for e in block.get("except") or [] if ipaddress.ip_network(e, strict=False).version == cidr.version)


@dataclass(frozen=True)
class Policy:
    """One NetworkPolicy: where it lives and its spec."""

    namespace: str
    name: str
    spec: Mapping[str, Any]

    @property
    def types(self) -> tuple[str, ...]:
        return policy_types(self.spec)

    def selects(self, pod: Pod, direction: Direction) -> bool:
        """Whether this policy isolates the pod in that direction (its namespace, its podSelector, its types)."""
        return (pod.namespace == self.namespace and direction in self.types
                and selector_matches(self.spec.get("podSelector") or {}, pod.labels))

    def rules(self, direction: Direction) -> list[Mapping[str, Any]]:
        return list(self.spec.get("ingress" if direction == "Ingress" else "egress") or [])


class NetworkGraph:
    """The NetworkPolicies of one cluster and the labels of its namespaces, queried connection by connection."""

    def __init__(self, policies: Iterable[Mapping[str, Any]], namespaces: Mapping[str, Mapping[str, str]]):
        """`policies`: NetworkPolicy objects (metadata, spec); `namespaces`: every namespace's labels by name (the
        name label is added, as the API server does)."""
        self.policies = [Policy(p["metadata"].get("namespace") or "default", p["metadata"].get("name", ""),
                                p.get("spec") or {}) for p in policies]
        self.namespaces = {name: {**labels, NAMESPACE_NAME_LABEL: name} for name, labels in namespaces.items()}

    def namespace_labels(self, name: str) -> Mapping[str, str]:
        """A namespace's labels; one the graph was not told of carries only its name label."""
        return self.namespaces.get(name, {NAMESPACE_NAME_LABEL: name})

    def selecting(self, pod: Pod, direction: Direction) -> list[Policy]:
        """The policies that isolate this pod in that direction (none: it is not isolated)."""
        return [p for p in self.policies if p.selects(pod, direction)]

    def allows(self, source: Endpoint, destination: Endpoint, port: int, protocol: str = "TCP") -> bool:
        """Whether a connection from source to destination on port/protocol is allowed: the source's egress and
        the destination's ingress both allow it (an Address has no policies of its own)."""
        return (self._direction_allows(source, "Egress", destination, destination, port, protocol)
                and self._direction_allows(destination, "Ingress", source, destination, port, protocol))

    def allowing_rules(self, pod: Pod, direction: Direction, peer: Endpoint, port: int,
                       protocol: str = "TCP") -> list[tuple[Policy, Mapping[str, Any]]]:
        """Every (policy, rule) that isolates `pod` in `direction` and admits `peer` on port/protocol."""
        destination = peer if direction == "Egress" else pod
        return [(policy, rule) for policy in self.selecting(pod, direction) for rule in policy.rules(direction)
                if self.rule_admits(policy, rule, direction, peer, destination, port, protocol)]

    def _direction_allows(self, pod: Endpoint, direction: Direction, peer: Endpoint, destination: Endpoint,
                          port: int, protocol: str) -> bool:
        if not isinstance(pod, Pod):
            return True
        isolating = self.selecting(pod, direction)
        return not isolating or any(self.rule_admits(policy, rule, direction, peer, destination, port, protocol)
                                    for policy in isolating for rule in policy.rules(direction))

    def rule_admits(self, policy: Policy, rule: Mapping[str, Any], direction: Direction, peer: Endpoint,
                    destination: Endpoint, port: int, protocol: str) -> bool:
        """One rule: some peer matches (none listed: all do) and some port matches (none listed: all do)."""
        peers = rule.get("from" if direction == "Ingress" else "to") or []
        return ((not peers or any(self.peer_matches(p, policy.namespace, peer) for p in peers))
                and self._ports_admit(rule, destination, port, protocol))

    def _ports_admit(self, rule: Mapping[str, Any], destination: Endpoint | None, port: int, protocol: str) -> bool:
        ports = rule.get("ports") or []
        return not ports or any(port_matches(p, destination, port, protocol) for p in ports)

    def peer_matches(self, peer: Mapping[str, Any], policy_namespace: str, endpoint: Endpoint) -> bool:
        """A NetworkPolicyPeer: ipBlock alone; or podSelector (policy's namespace) and/or namespaceSelector."""
        pod_selector, namespace_selector = peer.get("podSelector"), peer.get("namespaceSelector")
        if "ipBlock" in peer:
            if pod_selector is not None or namespace_selector is not None:
                raise ValueError("a NetworkPolicyPeer with ipBlock may not also set podSelector or namespaceSelector")
            return _in_block(peer["ipBlock"], endpoint.ip)
        if pod_selector is None and namespace_selector is None:
            raise ValueError("a NetworkPolicyPeer needs podSelector, namespaceSelector or ipBlock")
        if not isinstance(endpoint, Pod):
            return False
        if namespace_selector is None:
            in_namespace = endpoint.namespace == policy_namespace
        else:
            in_namespace = selector_matches(namespace_selector, self.namespace_labels(endpoint.namespace))
        return in_namespace and (pod_selector is None or selector_matches(pod_selector, endpoint.labels))


def port_matches(policy_port: Mapping[str, Any], destination: Endpoint | None, port: int, protocol: str) -> bool:
    """A NetworkPolicyPort: protocol (TCP by default), then a number, a number..endPort range, or a name resolved
    on the destination pod's container ports; no port: every port of the protocol."""
    if (policy_port.get("protocol") or "TCP") != protocol:
        return False
    wanted = policy_port.get("port")
    if wanted is None:
        return True
    if isinstance(wanted, str):
        return isinstance(destination, Pod) and destination.ports.get(wanted) == (port, protocol)
    end = policy_port.get("endPort")
    return wanted <= port <= end if end is not None else port == wanted
