"""The spec's inference routing as plain values: which versions get an InferencePool, where each model fails over
to, and which routes must accept failed-over requests. compose() turns them into components."""

from __future__ import annotations

from collections.abc import Collection

from components.gateway.routing import Hop, ServedVersion, fallback_chain
from components.networking.global_routing import regional_hostname
from components.serving.vllm_service import resource_name

from .spec.models import Cluster, Model, PlatformSpec


def installs_gateway(cluster: Cluster) -> bool:
    """Whether the stack installs the gateway by its charts: not where add-ons run outside it (no Helm there)."""
    return cluster.addons == "helm"


def pooled_versions(model_name: str, model: Model, held: Collection[str]) -> list[str]:
    """The versions of a model that get an InferencePool in a gateway cluster: every version that answers users,
    except those that may be at zero replicas, which KEDA's interceptor must hold requests for (an endpoint
    picker with no endpoint would refuse them). Shadows only receive mirrored copies, sent to their Service."""
    return [v.version for v in model.versions
            if v.role != "shadow" and resource_name(model_name, v.version) not in held]


def failover_chains(spec: PlatformSpec) -> dict[tuple[str, str], list[Hop]]:
    """Each (cluster, model) whose model declares a fallback, with the hops its requests take, in order, when
    its pools there cannot answer. Only gateway clusters fail over or are failed over to."""
    hostnames = {c.name: regional_hostname(c.name, spec.routing.hostname) for c in spec.clusters}
    chains: dict[tuple[str, str], list[Hop]] = {}
    for name, model in spec.models.items():
        if model.fallback is None:
            continue
        clusters = [c.name for c in spec.clusters_of(model) if installs_gateway(c)]
        target = spec.models[model.fallback.model] if model.fallback.model else None
        fallback_clusters = ([c.name for c in spec.clusters_of(target) if installs_gateway(c)]
                             if target is not None else [])
        for cluster in clusters:
            chain = fallback_chain(name, cluster, clusters, hostnames, other_clusters=model.fallback.other_clusters,
                                   fallback_model=model.fallback.model, fallback_version=model.fallback.version,
                                   fallback_clusters=fallback_clusters)
            if chain:
                chains[(cluster, name)] = chain
    return chains


def failover_targets(chains: dict[tuple[str, str], list[Hop]]) -> set[tuple[str, str]]:
    """The (cluster, model) routes some chain fails over into: they add the failover entry rules."""
    return {(hop.cluster, hop.model) for chain in chains.values() for hop in chain}


def served_versions(model: Model, pooled: Collection[str]) -> list[ServedVersion]:
    """The pooled versions a failed-over request may land on, with their weights (relative, as Gateway API
    weights are; a held version has no pool to enter through); equal shares if all of them weigh 0."""
    versions = [v for v in model.versions if v.version in pooled]
    total = sum(v.weight for v in versions)
    if total == 0:
        return [ServedVersion(v.version, 1) for v in versions]
    return [ServedVersion(v.version, v.weight) for v in versions]
