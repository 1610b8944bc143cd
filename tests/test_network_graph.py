"""The intended network graph, proved from the objects (issue 29 item 4): no CNI runs here, so prod's planned
NetworkPolicies and Namespaces are evaluated as Kubernetes defines them (policies/network_graph.py) and must
give exactly the verdicts docs/network.md's allowed-pair table states. Every row is allowed in every prod cluster
that has both namespaces; every pod the table does not list for Loki's and Prometheus' ports is denied there; a pod
of a tenant's namespace reaches no monitoring component, whatever labels it wears.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import pytest
from llmplane.facts.namespaces import MONITORING_NAMESPACE
from llmplane.policies.base import ResourceView, is_workload, k8s_kind, namespace_of, pod_template
from llmplane.policies.network_graph import NetworkGraph, Pod
from llmplane.stacks.environments import PROJECT_ROOT
from llmplane.stacks.plan_policies import views

from tests.planning import plan_of

DOC = PROJECT_ROOT / "docs" / "network.md"
HEADER = ("from namespace", "from pods", "to namespace", "to pods", "port", "why")
ALWAYS_THERE = ("kube-system", "default")
"""Namespaces every cluster has, whether or not the stack creates them."""
TENANT_NAMESPACE = "tenant-a"
"""A namespace the stack does not create, as a tenant's or anyone's workload would live in."""
ARBITRARY = {"app.kubernetes.io/name": "arbitrary"}
"""Labels of a pod nobody listed."""
LOKI = {"app.kubernetes.io/name": "loki"}
PROMETHEUS = {"app.kubernetes.io/name": "prometheus"}
LOKI_PUSH_PORT = 3100
"""Loki's HTTP port: /loki/api/v1/push (Loki chart `loki.server.http_listen_port`)."""
PROMETHEUS_PORT = 9090
"""Prometheus' own port: queries and, with the receiver on, /api/v1/write."""


@dataclass(frozen=True)
class Pair:
    """One row of the allowed-pair table: pods of one namespace may open connections to pods of another."""

    from_namespace: str
    from_pods: Mapping[str, str] | None
    """Labels the source pods carry; None (`*`): every pod of the namespace."""
    to_namespace: str
    to_pods: Mapping[str, str] | None
    ports: tuple[tuple[int, str], ...]
    why: str

    def lists(self, source: Pod, destination: Pod, port: int, protocol: str = "TCP") -> bool:
        """Whether this row allows source -> destination on port."""
        return ((port, protocol) in self.ports
                and _is(source, self.from_namespace, self.from_pods) and _is(destination, self.to_namespace,
                                                                                 self.to_pods))

    def __str__(self) -> str:
        return (f"{self.from_namespace}/{_show(self.from_pods)} -> {self.to_namespace}/{_show(self.to_pods)} "
                f"{','.join(f'{n}/{p}' for n, p in self.ports)}")


def _is(pod: Pod, namespace: str, labels: Mapping[str, str] | None) -> bool:
    return pod.namespace == namespace and (labels is None or labels.items() <= pod.labels.items())


def _show(labels: Mapping[str, str] | None) -> str:
    return "*" if labels is None else ",".join(f"{k}={v}" for k, v in labels.items())


def _labels(cell: str) -> Mapping[str, str] | None:
    if cell == "*":
        return None
    pairs = [item.strip().split("=", 1) for item in cell.split(",")]
    assert all(len(p) == 2 and p[0] and p[1] for p in pairs), f"pods {cell!r} are neither * nor key=value,..."
    return {key.strip(): value.strip() for key, value in pairs}


def _ports(cell: str) -> tuple[tuple[int, str], ...]:
    ports = []
    for item in re.split(r"[,\s]+", cell.strip()):
        match = re.fullmatch(r"(\d+)(?:/(TCP|UDP|SCTP))?", item, re.IGNORECASE)
        assert match, f"port {item!r} is not NUMBER or NUMBER/PROTOCOL"
        ports.append((int(match[1]), (match[2] or "TCP").upper()))
    return tuple(ports)


@dataclass(frozen=True)
class Table:
    """One table with the pair columns: the section it stands in and its last column's header."""

    section: str
    why: str
    pairs: tuple[Pair, ...]


