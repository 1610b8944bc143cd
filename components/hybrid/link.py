"""HybridLink: one on-prem site joined to cloud regions over IPsec with BGP, two tunnels per region.

AWS: a customer gateway, a transit gateway attached to the region's VPC, a Site-to-Site VPN connection (two
tunnels) with BGP, and routes to the on-prem networks in the private route tables. GCP: an HA VPN gateway, an
external VPN gateway for the site, a Cloud Router with BGP, two tunnels, two router interfaces and peers.
Pre-shared keys are generated (pulumi-random) or taken from secrets; they are secrets end to end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_gcp as gcp
import pulumi_random as random

from stacks.spec.addressing import TUNNELS_PER_CONNECTION, hosts
from stacks.spec.models import Cluster, HybridLink as LinkSpec

AWS_SIDE_ASN = 64512
GCP_SIDE_ASN = 64513
"""Private ASNs of the cloud ends of every link (the on-prem ASN comes from the spec and must differ)."""


@dataclass(frozen=True)
class AwsSide:
    """What the link needs from an AWS cluster."""

    cluster: Cluster
    provider: pulumi.ProviderResource
    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[list[str]]
    route_table_ids: list[pulumi.Input[str]]


@dataclass(frozen=True)
class GcpSide:
    """What the link needs from a GCP cluster."""

    cluster: Cluster
    network_id: pulumi.Input[str]


@dataclass(frozen=True)
class HybridLinkArgs:
    """The link's spec section, the cloud ends, and the inside addresses assigned to each."""

    link: LinkSpec
    aws: list[AwsSide] = field(default_factory=list)
    gcp: list[GcpSide] = field(default_factory=list)
    inside_cidrs: dict[str, list[str]] = field(default_factory=dict)
    """Tunnel inside /30s per cloud cluster name, two each."""
    preshared_keys: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    """Keys from secrets per `<cluster>-<n>`; generated where absent."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags for AWS resources."""
    labels: dict[str, str] = field(default_factory=dict)
    """The same ownership as GCP labels."""


