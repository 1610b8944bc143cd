"""Facts about clouds: which machine carries which GPUs, and which regions offer them.

A snapshot kept in code so that validation and the offline plan need no cloud API. Sources: AWS "Accelerated
computing instance types" and `aws ec2 describe-instance-type-offerings`; Google Cloud "GPU regions and zones"
and "GPU machine types" (snapshot of 2026). Extend the tables here when a cloud adds capacity.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class MachineShape:
    """The machine type that carries a number of GPUs of one type in one cloud."""

    machine_type: str
    accelerator: str
    """The cloud's own name of the GPU (GKE accelerator type; EC2 GPU label)."""


_AWS_FAMILY = {
    "nvidia-a10g": ("g5", {1: "xlarge", 4: "12xlarge", 8: "48xlarge"}),
    "nvidia-l4": ("g6", {1: "xlarge", 4: "12xlarge", 8: "48xlarge"}),
    "nvidia-l40s": ("g6e", {1: "xlarge", 4: "12xlarge", 8: "48xlarge"}),
    "nvidia-a100-40gb": ("p4d", {8: "24xlarge"}),
    "nvidia-a100-80gb": ("p4de", {8: "24xlarge"}),
    "nvidia-h100-80gb": ("p5", {8: "48xlarge"}),
    "nvidia-h200-141gb": ("p5e", {8: "48xlarge"}),
}
_AWS_ACCELERATOR = {
    "nvidia-a10g": "a10g",
    "nvidia-l4": "l4",
    "nvidia-l40s": "l40s",
    "nvidia-a100-40gb": "a100",
    "nvidia-a100-80gb": "a100",
    "nvidia-h100-80gb": "h100",
    "nvidia-h200-141gb": "h200",
}
_GCP_FAMILY = {
    "nvidia-l4": ("nvidia-l4", {1: "g2-standard-8", 2: "g2-standard-24", 4: "g2-standard-48", 8: "g2-standard-96"}),
    "nvidia-a100-40gb": ("nvidia-tesla-a100", {n: f"a2-highgpu-{n}g" for n in (1, 2, 4, 8)}),
    "nvidia-a100-80gb": ("nvidia-a100-80gb", {n: f"a2-ultragpu-{n}g" for n in (1, 2, 4, 8)}),
    "nvidia-h100-80gb": ("nvidia-h100-80gb", {n: f"a3-highgpu-{n}g" for n in (1, 2, 4, 8)}),
    "nvidia-h200-141gb": ("nvidia-h200-141gb", {8: "a3-ultragpu-8g"}),
}

LOCAL_SSD_GIB = 375
"""Size of one Compute Engine Local SSD disk, GiB: "Each Local SSD disk is 375 GiB in size" (Google Cloud, "About
Local SSD disks", https://cloud.google.com/compute/docs/disks/local-ssd)."""

GCP_FIXED_LOCAL_SSDS: dict[str, int] = {
    # G2: one valid Local SSD count per machine type (Google Cloud, "About Local SSD disks", choose a valid number
    # of Local SSD disks: https://cloud.google.com/compute/docs/disks/local-ssd#choose_number_local_ssds).
    "g2-standard-4": 1, "g2-standard-8": 1, "g2-standard-12": 1, "g2-standard-16": 1, "g2-standard-32": 1,
    "g2-standard-24": 2, "g2-standard-48": 4, "g2-standard-96": 8,
    # A2 Ultra and A3: "every machine type comes with Local SSD storage" (Google Cloud, "Add a Local SSD disk to
    # your VM", https://cloud.google.com/compute/docs/disks/add-local-ssd); the counts are the "machine types
    # that automatically attach Local SSD disks" table,
    # https://cloud.google.com/compute/docs/disks/local-ssd#lssd_disks_fixed (a2-ultragpu 1/2/4/8, a3-highgpu-8g
    # 16), and a3-ultragpu-8g's 32 as GoogleCloudPlatform/cluster-toolkit sets it for GKE
    # (modules/compute/gke-node-pool/disk_definitions.tf, local_ssd_count_ephemeral_storage = 32).
    "a2-ultragpu-1g": 1, "a2-ultragpu-2g": 2, "a2-ultragpu-4g": 4, "a2-ultragpu-8g": 8,
    "a3-highgpu-1g": 2, "a3-highgpu-2g": 4, "a3-highgpu-4g": 8, "a3-highgpu-8g": 16, "a3-ultragpu-8g": 32,
}
"""GCE machine types whose Local SSD count is fixed by the type: a node pool must ask for exactly this many (GKE's
`ephemeral_storage_local_ssd_config.local_ssd_count`), whatever the cache needs. Other types (A2 High) take the
count the cache needs."""