def parse_tables(markdown: str) -> list[Table]:
    """Every table whose columns are HEADER (the last one `why`, maybe with a note), cells stripped of backticks,
    with the `##` section it stands in."""
    tables: list[Table] = []
    section, rows, why = "", None, ""
    for line in [*markdown.splitlines(), ""]:
        if not line.strip().startswith("|"):
            if rows is not None:
                tables.append(Table(section, why, tuple(rows)))
                rows = None
            if line.startswith("## "):
                section = line[3:].strip()
            continue
        cells = [c.strip().strip("`").strip() for c in line.strip().strip("|").split("|")]
        lowered = tuple(c.lower() for c in cells)
        if lowered[:5] == HEADER[:5] and len(cells) == len(HEADER) and lowered[5].startswith(HEADER[5]):
            rows, why = [], lowered[5]
        elif rows is not None and not all(re.fullmatch(r":?-+:?", c) for c in cells):
            assert len(cells) == len(HEADER), f"row with {len(cells)} cells: {line}"
            f, fp, t, tp, port, reason = cells
            rows.append(Pair(f, _labels(fp), t, _labels(tp), _ports(port), reason))
    return tables


def _table(section: str, why: str = HEADER[5]) -> list[Pair]:
    found = [t for t in parse_tables(DOC.read_text()) if t.section.lower().startswith(section) and t.why == why]
    assert len(found) == 1, f"{DOC} should have one table ({' | '.join(HEADER[:5])} | {why}) under '## {section}...'"
    return list(found[0].pairs)


@cache
def pairs() -> list[Pair]:
    """The allowed pod-to-pod flows of every prod cluster."""
    return _table("allowed")


@cache
def add_on_pairs() -> list[Pair]:
    """The flows KEDA's HTTP add-on adds where it runs (dev, whose versions scale from zero)."""
    return _table("allowed", "why (http add-on only)")


@cache
def forbidden_pairs() -> list[Pair]:
    """Flows the document names as denied."""
    return _table("forbidden")


# ------------------------------------------------------------------------------------------------ planned clusters


@dataclass(frozen=True)
class Cluster:
    """One planned cluster as the graph sees it: its policies and namespaces, and the pods the plan deploys."""

    environment: str
    name: str
    graph: NetworkGraph
    namespaces: frozenset[str]
    workloads: tuple[Pod, ...]

    def pods(self, namespace: str, labels: Mapping[str, str] | None) -> list[Pod]:
        """The planned pods of a namespace with those labels, with their real labels and named ports; where no
        cluster of the environment plans any (pods a chart or an operator makes), one pod with exactly those
        labels; none where the plan deploys such pods elsewhere only (a model version this cluster does not
        serve)."""
        planned = [p for p in self.workloads if _is(p, namespace, labels)]
        if labels is None:
            return [*planned, Pod(namespace, ARBITRARY)]
        if planned or any(_is(p, namespace, labels) for c in clusters(self.environment) for p in c.workloads):
            return planned
        return [Pod(namespace, dict(labels))]

    def judges(self, pair: Pair) -> bool:
        """Whether the row's pods exist here (both namespaces, and the planned pods it names)."""
        return ({pair.from_namespace, pair.to_namespace} <= self.namespaces
                and bool(self.pods(pair.from_namespace, pair.from_pods))
                and bool(self.pods(pair.to_namespace, pair.to_pods)))

    def connections(self, pair: Pair) -> Iterator[tuple[Pod, Pod, int, str]]:
        """Every (source, destination, port, protocol) the row stands for here."""
        if self.judges(pair):
            for source in self.pods(pair.from_namespace, pair.from_pods):
                for destination in self.pods(pair.to_namespace, pair.to_pods):
                    for port, protocol in pair.ports:
                        yield source, destination, port, protocol

    def verdict(self, source: Pod, destination: Pod, port: int, protocol: str) -> str:
        """The connection and the policies that admit it on each side, for a failure's message."""
        admitted = self.graph.allowing_rules(destination, "Ingress", source, port, protocol)
        sent = self.graph.allowing_rules(source, "Egress", destination, port, protocol)
        return (f"{self.environment}/{self.name}: {source.namespace}/{_show(source.labels)} -> "
                f"{destination.namespace}/{_show(destination.labels)} {port}/{protocol}; ingress by "
                f"{[p.name for p, _ in admitted]}, egress by {[p.name for p, _ in sent]}")


