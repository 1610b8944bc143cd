"""Rules that relate several fields of a spec; each returns every problem it finds."""

from __future__ import annotations

import ipaddress
import math
from collections import Counter
from collections.abc import Callable, Iterable

from llmplane.facts.addressing import (
    CLOUD_SIDE_ASN,
    GKE_CONTROL_PLANE_CIDR,
    PRIVATE_ASN_RANGES,
    TUNNELS_PER_CONNECTION,
    gke_secondary_ranges,
    private_asn,
    problem_with,
)
from llmplane.facts.clouds import (
    GCP_FIXED_LOCAL_SSDS,
    LOCAL_SSD_GIB,
    REGIONS_BY_CLOUD,
    machine_shape,
    shapes_offered,
    zone_names,
    zone_region,
)
from llmplane.facts.gpus import GPU_MEMORY_GB
from llmplane.facts.loading import GIB, INSTANCE_STORE_GB
from llmplane.monitoring.vllm_metrics import TIME_TO_FIRST_TOKEN

from .engine_rules import ENGINE_RULES
from .errors import Problem, inline, show
from .experiment_rules import EXPERIMENT_RULES
from .gateway_rules import TENANCY_RULES
from .models import Artifact, Bounds, Cluster, GpuPool, Model, PlatformSpec

KV_CACHE_SHARE = 0.10
"""Share of vLLM's usable GPU memory that must stay free of weights, for the KV cache."""

Rule = Callable[[PlatformSpec], Iterable[Problem]]


def _duplicates(names: Iterable[str]) -> list[str]:
    return sorted(name for name, count in Counter(names).items() if count > 1)


def unique_names(spec: PlatformSpec) -> Iterable[Problem]:
    """Cluster names, pool names in a cluster, deployed versions of a model and link names are unique."""
    for dup in _duplicates(c.name for c in spec.clusters):
        yield Problem("clusters", f"cluster name '{dup}' is used twice", dup, "give every cluster its own name")
    for cluster in spec.clusters:
        for dup in _duplicates(p.name for p in cluster.pools):
            yield Problem(
                f"clusters.{cluster.name}.pools", f"pool name '{dup}' is used twice", dup,
                "give every pool its own name")
    for name, model in spec.models.items():
        for dup in _duplicates(v.version for v in model.versions):
            yield Problem(
                f"models.{name}.versions", f"version {dup} is deployed twice", dup, "list each version once"
            )
    for dup in _duplicates(link.name for link in spec.hybrid):
        yield Problem("hybrid", f"link name '{dup}' is used twice", dup, "give every link its own name")
    for cluster in spec.clusters:
        for dup in _duplicates(cluster.zones):
            yield Problem(f"clusters.{cluster.name}.zones", f"zone {dup} is listed twice", dup, "list each zone once")
    for link in spec.hybrid:
        for dup in _duplicates(link.cloud_clusters):
            yield Problem(f"hybrid.{link.name}.cloudClusters", f"cluster '{dup}' is listed twice", dup,
                          "list each cloud cluster once")
        for dup in _duplicates(str(ipaddress.ip_network(c, strict=False)) for c in link.onprem_cidrs):
            yield Problem(f"hybrid.{link.name}.onpremCidrs", f"network {dup} is listed twice", dup,
                          "list each on-prem network once")


def _bounds(path: str, bounds: Bounds) -> Iterable[Problem]:
    if bounds.min > bounds.max:
        yield Problem(path, f"min {bounds.min} is above max {bounds.max}", f"min={bounds.min}, max={bounds.max}",
                      "make min at most max")


def min_at_most_max(spec: PlatformSpec) -> Iterable[Problem]:
    """Every min/max pair is ordered: node pools, model replicas, version replicas, on-demand base."""
    for cluster in spec.clusters:
        for pool in cluster.pools:
            path = f"clusters.{cluster.name}.pools.{pool.name}"
            yield from _bounds(f"{path}.nodes", pool.nodes)
            if pool.on_demand_base > pool.nodes.max:
                yield Problem(f"{path}.onDemandBase", f"on-demand base {pool.on_demand_base} exceeds max nodes "
                              f"{pool.nodes.max}", str(pool.on_demand_base), "lower onDemandBase or raise nodes.max")
    for name, model in spec.models.items():
        yield from _bounds(f"models.{name}.replicas", model.replicas)
        for v in model.versions:
            if v.replicas:
                yield from _bounds(f"models.{name}.versions.{v.version}.replicas", v.replicas)