class HybridLink(pulumi.ComponentResource):
    """An on-prem site in the fleet's network; `onprem_config` is what the site's network team applies."""

    onprem_config: pulumi.Output[dict]
    """Secret: per tunnel, the cloud peer address, both ASNs, inside addresses and the pre-shared key."""
    tunnel_count: pulumi.Output[int]
    """Tunnels this link brings up (two per cloud region)."""

    def __init__(self, name: str, args: HybridLinkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:hybrid:HybridLink", name, None, opts)
        self._args = args
        tunnels: list[pulumi.Output[dict]] = []
        for side in args.aws:
            tunnels += self._aws(name, side)
        for side in args.gcp:
            tunnels += self._gcp(name, side)
        link = args.link
        self.onprem_config = pulumi.Output.secret(pulumi.Output.all(*tunnels).apply(lambda items: {
            "site": link.name,
            "onprem_asn": link.bgp_asn,
            "onprem_public_ip": link.public_ip,
            "announce": list(link.onprem_cidrs),
            "tunnels": list(items),
        }))
        self.tunnel_count = pulumi.Output.from_input(len(tunnels))
        self.register_outputs({"onprem_config": self.onprem_config, "tunnel_count": self.tunnel_count})

    def _key(self, name: str, cluster: str, index: int) -> pulumi.Output[str]:
        given = self._args.preshared_keys.get(f"{cluster}-{index}")
        if given is not None:
            return pulumi.Output.secret(given)
        generated = random.RandomPassword(f"{name}-{cluster}-psk-{index}", length=40, special=False,
                                          opts=pulumi.ResourceOptions(parent=self))
        # AWS refuses keys that start with a zero; a fixed letter first keeps every generated key valid.
        return pulumi.Output.secret(pulumi.Output.concat("k", generated.result))

    def _aws(self, name: str, side: AwsSide) -> list[pulumi.Output[dict]]:
        spec, tags = self._args.link, self._args.tags
        opts = pulumi.ResourceOptions(parent=self, provider=side.provider)
        cname = side.cluster.name
        cidrs = self._args.inside_cidrs[cname]
        keys = [self._key(name, cname, i) for i in range(TUNNELS_PER_CONNECTION)]
        customer = aws.ec2.CustomerGateway(f"{name}-{cname}-cgw", bgp_asn=str(spec.bgp_asn),
                                           ip_address=spec.public_ip, type="ipsec.1",
                                           tags={**tags, "Name": f"{spec.name}-onprem"}, opts=opts)
        tgw = aws.ec2transitgateway.TransitGateway(
            f"{name}-{cname}-tgw", amazon_side_asn=AWS_SIDE_ASN, description=f"{spec.name} to {cname}",
            default_route_table_association="enable", default_route_table_propagation="enable",
            vpn_ecmp_support="enable", tags=tags, opts=opts)
        aws.ec2transitgateway.VpcAttachment(f"{name}-{cname}-attach", transit_gateway_id=tgw.id,
                                            vpc_id=side.vpc_id, subnet_ids=side.subnet_ids, tags=tags, opts=opts)
        vpn = aws.ec2.VpnConnection(
            f"{name}-{cname}-vpn",
            customer_gateway_id=customer.id,
            transit_gateway_id=tgw.id,
            type="ipsec.1",
            static_routes_only=False,
            tunnel1_inside_cidr=cidrs[0],
            tunnel2_inside_cidr=cidrs[1],
            tunnel1_preshared_key=keys[0],
            tunnel2_preshared_key=keys[1],
            tags=tags,
            opts=opts,
        )
        for i, table in enumerate(side.route_table_ids):
            for onprem in spec.onprem_cidrs:
                aws.ec2.Route(f"{name}-{cname}-rt{i}-{onprem.replace('/', '-')}", route_table_id=table,
                              destination_cidr_block=onprem, transit_gateway_id=tgw.id, opts=opts)
        addresses = [vpn.tunnel1_address, vpn.tunnel2_address]
        return [
            pulumi.Output.all(addresses[i], keys[i]).apply(lambda v, i=i: _tunnel(
                "aws", side.cluster, i, v[0], AWS_SIDE_ASN, cidrs[i], v[1]))
            for i in range(TUNNELS_PER_CONNECTION)
        ]

    def _gcp(self, name: str, side: GcpSide) -> list[pulumi.Output[dict]]:
        spec = self._args.link
        opts = pulumi.ResourceOptions(parent=self)
        cluster, cname = side.cluster, side.cluster.name
        cidrs = self._args.inside_cidrs[cname]
        keys = [self._key(name, cname, i) for i in range(TUNNELS_PER_CONNECTION)]
        labels = self._args.labels
        gateway = gcp.compute.HaVpnGateway(f"{name}-{cname}-havpn", name=f"{spec.name}-{cname}",
                                           region=cluster.region, network=side.network_id, labels=labels, opts=opts)
        external = gcp.compute.ExternalVpnGateway(
            f"{name}-{cname}-peer", name=f"{spec.name}-onprem", redundancy_type="SINGLE_IP_INTERNALLY_REDUNDANT",
            interfaces=[{"id": 0, "ip_address": spec.public_ip}], labels=labels, opts=opts)
        router = gcp.compute.Router(
            f"{name}-{cname}-router", name=f"{spec.name}-{cname}-bgp", region=cluster.region,
            network=side.network_id,
            bgp={"asn": GCP_SIDE_ASN, "advertise_mode": "CUSTOM", "advertised_groups": ["ALL_SUBNETS"]},
            opts=opts)
        tunnels = []
        for i in range(TUNNELS_PER_CONNECTION):
            cloud_ip, onprem_ip = hosts(cidrs[i])
            tunnel = gcp.compute.VPNTunnel(
                f"{name}-{cname}-tunnel-{i}", name=f"{spec.name}-{cname}-{i}", region=cluster.region,
                vpn_gateway=gateway.id, vpn_gateway_interface=i, peer_external_gateway=external.id,
                peer_external_gateway_interface=0, shared_secret=keys[i], router=router.id, ike_version=2,
                labels=labels, opts=opts)
            interface = gcp.compute.RouterInterface(
                f"{name}-{cname}-if-{i}", name=f"{spec.name}-if-{i}", router=router.name, region=cluster.region,
                ip_range=f"{cloud_ip}/30", vpn_tunnel=tunnel.name, opts=opts)
            gcp.compute.RouterPeer(
                f"{name}-{cname}-bgp-{i}", name=f"{spec.name}-peer-{i}", router=router.name, region=cluster.region,
                interface=interface.name, peer_ip_address=onprem_ip, peer_asn=spec.bgp_asn,
                advertised_route_priority=100, opts=opts)
            address = gateway.vpn_interfaces.apply(lambda ifaces, i=i: ifaces[i].ip_address if ifaces else None)
            tunnels.append(pulumi.Output.all(address, keys[i]).apply(lambda v, i=i: _tunnel(
                "gcp", cluster, i, v[0], GCP_SIDE_ASN, cidrs[i], v[1])))
        return tunnels


def _tunnel(cloud: str, cluster: Cluster, index: int, peer_ip: str | None, cloud_asn: int, cidr: str,
            key: str) -> dict:
    """One tunnel, vendor-neutral, as the on-prem router needs it."""
    cloud_inside, onprem_inside = hosts(cidr)
    return {
        "cloud": cloud,
        "cluster": cluster.name,
        "region": cluster.region,
        "tunnel": index + 1,
        "cloud_public_ip": peer_ip,
        "cloud_asn": cloud_asn,
        "inside_cidr": cidr,
        "cloud_inside_ip": cloud_inside,
        "onprem_inside_ip": onprem_inside,
        "ike_version": 2,
        "preshared_key": key,
    }
