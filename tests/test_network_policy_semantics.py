"""policies/network_graph.py against the Kubernetes NetworkPolicy rules it claims to follow: each rule with an
allowed and a denied connection, the verdicts read off the Kubernetes documentation ("Network Policies" concept
page, networking.k8s.io/v1 API reference), not off the evaluator."""

from __future__ import annotations

from typing import Any

import pytest
from llmplane.policies.network_graph import Address, NetworkGraph, Pod, policy_types

WEB = Pod("shop", {"app": "web", "tier": "front"}, {"http": (8080, "TCP")})
DB = Pod("shop", {"app": "db"}, {"sql": (5432, "TCP"), "dns": (53, "UDP")})
CLIENT = Pod("shop", {"app": "client"})
STRANGER = Pod("tenant", {"app": "client"})
OPS = Pod("ops", {"app": "client", "role": "admin"})
NAMESPACES = {"shop": {"team": "shop"}, "tenant": {"team": "tenants"}, "ops": {"team": "ops", "trusted": "yes"}}


def policy(spec: dict[str, Any], namespace: str = "shop", name: str = "p") -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def graph(*specs: dict[str, Any]) -> NetworkGraph:
    return NetworkGraph([policy(s, name=f"p{i}") for i, s in enumerate(specs)], NAMESPACES)


def ingress_to_db(*peers: dict[str, Any], ports: list[dict[str, Any]] | None = None) -> NetworkGraph:
    rule: dict[str, Any] = {"from": list(peers)}
    if ports is not None:
        rule["ports"] = ports
    return graph({"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"], "ingress": [rule]})


# ------------------------------------------------------------------------------------------------ isolation


def test_a_pod_no_policy_selects_is_open_both_ways():
    g = graph({"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"]})
    assert g.allows(CLIENT, WEB, 8080)
    assert not g.allows(CLIENT, DB, 5432)


def test_a_policy_isolates_only_the_directions_it_lists():
    egress_only = graph({"podSelector": {}, "policyTypes": ["Egress"]})
    assert egress_only.allows(Address("203.0.113.9"), DB, 5432)  # ingress untouched
    assert not egress_only.allows(DB, Address("203.0.113.9"), 443)  # egress isolated, nothing allowed