def regions_and_gpus(spec: PlatformSpec) -> Iterable[Problem]:
    """A cloud cluster's region exists in its cloud, offers the pools' GPU types, and has that machine shape."""
    for cluster in spec.clusters:
        regions = REGIONS_BY_CLOUD.get(cluster.cloud)
        if regions is None:
            continue
        path = f"clusters.{cluster.name}"
        if cluster.region not in regions:
            yield Problem(f"{path}.region", f"{show(cluster.region)} is not a region of {cluster.cloud}",
                          show(cluster.region), f"use one of: {', '.join(sorted(regions))}")
            continue
        for pool in cluster.pools:
            ppath = f"{path}.pools.{pool.name}"
            offered = regions[cluster.region]
            if pool.gpu_type not in offered:
                yield Problem(f"{ppath}.gpuType", f"{pool.gpu_type} is not offered in {cluster.cloud} "
                              f"{cluster.region}", pool.gpu_type, f"use one of: {', '.join(sorted(offered))}")
            elif machine_shape(cluster.cloud, pool.gpu_type, pool.gpus_per_node) is None:
                sizes = ", ".join(map(str, shapes_offered(cluster.cloud, pool.gpu_type)))
                yield Problem(f"{ppath}.gpusPerNode", f"{cluster.cloud} has no machine with {pool.gpus_per_node} x "
                              f"{pool.gpu_type}", str(pool.gpus_per_node), f"use one of: {sizes}")


def cloud_zones(spec: PlatformSpec) -> Iterable[Problem]:
    """A cloud cluster's zones are zones of its region, read from each zone's name (`facts.clouds.zone_region`:
    AWS us-east-1a is in us-east-1, GCP europe-west4-a in europe-west4); an AWS cluster spreads over at least two
    zones (EKS requires subnets in at least two Availability Zones)."""
    for cluster in spec.clusters:
        regions = REGIONS_BY_CLOUD.get(cluster.cloud)
        if regions is None or cluster.region not in regions:
            continue  # on-prem sites name no cloud zones; an unknown region is said by `regions_and_gpus`
        path, examples = f"clusters.{cluster.name}.zones", ", ".join(zone_names(cluster.cloud, cluster.region))
        for zone in cluster.zones:
            region = zone_region(cluster.cloud, zone)
            if region == cluster.region:
                continue
            message = (f"{inline(zone)} is not a {cluster.cloud} zone name" if region is None else
                       f"zone {zone} is in region {region}, not in the cluster's region {cluster.region}")
            yield Problem(path, message, inline(zone), f"use zones of {cluster.region}, e.g. {examples}")
        if cluster.cloud == "aws" and len(cluster.zones) < 2:
            yield Problem(path, f"an EKS cluster needs subnets in at least two zones; {len(cluster.zones)} given",
                          ", ".join(map(inline, cluster.zones)) or "(none)",
                          f"list two or more zones of {cluster.region}, e.g. {examples}")


def _pools_for(spec: PlatformSpec, model: Model):
    for cluster in spec.clusters_of(model):
        yield cluster, model.pool_in(cluster)


def placement(spec: PlatformSpec) -> Iterable[Problem]:
    """A model names existing clusters, and its pool exists in each of them."""
    known = {c.name for c in spec.clusters}
    for name, model in spec.models.items():
        for missing in sorted(set(model.clusters or []) - known):
            yield Problem(f"models.{name}.clusters", f"cluster '{missing}' does not exist", missing,
                          f"use one of: {', '.join(sorted(known))}")
        for cluster, pool in _pools_for(spec, model):
            if pool is None:
                yield Problem(f"models.{name}.pool", f"cluster '{cluster.name}' has no pool '{model.pool}'",
                              model.pool, f"add the pool to {cluster.name} or use one of: "
                              f"{', '.join(p.name for p in cluster.pools)}")


def traffic_weights(spec: PlatformSpec) -> Iterable[Problem]:
    """Serving versions' weights sum to 100; shadows take 0 and there is something to shadow."""
    for name, model in spec.models.items():
        path = f"models.{name}.versions"
        serving = [v for v in model.versions if v.role != "shadow"]
        total = sum(v.weight for v in serving)
        shown = ", ".join(f"{v.version}={v.weight}" for v in model.versions)
        if total != 100:
            yield Problem(path, f"traffic weights sum to {total}, they must sum to 100", shown,
                          "change the weights of the serving versions so they add up to 100")
        for v in model.versions:
            if v.role == "shadow" and v.weight != 0:
                yield Problem(f"{path}.{v.version}.weight", f"shadow version {v.version} has weight {v.weight}",
                              str(v.weight), "set weight 0: a shadow gets mirrored traffic and never answers users")
        if not serving:
            yield Problem(path, "every version is a shadow", shown, "mark at least one version stable")


