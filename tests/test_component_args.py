"""Constraints the components' argument docstrings state, enforced where the arguments are built: each fails at
once, before any resource is declared, with a message that says what to do (the spec rules refuse the same
environments earlier, with the field's path: tests/test_spec_rules.py)."""

from __future__ import annotations

import pytest

from components.clusters.base import AwsNetwork, GcpNetwork
from components.hybrid.link import HybridLinkArgs, LinkSide, OnPremSite

INSIDE = ("169.254.20.0/30", "169.254.20.4/30")


def _side(cloud: str) -> LinkSide:
    network = AwsNetwork(provider=None, eks_cluster_name="c", vpc_id="vpc", private_subnet_ids=[],  # type: ignore[arg-type]
                         private_route_tables=()) if cloud == "aws" else GcpNetwork(network_id="net")
    return LinkSide(cluster=f"{cloud}-side", region="r", network=network, inside_cidrs=INSIDE)


@pytest.mark.parametrize(("asn", "cloud"), [(64512, "aws"), (64513, "gcp")])
def test_a_site_asn_equal_to_a_cloud_sides_is_refused(asn, cloud):
    with pytest.raises(ValueError) as info:
        HybridLinkArgs(site=OnPremSite("dc1", "203.0.113.10", asn, ["10.100.0.0/16"]), sides=[_side(cloud)])
    assert str(info.value) == (f"HybridLink dc1: the site's BGP ASN {asn} is the ASN of the cloud side "
                               f"'{cloud}-side'; BGP peers need different ASNs, so give the site another private ASN "
                               "(not 64512 or 64513)")


def test_the_other_clouds_asn_is_free():
    HybridLinkArgs(site=OnPremSite("dc1", "203.0.113.10", 64513, ["10.100.0.0/16"]), sides=[_side("aws")])


@pytest.mark.parametrize("asn", [0, 64511, 65535, 4294967295])
def test_a_public_site_asn_is_refused(asn):
    with pytest.raises(ValueError, match=f"the site's BGP ASN {asn} is not private; use one of 64512-65534 or "
                                         "4200000000-4294967294"):
        HybridLinkArgs(site=OnPremSite("dc1", "203.0.113.10", asn, ["10.100.0.0/16"]))