_AWS_EVERYWHERE = {"nvidia-a10g", "nvidia-l4"}
_AWS_BIG = {"nvidia-l40s", "nvidia-a100-40gb", "nvidia-a100-80gb", "nvidia-h100-80gb", "nvidia-h200-141gb"}
AWS_REGIONS: dict[str, set[str]] = {
    "us-east-1": _AWS_EVERYWHERE | _AWS_BIG,
    "us-east-2": _AWS_EVERYWHERE | {"nvidia-l40s", "nvidia-h100-80gb", "nvidia-h200-141gb"},
    "us-west-2": _AWS_EVERYWHERE | _AWS_BIG,
    "us-west-1": {"nvidia-a10g"},
    "ca-central-1": _AWS_EVERYWHERE,
    "eu-west-1": _AWS_EVERYWHERE | {"nvidia-a100-40gb"},
    "eu-west-2": _AWS_EVERYWHERE | {"nvidia-h100-80gb"},
    "eu-west-3": {"nvidia-a10g"},
    "eu-central-1": _AWS_EVERYWHERE | {"nvidia-l40s", "nvidia-a100-40gb"},
    "eu-north-1": _AWS_EVERYWHERE | {"nvidia-h100-80gb"},
    "ap-northeast-1": _AWS_EVERYWHERE | {"nvidia-a100-40gb", "nvidia-h100-80gb"},
    "ap-northeast-2": _AWS_EVERYWHERE,
    "ap-south-1": _AWS_EVERYWHERE | {"nvidia-h100-80gb"},
    "ap-southeast-1": _AWS_EVERYWHERE,
    "ap-southeast-2": _AWS_EVERYWHERE | {"nvidia-h100-80gb"},
    "sa-east-1": {"nvidia-a10g"},
}
"""AWS regions we know, with the GPU types offered there."""

GCP_REGIONS: dict[str, set[str]] = {
    "us-central1": {"nvidia-l4", "nvidia-a100-40gb", "nvidia-a100-80gb", "nvidia-h100-80gb", "nvidia-h200-141gb"},
    "us-east1": {"nvidia-l4", "nvidia-a100-40gb"},
    "us-east4": {"nvidia-l4", "nvidia-a100-80gb", "nvidia-h100-80gb"},
    "us-east5": {"nvidia-h100-80gb", "nvidia-h200-141gb"},
    "us-west1": {"nvidia-l4", "nvidia-a100-40gb"},
    "us-west4": {"nvidia-l4", "nvidia-a100-40gb", "nvidia-h100-80gb"},
    "europe-west1": {"nvidia-l4", "nvidia-h100-80gb"},
    "europe-west2": {"nvidia-l4"},
    "europe-west3": {"nvidia-l4"},
    "europe-west4": {"nvidia-l4", "nvidia-a100-40gb", "nvidia-a100-80gb", "nvidia-h100-80gb"},
    "asia-east1": {"nvidia-l4", "nvidia-a100-40gb"},
    "asia-northeast1": {"nvidia-l4", "nvidia-a100-40gb", "nvidia-h100-80gb"},
    "asia-southeast1": {"nvidia-l4", "nvidia-a100-40gb", "nvidia-a100-80gb", "nvidia-h100-80gb"},
}
"""GCP regions we know, with the GPU types offered there."""

REGIONS_BY_CLOUD: dict[str, dict[str, set[str]]] = {"aws": AWS_REGIONS, "gcp": GCP_REGIONS}


