"""Constraints the components' argument docstrings state, enforced where the arguments are built: each fails at
once, before any resource is declared, with a message that says what to do (the spec rules refuse the same
environments earlier, with the field's path: tests/test_spec_rules.py)."""

from __future__ import annotations

import pytest
from llmplane.components.clusters.aws import check_args
from llmplane.components.clusters.base import AwsNetwork, ClusterArgs, GcpNetwork, GpuNodePool
from llmplane.components.clusters.gcp import local_ssds
from llmplane.components.gateway.version_split import VersionShare
from llmplane.components.hybrid.link import HybridLinkArgs, LinkSide, OnPremSite
from llmplane.components.labels import Ownership
from llmplane.spec.autoscaling_policy import AutoscalingPolicy

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


# --- clusters -----------------------------------------------------------------------------------------------------

OWNERS = Ownership(environment="dev", owner="platform-team", cost_center="ml")
L4 = GpuNodePool(name="inference", gpu_type="nvidia-l4", gpus_per_node=1)


def test_pool_names_are_unique_in_a_cluster():
    with pytest.raises(ValueError) as info:
        ClusterArgs(name="aws-use1", region="us-east-1", ownership=OWNERS, pools=[L4, L4])
    assert str(info.value) == ("cluster aws-use1: pool name(s) 'inference' used twice; give every pool its own name "
                               "(it is the nodes' `llmplane.dev/pool` label)")


@pytest.mark.parametrize(("cidr", "zones"), [(None, ("us-east-1a", "us-east-1b")), ("10.10.0.0/16", ("us-east-1a",))])
def test_an_aws_cluster_needs_a_network_and_two_zones_before_any_resource(cidr, zones):
    args = ClusterArgs(name="aws-use1", region="us-east-1", ownership=OWNERS, pools=[L4], zones=zones,
                       network_cidr=cidr)
    with pytest.raises(ValueError) as info:
        check_args("aws-use1", args)
    assert str(info.value) == ("AwsGpuCluster aws-use1: give `network_cidr` (the VPC range) and `zones` (at least 2: "
                               f"EKS needs subnets in two Availability Zones); got network_cidr={cidr!r}, "
                               f"zones={list(zones)!r}")


@pytest.mark.parametrize(("gpu_type", "gpus", "cache_gb", "count"), [
    ("nvidia-l4", 1, 376, 1),  # g2-standard-8 comes with one local SSD: two (376 GB > 375) is refused by GCE
    ("nvidia-l4", 2, 100, 2),  # g2-standard-24: two, however small the cache
    ("nvidia-l4", 8, 3000, 8),  # g2-standard-96
    ("nvidia-h100-80gb", 8, 400, 16),  # a3-highgpu-8g
    ("nvidia-a100-80gb", 4, 1600, 4),  # a2-ultragpu-4g: 1500 GiB, 1611 GB
    ("nvidia-a100-40gb", 1, 800, 2),  # a2-highgpu-1g fixes no count: 375 GiB disks for 800 GB
])
def test_a_gke_pool_asks_for_its_machine_types_local_ssd_count(gpu_type, gpus, cache_gb, count):
    assert local_ssds("GcpGpuCluster gcp-usc1", GpuNodePool("inference", gpu_type, gpus, local_cache_gb=cache_gb)) \
        == count


def test_a_gke_node_cache_larger_than_the_machines_fixed_local_ssds_is_refused():
    pool = GpuNodePool(name="inference", gpu_type="nvidia-l4", gpus_per_node=1, local_cache_gb=500)
    with pytest.raises(ValueError) as info:
        local_ssds("GcpGpuCluster gcp-usc1", pool)
    assert str(info.value) == ("GcpGpuCluster gcp-usc1: pool 'inference' local_cache_gb=500: a 500 GB node cache "
                               "does not fit the 1 local SSD(s) of g2-standard-8 (375 GiB, 403 GB); use at most "
                               "375 GiB, or a machine type with more local SSDs (the spec's nodeCache.sizeGi)")


def test_an_aws_node_cache_fits_the_machines_instance_store():
    pool = GpuNodePool(name="inference", gpu_type="nvidia-l4", gpus_per_node=1, local_cache_gb=251)
    args = ClusterArgs(name="aws-use1", region="us-east-1", ownership=OWNERS, pools=[pool],
                       zones=("us-east-1a", "us-east-1b"), network_cidr="10.10.0.0/16")
    with pytest.raises(ValueError) as info:
        check_args("aws-use1", args)
    assert str(info.value) == ("AwsGpuCluster aws-use1: pool 'inference' asks for a 251 GB node cache, but g6.xlarge "
                               "has 250 GB of instance store; use at most 250 or a machine with more")
    check_args("aws-use1", ClusterArgs(name="aws-use1", region="us-east-1", ownership=OWNERS,
                                       pools=[GpuNodePool("inference", "nvidia-l4", 1, local_cache_gb=250)],
                                       zones=("us-east-1a", "us-east-1b"), network_cidr="10.10.0.0/16"))


# --- gateway and autoscaling --------------------------------------------------------------------------------------


@pytest.mark.parametrize("weight", [-10, 101])
def test_a_version_share_is_a_percent(weight):
    """Shares of -10 and 110 sum to 100, yet no version can take a negative share."""
    with pytest.raises(ValueError) as info:
        VersionShare("1.0.0", weight)
    assert str(info.value) == f"version split: version '1.0.0' has weight {weight}; give a percent from 0 to 100"


def _policy(**change) -> AutoscalingPolicy:
    values = dict(served_model_name="llama-3-8b:1.0.0", min_replicas=1, max_replicas=4, keda=True,
                  queue_per_replica=4, kv_cache_target=0.8, scale_up_seconds=30, scale_down_seconds=600,
                  polling_seconds=15, scale_to_zero=False, activation_queue=0, cooldown_seconds=900)
    return AutoscalingPolicy(**{**values, **change})


@pytest.mark.parametrize(("change", "message"), [
    ({"kv_cache_target": 0}, "kv_cache_target 0 is not a usage share; give one above 0 and at most 1"),
    ({"kv_cache_target": 80}, "kv_cache_target 80 is not a usage share; give one above 0 and at most 1"),
    ({"min_replicas": 5}, "min_replicas 5 and max_replicas 4; give 0 <= min <= max"),
])
def test_an_autoscaling_policy_has_a_usage_share_and_ordered_bounds(change, message):
    with pytest.raises(ValueError) as info:
        _policy(**change)
    assert str(info.value) == f"autoscaling policy of llama-3-8b:1.0.0: {message}"
    _policy()
