"""The embedded cluster as an environment wants it: fake nodes shaped like its on-prem GPU pools, and the
Prometheus, simulators and KEDA its autoscalers need."""

from __future__ import annotations

import urllib.parse

from llmplane.spec import PlatformSpec

from .cluster_addons import Addons, SimulatedModel
from .embedded_cluster import FakeNode


def fake_nodes(spec: PlatformSpec) -> list[FakeNode]:
    """One KWOK node per node a pool may grow to (`nodes.max`) in every on-prem cluster: the GPU type, the GPUs per
    node and the pool's name as labels and capacity, as the pool's real nodes would carry them."""
    return [
        FakeNode(name=f"{cluster.name}-{pool.name}-{index}", pool=pool.name, gpu_type=pool.gpu_type,
                 gpus=pool.gpus_per_node, cpu=16 * pool.gpus_per_node, memory_gi=128 * pool.gpus_per_node,
                 zone=f"{cluster.region}-a")
        for cluster in spec.clusters if cluster.cloud == "onprem"
        for pool in cluster.pools
        for index in range(pool.nodes.max)
    ]


def addons(spec: PlatformSpec) -> Addons | None:
    """What runs beside the embedded cluster for this environment: a Prometheus where the spec's
    `observability.prometheusUrl` says (on this machine), a simulator per model served on-prem, and KEDA when
    the environment autoscales with it. None when the environment names no local Prometheus."""
    url = urllib.parse.urlsplit(spec.observability.prometheus_url or "")
    if url.hostname not in ("127.0.0.1", "localhost") or url.port is None:
        return None
    models = []
    for name, model in spec.models.items():
        if any(c.cloud == "onprem" for c in spec.clusters_of(model)):
            versions = [v.version for v in model.versions]
            models.append(SimulatedModel(name, versions[0], versions[1] if len(versions) > 1 else versions[0]))
    return Addons(prometheus_port=url.port, models=tuple(models), keda=spec.autoscaling.keda)
