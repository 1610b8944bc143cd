"""Hybrid links: on-prem joined to every cloud region over two BGP tunnels, keys secret everywhere."""

from __future__ import annotations

import json

import pytest
from llmplane.facts.addressing import allocate, assign_tunnels, problem_with
from llmplane.spec import SpecError

from tests.planning import model_servers, plan_of, plan_with

PSK_FIELDS = ("tunnel1PresharedKey", "tunnel2PresharedKey", "sharedSecret")


def test_every_aws_region_gets_a_vpn_with_two_bgp_tunnels_to_on_prem():
    plan = plan_of("prod")
    link = plan.spec.hybrid[0]
    aws_regions = [c for c in link.cloud_clusters if plan.spec.cluster(c).cloud == "aws"]
    vpns = plan.of_type("aws:ec2/vpnConnection:VpnConnection")
    assert len(vpns) == len(aws_regions)
    for vpn in vpns:
        assert vpn.inputs["staticRoutesOnly"] is False, "routes come from BGP"
        assert vpn.inputs["tunnel1InsideCidr"] != vpn.inputs["tunnel2InsideCidr"]
    gateways = plan.of_type("aws:ec2/customerGateway:CustomerGateway")
    assert {g.inputs["bgpAsn"] for g in gateways} == {str(link.bgp_asn)}
    assert {g.inputs["ipAddress"] for g in gateways} == {link.public_ip}
    attachments = plan.of_type("aws:ec2transitgateway/vpcAttachment:VpcAttachment")
    assert len(attachments) == len(aws_regions)
    routes = plan.of_type("aws:ec2/route:Route")
    assert {r.inputs["destinationCidrBlock"] for r in routes} == set(link.onprem_cidrs)


def test_gcp_region_gets_ha_vpn_with_two_tunnels_and_two_bgp_peers():
    plan = plan_of("prod")
    assert len(plan.of_type("gcp:compute/haVpnGateway:HaVpnGateway")) == 1
    tunnels = plan.of_type("gcp:compute/vPNTunnel:VPNTunnel")
    assert sorted(t.inputs["vpnGatewayInterface"] for t in tunnels) == [0, 1]
    peers = plan.of_type("gcp:compute/routerPeer:RouterPeer")
    assert len(peers) == 2 and {p.inputs["peerAsn"] for p in peers} == {plan.spec.hybrid[0].bgp_asn}
    router = plan.of_type("gcp:compute/router:Router")
    assert [r.inputs["bgp"]["asn"] for r in router if "bgp" in r.inputs] == [64513]


def test_no_preshared_key_appears_in_plain_text_anywhere_in_the_plan():
    plan = plan_of("prod")
    for resource in plan.resources:
        for field in PSK_FIELDS:
            if field in resource.inputs:
                assert resource.inputs[field] == "[secret]", resource.urn
    text = json.dumps([r.as_json() for r in plan.resources])
    assert "mock-generated-key" not in text, "the generated key's value must never be visible"


def test_on_prem_side_configuration_is_a_secret_output_with_every_tunnel():
    plan = plan_of("prod")
    link = [r for r in plan.resources if r.type == "llmplane:hybrid:HybridLink"]
    assert len(link) == 1
    clouds = plan.spec.hybrid[0].cloud_clusters
    keys = [r for r in plan.of_type("random:index/randomPassword:RandomPassword") if "HybridLink" in r.urn]
    assert len(keys) == 2 * len(clouds)


def test_on_prem_serves_the_same_models_and_is_health_checked():
    plan = plan_of("prod")
    onprem_deployments = [d for d in model_servers(plan) if "onprem-dc1-" in d.urn]
    assert {d.inputs["metadata"]["name"] for d in onprem_deployments} == {"llama-3-8b-v1-0-0", "llama-3-8b-v1-1-0"}
    checks = {c.inputs.get("fqdn") for c in plan.of_type("aws:route53/healthCheck:HealthCheck")}
    assert "onprem-dc1.llm.llmplane.dev" in checks


def test_tunnel_inside_addresses_are_unique_link_local_slash_30s():
    assigned = assign_tunnels(plan_of("prod").spec.hybrid)
    cidrs = [c for pair in assigned.values() for c in pair]
    assert len(cidrs) == len(set(cidrs)) == 6
    assert all(problem_with(c) is None for c in cidrs)
    assert allocate(2, taken=["169.254.10.0/30"]) == ["169.254.10.4/30", "169.254.10.8/30"]


def _link(values):
    return values["llmplane:hybrid"][0]


@pytest.mark.parametrize(
    ("mutate", "path", "message"),
    [
        (lambda link: link.update(bgpAsn=65535 + 10), "hybrid.dc1.bgpAsn", "ASN 65545 is not private"),
        (lambda link: link.update(onpremCidrs=["10.10.128.0/17"]), "hybrid.dc1.onpremCidrs",
         "10.10.128.0/17 overlaps aws-use1's network 10.10.0.0/16"),
        (lambda link: link.update(tunnelInsideCidrs=["169.254.1.0/30"] + [f"169.254.20.{i * 4}/30" for i in range(5)]),
         "hybrid.dc1.tunnelInsideCidrs", "169.254.1.0/30 is reserved by the cloud providers"),
        (lambda link: link.update(tunnelInsideCidrs=["169.254.20.0/30"] * 6), "hybrid.dc1.tunnelInsideCidrs",
         "169.254.20.0/30 is already used by link 'dc1'"),
        (lambda link: link.update(tunnelInsideCidrs=["169.254.20.0/29"] + [f"169.254.21.{i * 4}/30" for i in range(5)]),
         "hybrid.dc1.tunnelInsideCidrs", "169.254.20.0/29 must be a /30 inside 169.254.0.0/16"),
        (lambda link: link.update(tunnelInsideCidrs=["169.254.20.0/30"]), "hybrid.dc1.tunnelInsideCidrs",
         "1 CIDRs given for 3 cloud cluster(s)"),
    ],
)
def test_hybrid_spec_errors_name_the_field(mutate, path, message):
    with pytest.raises(SpecError) as error:
        plan_with("prod", lambda values: mutate(_link(values)))
    assert any(p.path == path and p.message == message for p in error.value.problems), error.value.render()


def test_links_can_bring_their_own_preshared_keys_from_secrets():
    plan = plan_with("prod", lambda values: _link(values).update(presharedKeySecrets=True))
    assert [r for r in plan.of_type("random:index/randomPassword:RandomPassword") if "HybridLink" in r.urn] == []
    assert any("dc1-psk-aws-use1-0" in note for note in plan.notes)


def test_on_prem_public_ip_must_be_a_real_address():
    with pytest.raises(SpecError) as error:
        plan_with("prod", lambda values: _link(values).update(publicIp="999.1.1.1"))
    problem = error.value.problems[0]
    assert (problem.path, problem.message, problem.value) == ("hybrid.dc1.publicIp", "not an IPv4 address",
                                                             "'999.1.1.1'")


def test_on_prem_first_in_the_failover_order_serves_as_primary():
    def onprem_first(values):
        values["llmplane:routing"]["failoverOrder"] = ["onprem-dc1", "aws-use1", "aws-usw2", "gcp-usc1"]

    records = plan_with("prod", onprem_first).of_type("aws:route53/record:Record")
    failover = {r.inputs["failoverRoutingPolicies"][0]["type"]: r.inputs["records"] for r in records
                if "failoverRoutingPolicies" in r.inputs}
    assert failover == {"PRIMARY": ["onprem-dc1.llm.llmplane.dev"], "SECONDARY": ["latency.llm.llmplane.dev"]}