def test_policy_types_default_to_ingress_and_to_egress_only_with_egress_rules():
    ingress_rules_only = {"podSelector": {}, "ingress": [{}]}
    with_egress_rules = {"podSelector": {}, "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}]}]}
    assert policy_types(ingress_rules_only) == ("Ingress",)
    assert policy_types(with_egress_rules) == ("Ingress", "Egress")
    assert policy_types({"podSelector": {}, "egress": []}) == ("Ingress",)
    assert graph(ingress_rules_only).allows(WEB, Address("198.51.100.1"), 443)  # egress not isolated
    assert not graph(with_egress_rules).allows(WEB, Address("198.51.100.1"), 443)
    assert not graph(with_egress_rules).allows(CLIENT, WEB, 8080)  # Ingress isolated, no ingress rule


def test_policies_are_additive():
    g = graph({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [
                  {"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]},
              {"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [
                  {"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}]})
    assert g.allows(WEB, DB, 5432)
    assert g.allows(CLIENT, DB, 5432)
    assert not g.allows(Pod("shop", {"app": "batch"}), DB, 5432)


def test_a_connection_needs_the_sources_egress_and_the_destinations_ingress():
    db_admits_web = {"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [
        {"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]}
    web_sends_to_db = {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"], "egress": [
        {"to": [{"podSelector": {"matchLabels": {"app": "db"}}}]}]}
    web_sends_nowhere = {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"]}
    assert graph(db_admits_web, web_sends_to_db).allows(WEB, DB, 5432)
    assert not graph(db_admits_web, web_sends_nowhere).allows(WEB, DB, 5432)
    assert not graph({"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"]},
                     web_sends_to_db).allows(WEB, DB, 5432)


def test_a_policy_selects_pods_of_its_own_namespace_only():
    g = NetworkGraph([policy({"podSelector": {}, "policyTypes": ["Ingress"]}, namespace="tenant")], NAMESPACES)
    assert g.allows(CLIENT, DB, 5432)
    assert not g.allows(CLIENT, STRANGER, 80)


# ------------------------------------------------------------------------------------------------ peers


def test_a_pod_selector_peer_means_pods_of_the_policys_namespace():
    g = ingress_to_db({"podSelector": {"matchLabels": {"app": "client"}}})
    assert g.allows(CLIENT, DB, 5432)
    assert not g.allows(STRANGER, DB, 5432)  # same labels, another namespace


def test_a_namespace_selector_peer_means_every_pod_of_matching_namespaces():
    g = ingress_to_db({"namespaceSelector": {"matchLabels": {"team": "ops"}}})
    assert g.allows(OPS, DB, 5432)
    assert g.allows(Pod("ops", {"anything": "at-all"}), DB, 5432)
    assert not g.allows(STRANGER, DB, 5432)
    assert not g.allows(CLIENT, DB, 5432)  # the policy's own namespace is not implied


def test_namespaces_are_selectable_by_their_name_label_even_unlisted():
    g = ingress_to_db({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}})
    assert g.allows(Pod("kube-system", {"k8s-app": "kube-dns"}), DB, 5432)
    assert not g.allows(Pod("kube-public", {"k8s-app": "kube-dns"}), DB, 5432)


def test_pod_and_namespace_selector_in_one_peer_must_both_hold():
    g = ingress_to_db({"namespaceSelector": {"matchLabels": {"team": "ops"}},
                       "podSelector": {"matchLabels": {"role": "admin"}}})
    assert g.allows(OPS, DB, 5432)
    assert not g.allows(Pod("ops", {"app": "client"}), DB, 5432)  # right namespace, wrong pod
    assert not g.allows(Pod("tenant", {"role": "admin"}), DB, 5432)  # right pod, wrong namespace


def test_two_peers_are_either_or():
    g = ingress_to_db({"namespaceSelector": {"matchLabels": {"team": "ops"}}},
                      {"podSelector": {"matchLabels": {"role": "admin"}}})
    assert g.allows(Pod("ops", {"app": "client"}), DB, 5432)
    assert g.allows(Pod("shop", {"role": "admin"}), DB, 5432)
    assert not g.allows(Pod("tenant", {"role": "admin"}), DB, 5432)


def test_empty_selectors_select_everything():
    every_namespace = ingress_to_db({"namespaceSelector": {}})
    assert every_namespace.allows(STRANGER, DB, 5432)
    assert not every_namespace.allows(Address("192.0.2.1"), DB, 5432)  # selectors never match an address
    own_namespace = ingress_to_db({"podSelector": {}})
    assert own_namespace.allows(CLIENT, DB, 5432)
    assert not own_namespace.allows(STRANGER, DB, 5432)


def test_ip_block_admits_its_cidr_less_its_exceptions():
    g = ingress_to_db({"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.5.0/24"]}})
    assert g.allows(Address("10.0.1.7"), DB, 5432)
    assert g.allows(Pod("tenant", {}, ip="10.0.2.2"), DB, 5432)
    assert not g.allows(Address("10.0.5.7"), DB, 5432)
    assert not g.allows(Address("10.1.0.1"), DB, 5432)
    assert not g.allows(Address("::ffff:10.0.1.7"), DB, 5432)  # another address family
    assert not g.allows(Pod("tenant", {}), DB, 5432)  # a pod whose address nobody gave


def test_empty_from_admits_every_peer_and_an_empty_rule_list_none():
    open_rule = graph({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"ports": [{"port": 5432}]}]})
    assert open_rule.allows(STRANGER, DB, 5432)
    assert open_rule.allows(Address("192.0.2.1"), DB, 5432)
    assert not open_rule.allows(STRANGER, DB, 22)
    no_rules = graph({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": []})
    assert not no_rules.allows(CLIENT, DB, 5432)


def test_a_peer_must_say_what_it_selects():
    with pytest.raises(ValueError, match="needs podSelector, namespaceSelector or ipBlock"):
        ingress_to_db({}).allows(CLIENT, DB, 5432)
    with pytest.raises(ValueError, match="ipBlock may not also set"):
        ingress_to_db({"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}).allows(CLIENT, DB, 5432)


# ------------------------------------------------------------------------------------------------ ports


def test_a_port_without_protocol_is_tcp():
    g = ingress_to_db({"podSelector": {}}, ports=[{"port": 53}])
    assert g.allows(CLIENT, DB, 53, "TCP")
    assert not g.allows(CLIENT, DB, 53, "UDP")
    udp = ingress_to_db({"podSelector": {}}, ports=[{"protocol": "UDP", "port": 53}])
    assert udp.allows(CLIENT, DB, 53, "UDP")
    assert not udp.allows(CLIENT, DB, 53, "TCP")


def test_a_protocol_without_port_is_every_port_of_it():
    g = ingress_to_db({"podSelector": {}}, ports=[{"protocol": "UDP"}])
    assert g.allows(CLIENT, DB, 4789, "UDP")
    assert not g.allows(CLIENT, DB, 4789, "TCP")


def test_a_named_port_is_resolved_on_the_destination_pod():
    g = graph({"podSelector": {}, "ingress": [{"ports": [{"port": "sql"}]}]})
    assert g.allows(CLIENT, DB, 5432)
    assert not g.allows(CLIENT, DB, 5433)
    other_db = Pod("shop", {"app": "db2"}, {"sql": (3306, "TCP")})
    assert g.allows(CLIENT, other_db, 3306)
    assert not g.allows(CLIENT, other_db, 5432)
    assert not g.allows(CLIENT, WEB, 5432)  # WEB has no port named sql


def test_a_named_port_matches_its_containers_protocol_only():
    g = graph({"podSelector": {}, "ingress": [{"ports": [{"protocol": "UDP", "port": "dns"}]}]})
    assert g.allows(CLIENT, DB, 53, "UDP")
    assert not graph({"podSelector": {}, "ingress": [{"ports": [{"port": "dns"}]}]}).allows(CLIENT, DB, 53, "UDP")


def test_a_named_egress_port_is_resolved_on_the_destination_not_an_address():
    g = graph({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
               "egress": [{"ports": [{"port": "sql"}]}]})
    assert g.allows(WEB, DB, 5432)
    assert not g.allows(WEB, Address("192.0.2.1"), 5432)


def test_end_port_makes_an_inclusive_range():
    g = ingress_to_db({"podSelector": {}}, ports=[{"port": 32000, "endPort": 32768}])
    assert g.allows(CLIENT, DB, 32000)
    assert g.allows(CLIENT, DB, 32768)
    assert not g.allows(CLIENT, DB, 31999)
    assert not g.allows(CLIENT, DB, 32769)


def test_pod_of_template_reads_named_container_ports():
    pod = Pod.of_template("shop", {"app": "db"}, {"containers": [
        {"name": "db", "ports": [{"name": "sql", "containerPort": 5432}, {"containerPort": 9999}]},
        {"name": "dns", "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"}]}]})
    assert pod.ports == {"sql": (5432, "TCP"), "dns": (53, "UDP")}


# ------------------------------------------------------------------------------------------------ label selectors


@pytest.mark.parametrize(("expression", "admitted", "refused"), [
    ({"key": "role", "operator": "In", "values": ["admin", "sre"]}, {"role": "sre"}, {"role": "dev"}),
    ({"key": "role", "operator": "In", "values": ["admin"]}, {"role": "admin"}, {}),
    ({"key": "role", "operator": "NotIn", "values": ["dev"]}, {"role": "sre"}, {"role": "dev"}),
    ({"key": "role", "operator": "NotIn", "values": ["dev"]}, {}, {"role": "dev"}),  # absent key: NotIn holds
    ({"key": "role", "operator": "Exists"}, {"role": ""}, {"app": "x"}),
    ({"key": "role", "operator": "DoesNotExist"}, {"app": "x"}, {"role": "admin"}),
], ids=["In", "In-absent", "NotIn", "NotIn-absent", "Exists", "DoesNotExist"])
def test_match_expressions(expression, admitted, refused):
    g = ingress_to_db({"podSelector": {"matchExpressions": [expression]}})
    assert g.allows(Pod("shop", admitted), DB, 5432)
    assert not g.allows(Pod("shop", refused), DB, 5432)


def test_match_labels_and_expressions_must_all_hold():
    g = ingress_to_db({"podSelector": {"matchLabels": {"app": "client"},
                                       "matchExpressions": [{"key": "role", "operator": "Exists"}]}})
    assert g.allows(Pod("shop", {"app": "client", "role": "x"}), DB, 5432)
    assert not g.allows(Pod("shop", {"app": "client"}), DB, 5432)
    assert not g.allows(Pod("shop", {"app": "web", "role": "x"}), DB, 5432)


def test_an_unknown_operator_is_refused():
    g = ingress_to_db({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}})
    with pytest.raises(ValueError, match="none of In, NotIn, Exists, DoesNotExist"):
        g.allows(CLIENT, DB, 5432)


def test_namespace_labels_carry_the_name_label_the_api_server_sets():
    g = NetworkGraph([policy({"podSelector": {}, "ingress": [
        {"from": [{"namespaceSelector": {"matchLabels": {"trusted": "yes"}}}]}]})], {"ops": {"trusted": "yes"}})
    assert g.allows(Pod("ops", {}), DB, 5432)
    assert not g.allows(Pod("tenant", {}), DB, 5432)
    assert g.namespace_labels("ops") == {"trusted": "yes", "kubernetes.io/metadata.name": "ops"}
    assert g.namespace_labels("elsewhere") == {"kubernetes.io/metadata.name": "elsewhere"}
