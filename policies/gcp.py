"""GCP policies: private GKE nodes, Workload Identity, shielded nodes, ownership labels."""

from __future__ import annotations

from collections.abc import Iterator

from .aws import takes_input
from .base import UNKNOWN, Context, ResourceView, Rule, as_dict, get, is_false, is_true

GKE_CLUSTER = "gcp:container/cluster:Cluster"
GKE_NODE_POOL = "gcp:container/nodePool:NodePool"
REQUIRED_LABELS = ("environment", "cost_center", "owner", "managed_by")
"""The AWS tags as GCP labels (GCP label keys take no '-')."""


def private_nodes(view: ResourceView, _: Context) -> Iterator[str]:
    if view.type == GKE_CLUSTER:
        value = get(view.props, "privateClusterConfig", "enablePrivateNodes")
        if not is_true(value) and value != UNKNOWN:
            yield f"GKE cluster {view.name}: nodes get public IPs (privateClusterConfig.enablePrivateNodes is not true)"
    elif is_false(get(view.props, "networkConfig", "enablePrivateNodes")):
        yield f"GKE node pool {view.name}: networkConfig.enablePrivateNodes: false gives its nodes public IPs"


def workload_identity(view: ResourceView, _: Context) -> Iterator[str]:
    if view.type == GKE_CLUSTER:
        pool = get(view.props, "workloadIdentityConfig", "workloadPool")
        if not pool:
            yield f"GKE cluster {view.name}: Workload Identity is off (no workloadIdentityConfig.workloadPool)"
        return
    mode = get(view.props, "nodeConfig", "workloadMetadataConfig", "mode")
    if mode not in ("GKE_METADATA", UNKNOWN):
        yield (f"GKE node pool {view.name}: workloadMetadataConfig.mode is {mode or 'unset'}; pods could read "
               "the node's credentials from the metadata server")


def shielded_nodes(view: ResourceView, _: Context) -> Iterator[str]:
    if view.type == GKE_CLUSTER:
        value = view.props.get("enableShieldedNodes")
        if not is_true(value) and value != UNKNOWN:
            yield f"GKE cluster {view.name}: enableShieldedNodes is not true"
        return
    value = get(view.props, "nodeConfig", "shieldedInstanceConfig", "enableSecureBoot")
    if not is_true(value) and value != UNKNOWN:
        yield f"GKE node pool {view.name}: nodes boot without Secure Boot (shieldedInstanceConfig.enableSecureBoot)"


def required_labels(view: ResourceView, _: Context) -> Iterator[str]:
    if view.type == GKE_NODE_POOL:
        key = "nodeConfig.resourceLabels"
        labels = get(view.props, "nodeConfig", "resourceLabels")
    elif "resourceLabels" in view.props or takes_input(view.type, "resource_labels"):
        key, labels = "resourceLabels", view.props.get("resourceLabels")
    elif "labels" in view.props or takes_input(view.type, "labels"):
        key, labels = "labels", view.props.get("labels")
    else:
        return
    if labels == UNKNOWN:
        return
    missing = [label for label in REQUIRED_LABELS if not as_dict(labels).get(label)]
    if missing:
        yield f"{view.type.split(':')[-1]} {view.name}: {key} lacks {', '.join(missing)}"


RULES = [
    Rule(
        name="gcp-gke-private-nodes",
        description="GKE nodes have no public IP addresses.",
        remediation="Set privateClusterConfig.enablePrivateNodes: true (egress through Cloud NAT) and do not "
        "override it per node pool.",
        resource_types=(GKE_CLUSTER, GKE_NODE_POOL),
        check=private_nodes,
    ),
    Rule(
        name="gcp-gke-workload-identity",
        description="GKE uses Workload Identity: pods get their own Google identity, never the node's.",
        remediation="Set workloadIdentityConfig.workloadPool: <project>.svc.id.goog on the cluster and "
        "nodeConfig.workloadMetadataConfig.mode: GKE_METADATA on every node pool.",
        resource_types=(GKE_CLUSTER, GKE_NODE_POOL),
        check=workload_identity,
    ),
    Rule(
        name="gcp-gke-shielded-nodes",
        description="GKE nodes are shielded VMs booted with Secure Boot.",
        remediation="Set enableShieldedNodes: true on the cluster and nodeConfig.shieldedInstanceConfig."
        "enableSecureBoot: true on every node pool.",
        resource_types=(GKE_CLUSTER, GKE_NODE_POOL),
        check=shielded_nodes,
    ),
    Rule(
        name="gcp-required-labels",
        description="Every labelable GCP resource carries the environment, cost_center, owner and managed_by "
        "labels.",
        remediation="Pass labels (resource_labels on GKE clusters, node_config.resource_labels on node pools) "
        "= Ownership(...).gcp_labels().",
        resource_types=("gcp:*",),
        check=required_labels,
    ),
]
