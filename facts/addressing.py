"""Network addressing: tunnel inside /30s in 169.254.0.0/16 that no cloud reserves (unique across an
environment), and the GKE secondary ranges derived from a VPC range. The spec rules and the components share it."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator

LINK_LOCAL = ipaddress.ip_network("169.254.0.0/16")
RESERVED = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "169.254.0.0/30", "169.254.1.0/30", "169.254.2.0/30", "169.254.3.0/30", "169.254.4.0/30",
        "169.254.5.0/30", "169.254.169.252/30",
    )
)
"""Inside CIDRs AWS Site-to-Site VPN refuses (AWS VPN user guide, "Tunnel options"), and 169.254.169.252/30
next to the instance metadata address, which GCP also avoids."""

TUNNELS_PER_CONNECTION = 2
"""AWS VPN connections and GCP HA VPN both come as two tunnels."""

CLOUD_SIDE_ASN: dict[str, int] = {"aws": 64512, "gcp": 64513}
"""Private BGP ASNs of the cloud ends of every hybrid link: an AWS side's transit gateway (`amazon_side_asn`,
64512 is also AWS's default) and a GCP side's Cloud Router. A site's ASN must differ from the ASN of every cloud
side it peers with: eBGP needs two autonomous systems, and a router drops routes whose AS path already holds its
own ASN (loop prevention), so a site sharing an ASN with its peer learns none of the cloud's routes."""

PRIVATE_ASN_RANGES: tuple[tuple[int, int], ...] = ((64512, 65534), (4200000000, 4294967294))
"""Private-use BGP ASNs, inclusive (RFC 6996): the 16-bit and the 32-bit ranges."""


def private_asn(asn: int) -> bool:
    """Whether `asn` is a private-use ASN (`PRIVATE_ASN_RANGES`)."""
    return any(low <= asn <= high for low, high in PRIVATE_ASN_RANGES)
ALLOCATION_START = ipaddress.ip_address("169.254.10.0")


def problem_with(cidr: str) -> str | None:
    """Why a tunnel inside CIDR is unusable, or None."""
    try:
        net = ipaddress.ip_network(cidr)
    except ValueError:
        return "is not a CIDR"
    if net.version != 4 or net.prefixlen != 30 or not net.subnet_of(LINK_LOCAL):
        return "must be a /30 inside 169.254.0.0/16"
    if any(net.overlaps(reserved) for reserved in RESERVED):
        return "is reserved by the cloud providers"
    return None


def allocate(count: int, taken: Iterable[str] = ()) -> list[str]:
    """The next `count` free /30s from 169.254.10.0 upwards, skipping reserved and taken ones."""
    used = {ipaddress.ip_network(c) for c in taken}
    free: Iterator[ipaddress.IPv4Network] = (
        net for net in LINK_LOCAL.subnets(new_prefix=30)
        if net.network_address >= ALLOCATION_START and net not in used and problem_with(str(net)) is None
    )
    return [str(next(free)) for _ in range(count)]


def hosts(cidr: str) -> tuple[str, str]:
    """The two usable addresses of a /30: the cloud side first, then the on-prem side."""
    first, second = list(ipaddress.ip_network(cidr).hosts())
    return str(first), str(second)


def assign_tunnels(links: Iterable) -> dict[tuple[str, str], list[str]]:
    """Inside CIDRs per (link, cloud cluster): the link's own list in order when given, else allocated.

    Given CIDRs are consumed two per cloud cluster in `cloud_clusters` order; allocation avoids every CIDR any
    link names, so adding a link never renumbers another.
    """
    links = list(links)
    taken = [cidr for link in links for cidr in link.tunnel_inside_cidrs]
    assigned: dict[tuple[str, str], list[str]] = {}
    for link in links:
        given = list(link.tunnel_inside_cidrs)
        for cluster in link.cloud_clusters:
            if len(given) >= TUNNELS_PER_CONNECTION:
                cidrs, given = given[:TUNNELS_PER_CONNECTION], given[TUNNELS_PER_CONNECTION:]
            else:
                cidrs = allocate(TUNNELS_PER_CONNECTION, taken)
            taken += cidrs
            assigned[(link.name, cluster)] = cidrs
    return assigned


GKE_CONTROL_PLANE_CIDR = "172.16.0.0/28"
"""The range a GKE cluster's private control plane peers into (`master_ipv4_cidr_block`, a /28 as GKE requires);
a GCP cluster's network may not overlap it (GKE refuses the cluster): the spec rule `cluster_targets`."""


def gke_secondary_ranges(network: str) -> dict[str, str]:
    """A GKE cluster's pod and service ranges, derived outside its VPC range in 100.64.0.0/10 (RFC 6598): the
    nodes get the VPC range itself. Used by the GKE cluster component and by the routed-overlap rule."""
    index = int(ipaddress.ip_network(network).network_address.packed[1]) % 32
    pods = ipaddress.ip_network("100.64.0.0/10").subnets(new_prefix=15)
    return {"pods": str(list(pods)[index]), "services": f"100.127.{index * 4}.0/22"}