def _cluster(environment: str, name: str, resources: Sequence[ResourceView]) -> Cluster:
    namespaces = {str(r.props["metadata"]["name"]): dict(r.props["metadata"].get("labels") or {})
                  for r in resources if k8s_kind(r.type) == "Namespace"}
    created = {str(r.props["namespace"]) for r in resources
               if k8s_kind(r.type) == "Release" and r.props.get("createNamespace")}
    policies = [r.props for r in resources if k8s_kind(r.type) == "NetworkPolicy"]
    workloads = []
    for r in resources:
        if is_workload(r):
            spec, labels = pod_template(r)
            workloads.append(Pod.of_template(namespace_of(r), labels, spec))
    return Cluster(environment, name, NetworkGraph(policies, namespaces),
                   frozenset({*namespaces, *created, *ALWAYS_THERE}), tuple(workloads))


@cache
def clusters(environment: str) -> tuple[Cluster, ...]:
    """Every cluster of a shipped environment's plan."""
    by_scope: dict[str, list[ResourceView]] = {}
    for view in views(plan_of(environment)):
        if view.scope:
            by_scope.setdefault(view.scope, []).append(view)
    return tuple(_cluster(environment, name, resources) for name, resources in sorted(by_scope.items()))


def _candidates(cluster: Cluster) -> Iterator[Pod]:
    """Every pod that could try a connection: each planned pod, each pod a row of the document names, an unlisted
    pod in every namespace, and one in a tenant's namespace."""
    yield from cluster.workloads
    for pair in [*pairs(), *forbidden_pairs()]:
        if pair.from_namespace in cluster.namespaces:
            yield from cluster.pods(pair.from_namespace, pair.from_pods)
    for namespace in sorted(cluster.namespaces | {TENANT_NAMESPACE}):
        yield Pod(namespace, ARBITRARY)


def _destinations(cluster: Cluster, labels: Mapping[str, str], fixed_port: int) -> list[tuple[Pod, int, str]]:
    """The monitoring pods carrying `labels` that the table lists, on each of their listed ports and on the fixed
    one."""
    found = {}
    for pair in pairs():
        if pair.to_namespace == MONITORING_NAMESPACE and pair.to_pods and labels.items() <= pair.to_pods.items():
            for pod in cluster.pods(pair.to_namespace, pair.to_pods):
                for port, protocol in {*pair.ports, (fixed_port, "TCP")}:
                    found[(tuple(sorted(pod.labels.items())), port, protocol)] = (pod, port, protocol)
    return list(found.values())


TABLES = [(pairs, "prod"), (add_on_pairs, "dev"), (forbidden_pairs, "prod")]
"""Each table of docs/network.md with the environment whose plan it describes."""


# ------------------------------------------------------------------------------------------------ the tables


def test_the_allowed_table_names_monitorings_writers_and_says_why():
    assert any(p.to_pods and LOKI.items() <= p.to_pods.items() for p in pairs()), "no row reaches Loki"
    assert any(p.to_pods and PROMETHEUS.items() <= p.to_pods.items() for p in pairs()), "no row reaches Prometheus"
    assert all(p.why.strip() for table, _ in TABLES for p in table()), "every row says why"


@pytest.mark.parametrize(("table", "environment"), TABLES, ids=[t.__name__ for t, _ in TABLES])
def test_every_row_is_judged_in_some_cluster(table, environment):
    """A row naming a namespace or a planned pod the environment does not have would pass unjudged."""
    assert table()
    unjudged = [str(pair) for pair in table() if not any(c.judges(pair) for c in clusters(environment))]
    assert unjudged == []


@pytest.mark.parametrize(("table", "environment"), TABLES[:2], ids=[t.__name__ for t, _ in TABLES[:2]])
def test_every_listed_pair_is_allowed(table, environment):
    refused = [f"[{pair}] {c.verdict(*connection)}" for c in clusters(environment) for pair in table()
               for connection in c.connections(pair) if not c.graph.allows(*connection)]
    assert refused == []


def test_every_forbidden_example_is_denied():
    allowed = [f"[{pair}] {c.verdict(*connection)}" for c in clusters("prod") for pair in forbidden_pairs()
               for connection in c.connections(pair) if c.graph.allows(*connection)]
    assert allowed == []