def machine_shape(cloud: str, gpu_type: str, gpus_per_node: int) -> MachineShape | None:
    """The machine carrying `gpus_per_node` GPUs of `gpu_type` in `cloud`, or None if there is none."""
    if cloud == "aws" and gpu_type in _AWS_FAMILY:
        family, sizes = _AWS_FAMILY[gpu_type]
        size = sizes.get(gpus_per_node)
        return MachineShape(f"{family}.{size}", _AWS_ACCELERATOR[gpu_type]) if size else None
    if cloud == "gcp" and gpu_type in _GCP_FAMILY:
        accelerator, machines = _GCP_FAMILY[gpu_type]
        machine = machines.get(gpus_per_node)
        return MachineShape(machine, accelerator) if machine else None
    return None


def shapes_offered(cloud: str, gpu_type: str) -> list[int]:
    """The GPUs-per-node counts that `cloud` offers for `gpu_type`, for error messages."""
    table = {"aws": _AWS_FAMILY, "gcp": _GCP_FAMILY}.get(cloud, {})
    if gpu_type not in table:
        return []
    return sorted(table[gpu_type][1])


def gpu_types_offered(cloud: str) -> list[str]:
    """The GPU types `cloud` has machine shapes for, for error messages."""
    return sorted({"aws": _AWS_FAMILY, "gcp": _GCP_FAMILY}.get(cloud, {}))


_ZONE_FORMS: dict[str, tuple[re.Pattern[str], str]] = {
    "aws": (re.compile(r"^([a-z]{2}(?:-[a-z]+)+-\d+)[a-z]$"), "{region}{letter}"),
    "gcp": (re.compile(r"^([a-z]+-[a-z]+\d+)-[a-z]$"), "{region}-{letter}"),
}
"""How each cloud names a zone after its region, and the region part of the name:

- AWS: an Availability Zone's name is its Region's code followed by a letter (us-east-1a, us-west-2c; AWS
  "Regions and Zones": "the code for an Availability Zone is its Region code followed by a letter identifier").
  Local and Wavelength Zones (us-east-1-bos-1a) and zone IDs (use1-az1) have other forms and are not taken: the
  cluster's subnets are placed by Availability Zone name.
- GCP: a zone's name is its region's name, a dash and a letter (us-central1-a, europe-west4-b; Google Cloud
  "Regions and zones": zones are named <region>-<zone letter>).
"""


def zone_region(cloud: str, zone: str) -> str | None:
    """The region a zone belongs to, read from the form of its name (`_ZONE_FORMS`); None when the name has not
    the cloud's zone form (or the cloud names no zones, on-prem)."""
    form = _ZONE_FORMS.get(cloud)
    match = form[0].fullmatch(zone) if form else None
    return match.group(1) if match else None


def zone_names(cloud: str, region: str, letters: str = "abc") -> list[str]:
    """Zone names of `region` in `cloud` for the given letters, for error messages (whether a region has a zone
    of each letter is not kept here)."""
    form = _ZONE_FORMS.get(cloud)
    return [form[1].format(region=region, letter=letter) for letter in letters] if form else []


def gcp_local_ssd_count(machine_type: str, cache_gb: float) -> int:
    """Local SSDs a GKE node of `machine_type` gets to hold a node cache of `cache_gb` GB (10^9 bytes): the type's
    fixed count (`GCP_FIXED_LOCAL_SSDS`) where it has one, else enough 375 GiB disks for the cache.

    Raises ValueError when the cache is larger than a fixed count holds (compared in whole GB, rounded up, the
    unit cluster arguments carry), naming the machine type, both sizes and the fix."""
    disk_gb = LOCAL_SSD_GIB * 2**30 / 1e9
    fixed = GCP_FIXED_LOCAL_SSDS.get(machine_type)
    if fixed is None:
        return math.ceil(cache_gb / disk_gb)
    if cache_gb > math.ceil(fixed * disk_gb):
        raise ValueError(f"a {cache_gb:g} GB node cache does not fit the {fixed} local SSD(s) of {machine_type} "
                         f"({fixed * LOCAL_SSD_GIB} GiB, {math.ceil(fixed * disk_gb)} GB); use at most "
                         f"{fixed * LOCAL_SSD_GIB} GiB, or a machine type with more local SSDs")
    return fixed