def _weights_named(name: str, model: Model, version: str, artifact: Artifact) -> Iterable[Problem]:
    """A catalog version names its weights: its own uri and sha256, or `weightsOf` another version that has them
    (and nothing of its own, so the two can never disagree)."""
    path = f"models.{name}.catalog.{version}"
    own = [key for key, value in (("uri", artifact.uri), ("sha256", artifact.sha256), ("mirrors", artifact.mirrors),
                                  ("files", artifact.files)) if value]
    target = artifact.weights_of
    if target is None:
        for key in ("uri", "sha256"):
            if getattr(artifact, key) is None:
                yield Problem(f"{path}.{key}", f"version {version} has no {key}", "missing",
                              f"give its weights' {key}, or weightsOf: <version> to serve another version's weights")
        return
    if own:
        yield Problem(f"{path}.weightsOf", f"version {version} takes the weights of {target} but also sets "
                      f"{', '.join(own)}", target, f"remove {', '.join(own)}: weightsOf serves {target}'s unchanged")
    source = model.catalog.get(target)
    if source is None or target == version:
        yield Problem(f"{path}.weightsOf", f"{target} is not another version in the catalog of {name}", target,
                      f"name a published version ({', '.join(v for v in sorted(model.catalog) if v != version)})")
    elif source.weights_of is not None:
        yield Problem(f"{path}.weightsOf", f"{target} itself takes the weights of {source.weights_of}", target,
                      f"name {source.weights_of}, the version that holds the weights")


def catalog_registry(spec: PlatformSpec) -> Iterable[Problem]:
    """Only versions listed in the model's catalog can be deployed; catalog URIs are immutable."""
    for name, model in spec.models.items():
        listed = sorted(model.catalog)
        for v in model.versions:
            if v.version not in model.catalog:
                yield Problem(f"models.{name}.versions.{v.version}", f"version {v.version} is not in the catalog of "
                              f"{name}", v.version, f"deploy a catalog version ({', '.join(listed)}) or publish "
                              f"{v.version} in models.{name}.catalog with its uri and sha256")
        for version, artifact in model.catalog.items():
            yield from _weights_named(name, model, version, artifact)
            for where, uri in (("uri", artifact.uri), *((f"mirrors.{c}", u) for c, u in artifact.mirrors.items())):
                if uri and "latest" in uri.lower().split("/")[-2:]:
                    yield Problem(f"models.{name}.catalog.{version}.{where}",
                                  "the URI names a moving 'latest' location", show(uri),
                                  "point at a versioned, immutable object")


def reachable_weights(spec: PlatformSpec) -> Iterable[Problem]:
    """A GKE cluster reads weights with Workload Identity: from gs:// or https://, not from s3://."""
    for name, model in spec.models.items():
        for cluster in spec.clusters_of(model):
            if cluster.cloud != "gcp":
                continue
            for v in model.versions:
                uri = model.artifact(v.version).uri_for("gcp") if v.version in model.catalog else ""
                if uri.startswith("s3://"):
                    yield Problem(f"models.{name}.catalog.{v.version}.mirrors", f"GCP cluster '{cluster.name}' "
                                  f"cannot read {uri} with its workload identity", show(uri),
                                  "add mirrors: {gcp: gs://...} with the same archive, or an https:// uri")


def _crowded(model: Model, pool: GpuPool) -> bool:
    """Whether the weights' shard leaves less than `KV_CACHE_SHARE` of a GPU's usable memory to the KV cache."""
    usable = GPU_MEMORY_GB[pool.gpu_type] * 1e9 * model.engine.gpu_memory_utilization
    return model.weight_bytes() / model.engine.tensor_parallel_size > usable * (1 - KV_CACHE_SHARE)


def fits_gpus(spec: PlatformSpec) -> Iterable[Problem]:
    """Tensor parallelism fits a node, and each shard leaves room for the KV cache."""
    for name, model in spec.models.items():
        tp = model.engine.tensor_parallel_size
        for cluster, pool in _pools_for(spec, model):
            if pool is None:
                continue
            path = f"models.{name}.engine.tensorParallelSize"
            if tp > pool.gpus_per_node:
                yield Problem(path, f"tensor parallel size {tp} exceeds the {pool.gpus_per_node} GPUs per node of "
                              f"{cluster.name}/{pool.name}", str(tp),
                              f"use at most {pool.gpus_per_node}, or a pool with more GPUs per node")
                continue
            usable = GPU_MEMORY_GB[pool.gpu_type] * model.engine.gpu_memory_utilization
            per_gpu = model.weight_bytes() / tp / 1e9
            if _crowded(model, pool):
                yield Problem(f"models.{name}", f"{per_gpu:.1f} GB of weights per GPU leave no room for the KV cache "
                              f"on {pool.gpu_type} ({usable:.1f} GB usable, {KV_CACHE_SHARE:.0%} kept for KV cache) in "
                              f"{cluster.name}", f"{model.parameters_billions}B {model.dtype}, tp={tp}",
                              "raise tensorParallelSize, quantize to a smaller dtype, or use a larger GPU")


KV_BLOCK_TOKENS = 16
"""Tokens per KV-cache block: vLLM's default block size on CUDA; a sequence takes whole blocks."""