@pytest.mark.parametrize(("labels", "fixed_port"), [(LOKI, LOKI_PUSH_PORT), (PROMETHEUS, PROMETHEUS_PORT)],
                         ids=["loki", "prometheus"])
def test_no_pod_outside_the_list_reaches_loki_or_prometheus(labels, fixed_port):
    """Loki's push port and Prometheus' ports (its write endpoint among them) answer exactly the pods the allowed
    table lists for them in every prod cluster: anyone else is denied, and everyone listed is allowed."""
    monitored = [c for c in clusters("prod") if MONITORING_NAMESPACE in c.namespaces]
    assert monitored
    wrong = []
    for c, (destination, port, protocol) in ((m, d) for m in monitored for d in _destinations(m, labels, fixed_port)):
        for source in _candidates(c):
            listed = any(pair.lists(source, destination, port, protocol) for pair in pairs())
            if c.graph.allows(source, destination, port, protocol) != listed:
                wrong.append(f"{'listed, denied' if listed else 'not listed, allowed'}: "
                             f"{c.verdict(source, destination, port, protocol)}")
    assert wrong == []


def test_a_tenants_pod_reaches_no_monitoring_component():
    """A pod of a namespace the stack does not create, unlabelled or wearing the labels of any listed client,
    reaches none of the monitoring pods on any port the table lists for them, in any prod cluster."""
    disguises = [ARBITRARY, *(dict(p.from_pods) for p in pairs() if p.from_pods)]
    tenants = [Pod(TENANT_NAMESPACE, labels) for labels in disguises]
    reached = []
    for c, pair in ((x, pair) for x in clusters("prod") for pair in pairs()):
        if pair.to_namespace != MONITORING_NAMESPACE or MONITORING_NAMESPACE not in c.namespaces:
            continue
        for destination in c.pods(pair.to_namespace, pair.to_pods):
            for port, protocol in pair.ports:
                reached += [c.verdict(t, destination, port, protocol) for t in tenants
                            if c.graph.allows(t, destination, port, protocol)]
    assert reached == []


# ------------------------------------------------------------------------------------------------ the reader


def test_the_table_reader_takes_the_columns_and_their_sections_and_rejects_what_it_cannot_read():
    text = ("# t\n## Allowed\n"
            "| From namespace | From pods | To namespace | To pods | Port | Why |\n|---|---|---|---|---|---|\n"
            "| `monitoring` | `app.kubernetes.io/name=alloy` | monitoring | `app=loki,tier=a` | 3100 | pushes logs |\n"
            "| llmplane | * | kube-system | k8s-app=kube-dns | 53/UDP, 53 | names |\n\nafter the table\n"
            "| from namespace | from pods | to | port | why |\n|---|---|---|---|---|\n| a | b | c | 1 | d |\n"
            "## Forbidden\n| from namespace | from pods | to namespace | to pods | port | why (note) |\n"
            "|---|---|---|---|---|---|\n| a | * | b | * | 80 | no |\n")
    allowed, forbidden = parse_tables(text)
    assert (allowed.section, allowed.why, forbidden.section, forbidden.why) == (
        "Allowed", "why", "Forbidden", "why (note)")
    alloy, dns = allowed.pairs
    assert (alloy.from_namespace, alloy.from_pods) == ("monitoring", {"app.kubernetes.io/name": "alloy"})
    assert alloy.to_pods == {"app": "loki", "tier": "a"} and alloy.ports == ((3100, "TCP"),)
    assert dns.from_pods is None and dns.ports == ((53, "UDP"), (53, "TCP"))
    assert dns.lists(Pod("llmplane", ARBITRARY), Pod("kube-system", {"k8s-app": "kube-dns", "x": "y"}), 53, "UDP")
    assert not dns.lists(Pod("keda", ARBITRARY), Pod("kube-system", {"k8s-app": "kube-dns"}), 53, "UDP")
    assert forbidden.pairs[0].to_pods is None
    header = "| from namespace | from pods | to namespace | to pods | port | why |\n"
    with pytest.raises(AssertionError, match="neither"):
        parse_tables(header + "| a | app | b | * | 80 | x |\n")
    with pytest.raises(AssertionError, match="NUMBER"):
        parse_tables(header + "| a | * | b | * | http | x |\n")
