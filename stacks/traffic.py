"""The spec's inference routing as plain values: which versions get an InferencePool, and how each model's traffic
divides between its versions at the gateway. compose() turns them into components."""

from __future__ import annotations

from collections.abc import Collection

from llmplane.components.gateway.version_split import VersionShare
from llmplane.components.serving.vllm_service import resource_name
from llmplane.spec.models import Cluster, Model


def installs_gateway(cluster: Cluster) -> bool:
    """Whether the stack installs the gateway by its charts: not where add-ons run outside it (no Helm there)."""
    return cluster.addons == "helm"


def pooled_versions(model_name: str, model: Model, held: Collection[str]) -> list[str]:
    """The versions of a model that get an InferencePool in a gateway cluster: every version that answers users,
    except those that may be at zero replicas, which KEDA's interceptor must hold requests for (an endpoint
    picker with no endpoint would refuse them). Shadows only receive mirrored copies, sent to their Service."""
    return [v.version for v in model.versions
            if v.role != "shadow" and resource_name(model_name, v.version) not in held]


def version_shares(model: Model) -> list[VersionShare]:
    """The versions of a model that answer users, with their weights, for the gateway's version split (A/B
    versions may also be asked for by name)."""
    return [VersionShare(v.version, v.weight, pinnable=v.role == "ab") for v in model.versions if v.role != "shadow"]