def sequence_fits(spec: PlatformSpec) -> Iterable[Problem]:
    """maxModelLen is within the model's context window, and one sequence of that length fits the KV cache of a
    replica on every pool the model runs on: vLLM refuses to start otherwise (a longer length than the model's
    `max_position_embeddings`: vllm/config/model.py `_get_and_verify_max_len`; no room for one full sequence:
    vllm/v1/core/kv_cache_utils.py `check_enough_kv_cache_memory`). The room counted is the GPU's share vLLM may
    use less the weights' shard (`Model.kv_room_bytes`), more than vLLM will find once activations take theirs: a
    length refused here is refused by vLLM, one passed may still be short."""
    for name, model in spec.models.items():
        length, path = model.engine.max_model_len, f"models.{name}.engine.maxModelLen"
        context = model.architecture.context_length
        if length > context:
            yield Problem(path, f"{length} tokens exceed the model's context window of {context} tokens "
                          "(architecture.contextLength); vLLM refuses to start with it", str(length),
                          f"use at most {context}, or serve a variant of the model with a longer context")
        per_token = model.kv_bytes_per_token()
        need = -(-length // KV_BLOCK_TOKENS) * KV_BLOCK_TOKENS * per_token
        short: dict[str, tuple[float, list[str]]] = {}
        for cluster, pool in _pools_for(spec, model):
            if pool is None or model.engine.tensor_parallel_size > pool.gpus_per_node or _crowded(model, pool):
                continue  # no pool, or tensor parallelism or weights that do not fit: `placement`, `fits_gpus`
            room = model.kv_room_bytes(pool.gpu_type)
            if need <= room:
                continue
            short.setdefault(pool.gpu_type, (room, []))[1].append(cluster.name)
        if short:
            gpu, (room, clusters) = min(short.items(), key=lambda item: item[1][0])
            holds = int(room // per_token) // KV_BLOCK_TOKENS * KV_BLOCK_TOKENS
            yield Problem(path, f"one sequence of {length} tokens needs {need / 1e9:.1f} GB of KV cache per GPU; "
                          f"{gpu} keeps {room / 1e9:.1f} GB for it after the weights ({', '.join(clusters)}), and "
                          "vLLM refuses to start without room for one", str(length),
                          f"use at most {holds} tokens, raise tensorParallelSize or gpuMemoryUtilization, or use a "
                          "GPU with more memory")


def engine_batch(spec: PlatformSpec) -> Iterable[Problem]:
    """An engine step's token budget holds one decode token of every batched sequence (vLLM refuses to start
    otherwise)."""
    for name, model in spec.models.items():
        engine = model.engine
        budget = engine.max_num_batched_tokens
        if budget is not None and budget < engine.max_num_seqs:
            yield Problem(f"models.{name}.engine.maxNumBatchedTokens", f"{budget} tokens per step cannot carry "
                          f"the {engine.max_num_seqs} sequences of maxNumSeqs", str(budget),
                          f"raise it to at least {engine.max_num_seqs}, or lower maxNumSeqs")


def pool_capacity(spec: PlatformSpec) -> Iterable[Problem]:
    """A pool's max GPUs cover the max replicas x GPUs per replica of everything scheduled on it."""
    for cluster in spec.clusters:
        for pool in cluster.pools:
            demand = 0
            users = []
            for name, model in spec.models.items():
                if model.pool == pool.name and cluster in spec.clusters_of(model):
                    for v in model.versions:
                        need = model.replicas_of(v).max * model.engine.tensor_parallel_size
                        demand += need
                        users.append(f"{name}:{v.version}={need}")
            capacity = pool.nodes.max * pool.gpus_per_node
            if demand > capacity:
                yield Problem(f"clusters.{cluster.name}.pools.{pool.name}.nodes.max",
                              f"{capacity} GPUs at most, but the models on it may need {demand}",
                              ", ".join(users), f"raise nodes.max to at least {-(-demand // pool.gpus_per_node)} or "
                              "lower the replica maximums")


def references(spec: PlatformSpec) -> Iterable[Problem]:
    """Routing and hybrid links name clusters that exist, of the right kind."""
    by_name = {c.name: c for c in spec.clusters}
    for name in spec.routing.failover_order:
        if name not in by_name:
            yield Problem("routing.failoverOrder", f"cluster '{name}' does not exist", name,
                          f"use one of: {', '.join(by_name)}")
    for link in spec.hybrid:
        path = f"hybrid.{link.name}"
        onprem = by_name.get(link.onprem_cluster)
        if onprem is None or onprem.cloud != "onprem":
            yield Problem(f"{path}.onpremCluster", f"'{link.onprem_cluster}' is not an on-prem cluster",
                          link.onprem_cluster, "name a cluster with cloud: onprem")
        for name in link.cloud_clusters:
            if name not in by_name or by_name[name].cloud == "onprem":
                yield Problem(f"{path}.cloudClusters", f"'{name}' is not a cloud cluster", name,
                              "name an aws or gcp cluster")
        if not private_asn(link.bgp_asn):
            yield Problem(f"{path}.bgpAsn", f"ASN {link.bgp_asn} is not private", str(link.bgp_asn),
                          "use a private ASN: " + " or ".join(f"{low}-{high}" for low, high in PRIVATE_ASN_RANGES))
        peers = [name for name in link.cloud_clusters
                 if name in by_name and CLOUD_SIDE_ASN.get(by_name[name].cloud) == link.bgp_asn]
        if peers:
            cloud = by_name[peers[0]].cloud
            taken = sorted(set(CLOUD_SIDE_ASN.values()))
            yield Problem(f"{path}.bgpAsn", f"ASN {link.bgp_asn} is the {cloud} side's own ASN on this link "
                          f"({', '.join(peers)}); BGP peers need different ASNs", str(link.bgp_asn),
                          f"give the site another private ASN (not {' or '.join(map(str, taken))}), e.g. 65010")
        cloud_cidrs = [(c.name, ipaddress.ip_network(c.network_cidr, strict=False))
                       for c in spec.clusters if c.network_cidr]
        for cidr in link.onprem_cidrs:
            net = ipaddress.ip_network(cidr, strict=False)
            for cname, other in cloud_cidrs:
                if net.overlaps(other):
                    yield Problem(f"{path}.onpremCidrs", f"{cidr} overlaps {cname}'s network {other}", cidr,
                                  "renumber so on-prem and cloud networks do not overlap")


def _routed_groups(spec: PlatformSpec) -> list[list[tuple[str, str, ipaddress.IPv4Network]]]:
    """Networks that can reach each other, grouped: the clusters and sites joined by hybrid links (a cloud cluster
    on two links joins both sites), each with every range it routes: cloud VPCs, GKE's pod and service ranges, the
    sites' on-prem networks. Entries are (path, label, network)."""
    by_name = {c.name: c for c in spec.clusters}
    groups: list[tuple[set[str], list[tuple[str, str, ipaddress.IPv4Network]]]] = []
    for link in spec.hybrid:
        members = {link.onprem_cluster, *link.cloud_clusters}
        nets = [(f"hybrid.{link.name}.onpremCidrs", f"{link.name}'s on-prem network {c}",
                 ipaddress.ip_network(c, strict=False)) for c in link.onprem_cidrs]
        joined = [g for g in groups if g[0] & members]
        for g in joined:
            groups.remove(g)
            members |= g[0]
            nets += g[1]
        groups.append((members, nets))
    result = []
    for members, nets in groups:
        for name in sorted(members):
            cluster = by_name.get(name)
            if cluster is None or not cluster.network_cidr:
                continue
            path = f"clusters.{name}.networkCidr"
            nets.append((path, f"{name}'s network {cluster.network_cidr}",
                         ipaddress.ip_network(cluster.network_cidr, strict=False)))
            if cluster.cloud == "gcp":
                for role, cidr in gke_secondary_ranges(cluster.network_cidr).items():
                    nets.append((path, f"{name}'s GKE {role} range {cidr}", ipaddress.ip_network(cidr)))
        result.append(nets)
    return result


def routed_networks_disjoint(spec: PlatformSpec) -> Iterable[Problem]:
    """No two networks that route to each other over the hybrid links overlap: cloud VPCs, GKE pod and service
    ranges and on-prem networks alike (a route to an overlapping range silently goes to the wrong side)."""
    reported = set()
    for nets in _routed_groups(spec):
        for i, (path, label, net) in enumerate(nets):
            for other_path, other_label, other in nets[i + 1:]:
                key = frozenset((label, other_label))
                if label == other_label or key in reported or not net.overlaps(other):
                    continue
                if {path.split(".")[0], other_path.split(".")[0]} == {"hybrid", "clusters"} and \
                        "GKE" not in label + other_label:
                    continue  # said by `references`, which compares a site's networks with every cloud VPC
                reported.add(key)
                yield Problem(path, f"{label} overlaps {other_label}, and the two route to each other", str(net),
                              "renumber one of them so no routed networks overlap")


def slo_measurable(spec: PlatformSpec) -> Iterable[Problem]:
    """A TTFT objective can only be measured at a bucket bound of vLLM's TTFT histogram."""
    bounds = TIME_TO_FIRST_TOKEN.buckets
    for name, model in spec.models.items():
        if model.slo.ttft_seconds not in bounds:
            nearest = min(bounds, key=lambda b: abs(b - model.slo.ttft_seconds))
            yield Problem(f"models.{name}.slo.ttftSeconds", f"{model.slo.ttft_seconds} s is not a bucket bound of "
                          f"{TIME_TO_FIRST_TOKEN.name}, so no query can measure it", str(model.slo.ttft_seconds),
                          f"use a bucket bound such as {nearest}")


def tunnel_addresses(spec: PlatformSpec) -> Iterable[Problem]:
    """Given tunnel inside CIDRs are usable /30s, unique across links, two per cloud cluster."""
    seen: dict[str, str] = {}
    for link in spec.hybrid:
        path = f"hybrid.{link.name}.tunnelInsideCidrs"
        if link.tunnel_inside_cidrs and len(link.tunnel_inside_cidrs) != TUNNELS_PER_CONNECTION * len(
                link.cloud_clusters):
            yield Problem(path, f"{len(link.tunnel_inside_cidrs)} CIDRs given for {len(link.cloud_clusters)} cloud "
                          f"cluster(s)", ", ".join(map(inline, link.tunnel_inside_cidrs)),
                          f"give {TUNNELS_PER_CONNECTION} per cloud cluster, or none to have them allocated")
        for cidr in link.tunnel_inside_cidrs:
            reason = problem_with(cidr)
            if reason:
                yield Problem(path, f"{inline(cidr)} {reason}", inline(cidr),
                              "use a /30 from 169.254.6.0 to 169.254.169.248, e.g. 169.254.20.0/30")
            elif cidr in seen:
                yield Problem(path, f"{inline(cidr)} is already used by link '{seen[cidr]}'", inline(cidr),
                              "give every tunnel its own /30")
            else:
                seen[cidr] = link.name


NETWORK_PREFIXES: dict[str, tuple[int, int]] = {"aws": (16, 22), "gcp": (16, 24)}
"""Prefix lengths a cloud cluster's network may have. AWS: the VPC is cut into a private subnet (prefix + 3) and a
public one (prefix + 6) per zone (`components.clusters.aws.subnet_cidrs`), and AWS takes subnets of /16 to /28
only, so a /23 or /24 VPC would get /29 or /30 public subnets it refuses. GCP: the range is the nodes' subnet."""
NETWORK_HOLDS = {"aws": "a private and a public subnet per zone (AWS subnets are /28 or larger)",
                 "gcp": "the nodes' subnet"}


def cluster_targets(spec: PlatformSpec) -> Iterable[Problem]:
    """Cloud clusters have a network (a GKE one clear of its control plane's range); on-prem clusters have a
    kubeconfig or a render folder."""
    for cluster in spec.clusters:
        path = f"clusters.{cluster.name}"
        if cluster.cloud != "onprem" and cluster.network_cidr is None:
            yield Problem(f"{path}.networkCidr", "a cloud cluster needs a network CIDR", "(missing)",
                          "add networkCidr, e.g. 10.10.0.0/16")
        elif cluster.cloud != "onprem" and not NETWORK_PREFIXES[cluster.cloud][0] <= ipaddress.ip_network(
                cluster.network_cidr).prefixlen <= NETWORK_PREFIXES[cluster.cloud][1]:
            low, high = NETWORK_PREFIXES[cluster.cloud]
            yield Problem(f"{path}.networkCidr", f"a network on {cluster.cloud} must be between /{low} and /{high} to "
                          f"hold {NETWORK_HOLDS[cluster.cloud]}", str(cluster.network_cidr),
                          f"use a /{low} to /{high}, e.g. 10.10.0.0/16")
        elif cluster.cloud == "gcp" and ipaddress.ip_network(cluster.network_cidr).overlaps(
                ipaddress.ip_network(GKE_CONTROL_PLANE_CIDR)):
            yield Problem(f"{path}.networkCidr", f"the network overlaps {GKE_CONTROL_PLANE_CIDR}, the range GKE's "
                          "private control plane peers into", str(cluster.network_cidr),
                          f"use a range outside {GKE_CONTROL_PLANE_CIDR}, e.g. 10.30.0.0/16")
        targets = [name for name, value in (("kubeconfigSecret", cluster.kubeconfig_secret),
                                            ("kubeconfigFile", cluster.kubeconfig_file),
                                            ("renderDir", cluster.render_dir)) if value]
        if cluster.cloud == "onprem" and not targets:
            yield Problem(path, "an on-prem cluster needs a kubeconfig or a render folder", "(neither)",
                          "add kubeconfigSecret (a secret config key), kubeconfigFile or renderDir")
        elif len(targets) > 1:
            yield Problem(path, "a cluster has one target", ", ".join(targets),
                          "keep one of kubeconfigSecret, kubeconfigFile and renderDir")
        if cluster.cloud != "onprem" and cluster.addons == "external":
            yield Problem(f"{path}.addons", "only an on-prem cluster can run its add-ons outside the stack",
                          "external", "remove addons (a cloud cluster gets KEDA and monitoring by their charts)")
        if cluster.cloud != "onprem" and targets:
            yield Problem(f"{path}.{targets[0]}", "only an on-prem cluster takes a kubeconfig or a render folder; "
                          "llmplane creates cloud clusters and reaches them itself", cluster.cloud,
                          f"remove {targets[0]}, or make the cluster cloud: onprem")


CACHE_MEDIUM = {"aws": "nvme", "gcp": "local-ssd", "onprem": "host-path"}
"""The node-cache medium of each cloud: AWS instance store NVMe (RAID0), GKE local SSDs, an on-prem host folder."""


def _cached_models(spec: PlatformSpec, cluster: Cluster, pool: GpuPool) -> Iterable[tuple[str, Model]]:
    """Models on `pool` of `cluster` that load their weights through the pool's node cache."""
    for name, model in spec.models.items():
        if model.pool == pool.name and cluster in spec.clusters_of(model) and model.weights.node_cache and \
                model.streams_weights():
            yield name, model


def cache_need_gib(spec: PlatformSpec, cluster: Cluster, pool: GpuPool) -> tuple[float, list[str]]:
    """GiB of weights the pool's node cache must hold (every deployed version of every model loading through it),
    and the versions that make it up."""
    need, users = 0.0, []
    for name, model in _cached_models(spec, cluster, pool):
        gib = model.weight_bytes() / GIB
        for held in sorted({model.weights_version(v.version) for v in model.versions if v.version in model.catalog}):
            need += gib
            users.append(f"{name}:{held}={gib:.1f} GiB")
    return need, users


def streamed_weights(spec: PlatformSpec) -> Iterable[Problem]:
    """A streamed model lists a sha256 per file of every deployed version, safetensors among them, and loads from
    node caches: the prefetcher checks each file against its sha256 as it writes it there, before any replica
    reads it (the streamer itself verifies nothing)."""
    for name, model in spec.models.items():
        if not model.streams_weights():
            continue
        for v in model.versions:
            if v.version not in model.catalog:
                continue
            artifact = model.artifact(v.version)
            path = f"models.{name}.catalog.{v.version}.files"
            if not artifact.files:
                yield Problem(path, f"version {v.version} is streamed (weights.loadFormat: runai_streamer) but lists "
                              "no per-file sha256", "(missing)",
                              "add files: {<file>: <sha256>} for every file of the version (model-00001-of-00004."
                              "safetensors, config.json, tokenizer.json, ...), or use loadFormat: download")
            elif not any(f.endswith(".safetensors") for f in artifact.files):
                yield Problem(path, "no .safetensors file is listed; the model streamer loads only safetensors",
                              ", ".join(sorted(artifact.files)),
                              "list the version's .safetensors files with their sha256")
        if not model.weights.node_cache:
            yield Problem(f"models.{name}.weights.nodeCache", "streamed weights are checked against their sha256 only "
                          "as the prefetcher writes them into the node cache", "false",
                          "set nodeCache: true and give the model's pools a nodeCache, or use loadFormat: download")
            continue
        for cluster, pool in _pools_for(spec, model):
            if pool is not None and pool.node_cache is None:
                need = math.ceil(cache_need_gib(spec, cluster, pool)[0])
                yield Problem(f"clusters.{cluster.name}.pools.{pool.name}.nodeCache", f"model '{name}' streams its "
                              "weights, which are verified into the pool's node cache, but the pool has none",
                              "(missing)", f"add nodeCache: {{sizeGi: {need}, medium: {CACHE_MEDIUM[cluster.cloud]}}}, "
                              f"or use loadFormat: download for {name}")


def node_caches(spec: PlatformSpec) -> Iterable[Problem]:
    """A node cache sits on its cloud's local medium, fits the machine's instance store (AWS) or the local SSDs a GCE
    machine type comes with where their count is fixed (G2, A2 Ultra, A3), holds every version deployed through it;
    a compile cache needs a node cache to live on."""
    for cluster in spec.clusters:
        for pool in cluster.pools:
            cache = pool.node_cache
            if cache is None:
                continue
            path = f"clusters.{cluster.name}.pools.{pool.name}.nodeCache"
            expected = CACHE_MEDIUM[cluster.cloud]
            if cache.medium != expected:
                yield Problem(f"{path}.medium", f"a cache on {cluster.cloud} nodes is on {expected}, not "
                              f"{cache.medium}", cache.medium, f"use medium: {expected}")
            if cache.path is not None and cache.medium != "host-path":
                yield Problem(f"{path}.path", f"only a host-path cache takes a path; {cache.medium} is mounted by "
                              "the node's set-up", cache.path, "remove path")
            shape = machine_shape(cluster.cloud, pool.gpu_type, pool.gpus_per_node)
            if cluster.cloud == "aws" and cache.medium == "nvme" and shape is not None:
                store = INSTANCE_STORE_GB.get(shape.machine_type, 0) * 1e9 / GIB
                if cache.size_gi > store:
                    yield Problem(f"{path}.sizeGi", f"{cache.size_gi} GiB do not fit the {store:.0f} GiB of NVMe "
                                  f"instance store of {shape.machine_type}", str(cache.size_gi),
                                  f"use at most {math.floor(store)} GiB, or a machine with more instance store")
            fixed = GCP_FIXED_LOCAL_SSDS.get(shape.machine_type) if cluster.cloud == "gcp" and shape else None
            if cache.medium == "local-ssd" and fixed is not None and cache.size_gi > fixed * LOCAL_SSD_GIB:
                yield Problem(f"{path}.sizeGi", f"{shape.machine_type} comes with exactly {fixed} local SSD"
                              f"{'s' if fixed > 1 else ''} of {LOCAL_SSD_GIB} GiB; {cache.size_gi} GiB do not fit",
                              str(cache.size_gi), f"use at most {fixed * LOCAL_SSD_GIB} GiB, or a machine type with "
                              "more local SSDs (more GPUs per node)")
            need, users = cache_need_gib(spec, cluster, pool)
            if cache.size_gi < need:
                yield Problem(f"{path}.sizeGi", f"{cache.size_gi} GiB cannot hold the {need:.1f} GiB of weights "
                              "deployed through the cache", ", ".join(users),
                              f"raise sizeGi to at least {math.ceil(need)}")
    for name, model in spec.models.items():
        if not model.compile_cache:
            continue
        for cluster, pool in _pools_for(spec, model):
            if pool is not None and pool.node_cache is None:
                yield Problem(f"models.{name}.compileCache", f"the compile cache is kept on the node cache, and "
                              f"{cluster.name}/{pool.name} has none", "true",
                              f"add a nodeCache to {cluster.name}/{pool.name}, or set compileCache: false")


def warm_headroom(spec: PlatformSpec) -> Iterable[Problem]:
    """Warm slots, scheduled ones included, fit in the pool next to the most replicas its models may run; a slot
    is a replica's worth of GPUs (the largest tensor-parallel size on the pool)."""
    for cluster in spec.clusters:
        for pool in cluster.pools:
            headroom = pool.warm_headroom
            if headroom is None:
                continue
            path = f"clusters.{cluster.name}.pools.{pool.name}.warmHeadroom"
            models = [m for m in spec.models.values() if m.pool == pool.name and cluster in spec.clusters_of(m)]
            if not models:
                if headroom.slots or headroom.schedules:
                    yield Problem(path, "no model runs on the pool, so its slots would warm nothing",
                                  f"slots={headroom.slots}", "remove warmHeadroom or place a model on the pool")
                continue
            tp = max(m.engine.tensor_parallel_size for m in models)
            replicas = sum(m.replicas_of(v).max * m.engine.tensor_parallel_size for m in models for v in m.versions)
            scheduled = sum(s.slots for s in headroom.schedules)
            capacity = pool.nodes.max * pool.gpus_per_node
            need = replicas + (headroom.slots + scheduled) * tp
            if replicas <= capacity < need:
                yield Problem(f"{path}.slots", f"{headroom.slots} warm slots and {scheduled} scheduled ones of {tp} "
                              f"GPU(s) each, next to the models' {replicas} GPUs at their replica maximums, need "
                              f"{need} GPUs; the pool has {capacity}",
                              f"slots={headroom.slots}, scheduled={scheduled}, nodes.max={pool.nodes.max}",
                              f"raise nodes.max to at least {-(-need // pool.gpus_per_node)} or lower the slots")


def scale_from_zero(spec: PlatformSpec) -> Iterable[Problem]:
    """A model at zero replicas wakes on the first request the gateway holds for it."""
    a = spec.autoscaling
    if not a.scale_to_zero or a.activation_queue < 1:
        return
    asleep = [f"{name}:{v.version}" for name, m in spec.models.items() for v in m.versions if m.replicas_of(v).min == 0]
    if asleep:
        yield Problem("autoscaling.activationQueue", f"a version at zero replicas wakes only when more than "
                      f"{a.activation_queue:g} requests are held for it, so a lone request waits for another",
                      f"{a.activation_queue:g} (scaling to zero: {', '.join(asleep)})",
                      "set activationQueue: 0 so the first held request wakes the version")


RULES: tuple[Rule, ...] = (
    unique_names,
    min_at_most_max,
    regions_and_gpus,
    cloud_zones,
    placement,
    traffic_weights,
    catalog_registry,
    reachable_weights,
    fits_gpus,
    sequence_fits,
    engine_batch,
    pool_capacity,
    references,
    routed_networks_disjoint,
    tunnel_addresses,
    slo_measurable,
    cluster_targets,
    streamed_weights,
    node_caches,
    warm_headroom,
    scale_from_zero,
)


def check(spec: PlatformSpec) -> list[Problem]:
    """Every problem every rule finds, the engine's (`engine_rules.py`), the experiments' (`experiment_rules.py`) and
    the gateway sections' (`gateway_rules.py`) included."""
    return [problem for rule in (*RULES, *ENGINE_RULES, *EXPERIMENT_RULES, *TENANCY_RULES) for problem in rule(spec)]
