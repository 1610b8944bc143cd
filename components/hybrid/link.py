"""HybridLink: one on-prem site joined to cloud regions over IPsec with BGP, two tunnels per region.

AWS: a customer gateway, a transit gateway attached to the region's VPC, a Site-to-Site VPN connection (two
tunnels) with BGP, and routes to the on-prem networks in the private route tables. GCP: an HA VPN gateway, an
external VPN gateway for the site, a Cloud Router with BGP, two tunnels, two router interfaces and peers.
Pre-shared keys are generated (pulumi-random) or taken from secrets; they are secrets end to end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_gcp as gcp
import pulumi_random as random
from llmplane.components.clusters.base import AwsNetwork, ClusterNetwork
from llmplane.components.options import children_of
from llmplane.facts.addressing import CLOUD_SIDE_ASN, TUNNELS_PER_CONNECTION, hosts, private_asn

AWS_SIDE_ASN = CLOUD_SIDE_ASN["aws"]
GCP_SIDE_ASN = CLOUD_SIDE_ASN["gcp"]
"""Private ASNs of the cloud ends of every link (`facts.addressing.CLOUD_SIDE_ASN`; the on-prem ASN comes from the
spec and must differ from that of every side it peers with: the spec rule `references` and `HybridLinkArgs`)."""


@dataclass(frozen=True)
class OnPremSite:
    """The on-prem end of a link."""

    name: str
    """Site (and link) name: prefixes the cloud resources' names."""
    public_ip: str
    """The site's VPN endpoint address."""
    bgp_asn: int
    """The site's BGP ASN (a private one, other than the cloud sides' 64512 and 64513)."""
    cidrs: Sequence[str]
    """On-prem networks the site announces over BGP (and AWS route tables send to the link)."""


@dataclass(frozen=True)
class LinkSide:
    """One cloud cluster's end of the link: two tunnels."""

    cluster: str
    """The cloud cluster's name."""
    region: str
    """Its region."""
    network: ClusterNetwork
    """Its network handles (`GpuCluster.network`): an AWS side gets a transit gateway and a Site-to-Site VPN, a
    GCP side an HA VPN gateway and a Cloud Router."""
    inside_cidrs: Sequence[str]
    """The two tunnels' inside /30s in 169.254.0.0/16 (`facts.addressing.assign_tunnels` allocates them)."""
    preshared_keys: Sequence[pulumi.Input[str]] = ()
    """The two tunnels' pre-shared keys, when the site brings its own; generated when empty."""


@dataclass(frozen=True)
class HybridLinkArgs:
    """The on-prem site and the cloud clusters it joins."""

    site: OnPremSite
    """The on-prem end."""
    sides: Sequence[LinkSide] = field(default_factory=tuple)
    """The cloud ends, in the order the on-prem configuration lists their tunnels."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags for AWS resources."""
    labels: dict[str, str] = field(default_factory=dict)
    """The same ownership as GCP labels."""

    def __post_init__(self) -> None:
        asn = self.site.bgp_asn
        if not private_asn(asn):
            raise ValueError(f"HybridLink {self.site.name}: the site's BGP ASN {asn} is not private; use one of "
                             "64512-65534 or 4200000000-4294967294")
        for side in self.sides:
            cloud_asn = AWS_SIDE_ASN if isinstance(side.network, AwsNetwork) else GCP_SIDE_ASN
            if asn == cloud_asn:
                raise ValueError(f"HybridLink {self.site.name}: the site's BGP ASN {asn} is the ASN of the cloud "
                                 f"side {side.cluster!r}; BGP peers need different ASNs, so give the site another "
                                 f"private ASN (not {AWS_SIDE_ASN} or {GCP_SIDE_ASN})")


class HybridLink(pulumi.ComponentResource):
    """An on-prem site in the fleet's network; `onprem_config` is what the site's network team applies."""

    onprem_config: pulumi.Output[dict]
    """Secret: per tunnel, the cloud peer address, both ASNs, inside addresses and the pre-shared key."""
    tunnel_count: pulumi.Output[int]
    """Tunnels this link brings up (two per cloud region)."""

    def __init__(self, name: str, args: HybridLinkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:hybrid:HybridLink", name, None, opts)
        self._args = args
        self._opts = opts
        for side in args.sides:
            if len(side.inside_cidrs) != TUNNELS_PER_CONNECTION or len(side.preshared_keys) not in (
                    0, TUNNELS_PER_CONNECTION):
                raise ValueError(f"HybridLink {name}: side {side.cluster!r} needs {TUNNELS_PER_CONNECTION} inside "
                                 f"CIDRs and 0 or {TUNNELS_PER_CONNECTION} pre-shared keys (one per tunnel); got "
                                 f"{len(side.inside_cidrs)} and {len(side.preshared_keys)}")
        tunnels: list[pulumi.Output[dict]] = []
        for side in args.sides:
            tunnels += (self._aws if isinstance(side.network, AwsNetwork) else self._gcp)(name, side)
        link = args.site
        self.onprem_config = pulumi.Output.secret(pulumi.Output.all(*tunnels).apply(lambda items: {
            "site": link.name,
            "onprem_asn": link.bgp_asn,
            "onprem_public_ip": link.public_ip,
            "announce": list(link.cidrs),
            "tunnels": list(items),
        }))
        self.tunnel_count = pulumi.Output.from_input(len(tunnels))
        self.register_outputs({"onprem_config": self.onprem_config, "tunnel_count": self.tunnel_count})

    def _key(self, name: str, side: LinkSide, index: int) -> pulumi.Output[str]:
        if side.preshared_keys:
            return pulumi.Output.secret(side.preshared_keys[index])
        cluster = side.cluster
        generated = random.RandomPassword(f"{name}-{cluster}-psk-{index}", length=40, special=False,
                                          opts=children_of(self, self._opts))
        # AWS refuses keys that start with a zero; a fixed letter first keeps every generated key valid.
        return pulumi.Output.secret(pulumi.Output.concat("k", generated.result))

    def _aws(self, name: str, side: LinkSide) -> list[pulumi.Output[dict]]:
        site, tags, network = self._args.site, self._args.tags, side.network
        assert isinstance(network, AwsNetwork)
        opts = children_of(self, self._opts, provider=network.provider)
        cname = side.cluster
        cidrs = list(side.inside_cidrs)
        keys = [self._key(name, side, i) for i in range(TUNNELS_PER_CONNECTION)]
        customer = aws.ec2.CustomerGateway(f"{name}-{cname}-cgw", bgp_asn=str(site.bgp_asn),
                                           ip_address=site.public_ip, type="ipsec.1",
                                           tags={**tags, "Name": f"{site.name}-onprem"}, opts=opts)
        tgw = aws.ec2transitgateway.TransitGateway(
            f"{name}-{cname}-tgw", amazon_side_asn=AWS_SIDE_ASN, description=f"{site.name} to {cname}",
            default_route_table_association="enable", default_route_table_propagation="enable",
            vpn_ecmp_support="enable", tags=tags, opts=opts)
        aws.ec2transitgateway.VpcAttachment(f"{name}-{cname}-attach", transit_gateway_id=tgw.id,
                                            vpc_id=network.vpc_id, subnet_ids=network.private_subnet_ids, tags=tags,
                                            opts=opts)
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
        for i, table in enumerate(network.private_route_tables):
            for onprem in site.cidrs:
                aws.ec2.Route(f"{name}-{cname}-rt{i}-{onprem.replace('/', '-')}", route_table_id=table,
                              destination_cidr_block=onprem, transit_gateway_id=tgw.id, opts=opts)
        addresses = [vpn.tunnel1_address, vpn.tunnel2_address]
        return [
            pulumi.Output.all(addresses[i], keys[i]).apply(lambda v, i=i: _tunnel(
                "aws", side, i, v[0], AWS_SIDE_ASN, cidrs[i], v[1]))
            for i in range(TUNNELS_PER_CONNECTION)
        ]

    def _gcp(self, name: str, side: LinkSide) -> list[pulumi.Output[dict]]:
        site, network = self._args.site, side.network
        opts = children_of(self, self._opts)
        cluster, cname = side, side.cluster
        cidrs = list(side.inside_cidrs)
        keys = [self._key(name, side, i) for i in range(TUNNELS_PER_CONNECTION)]
        labels = self._args.labels
        gateway = gcp.compute.HaVpnGateway(f"{name}-{cname}-havpn", name=f"{site.name}-{cname}",
                                           region=cluster.region, network=network.network_id, labels=labels, opts=opts)
        external = gcp.compute.ExternalVpnGateway(
            f"{name}-{cname}-peer", name=f"{site.name}-onprem", redundancy_type="SINGLE_IP_INTERNALLY_REDUNDANT",
            interfaces=[{"id": 0, "ip_address": site.public_ip}], labels=labels, opts=opts)
        router = gcp.compute.Router(
            f"{name}-{cname}-router", name=f"{site.name}-{cname}-bgp", region=cluster.region,
            network=network.network_id,
            bgp={"asn": GCP_SIDE_ASN, "advertise_mode": "CUSTOM", "advertised_groups": ["ALL_SUBNETS"]},
            opts=opts)
        tunnels = []
        for i in range(TUNNELS_PER_CONNECTION):
            cloud_ip, onprem_ip = hosts(cidrs[i])
            tunnel = gcp.compute.VPNTunnel(
                f"{name}-{cname}-tunnel-{i}", name=f"{site.name}-{cname}-{i}", region=cluster.region,
                vpn_gateway=gateway.id, vpn_gateway_interface=i, peer_external_gateway=external.id,
                peer_external_gateway_interface=0, shared_secret=keys[i], router=router.id, ike_version=2,
                labels=labels, opts=opts)
            interface = gcp.compute.RouterInterface(
                f"{name}-{cname}-if-{i}", name=f"{site.name}-if-{i}", router=router.name, region=cluster.region,
                ip_range=f"{cloud_ip}/30", vpn_tunnel=tunnel.name, opts=opts)
            gcp.compute.RouterPeer(
                f"{name}-{cname}-bgp-{i}", name=f"{site.name}-peer-{i}", router=router.name, region=cluster.region,
                interface=interface.name, peer_ip_address=onprem_ip, peer_asn=site.bgp_asn,
                advertised_route_priority=100, opts=opts)
            address = gateway.vpn_interfaces.apply(lambda ifaces, i=i: ifaces[i].ip_address if ifaces else None)
            tunnels.append(pulumi.Output.all(address, keys[i]).apply(lambda v, i=i: _tunnel(
                "gcp", side, i, v[0], GCP_SIDE_ASN, cidrs[i], v[1])))
        return tunnels


def _tunnel(cloud: str, side: LinkSide, index: int, peer_ip: str | None, cloud_asn: int, cidr: str,
            key: str) -> dict:
    """One tunnel, vendor-neutral, as the on-prem router needs it."""
    cloud_inside, onprem_inside = hosts(cidr)
    return {
        "cloud": cloud,
        "cluster": side.cluster,
        "region": side.region,
        "tunnel": index + 1,
        "cloud_public_ip": peer_ip,
        "cloud_asn": cloud_asn,
        "inside_cidr": cidr,
        "cloud_inside_ip": cloud_inside,
        "onprem_inside_ip": onprem_inside,
        "ike_version": 2,
        "preshared_key": key,
    }
