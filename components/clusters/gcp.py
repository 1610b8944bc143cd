"""GcpGpuCluster: VPC and subnet, private GKE with Workload Identity (Gateway API from Envoy Gateway's chart), GPU
node pools, Artifact Registry."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
from llmplane.components.options import children_of
from llmplane.components.serving.image_prepull import GkeImagePreload
from llmplane.components.serving.vllm_image import RegistryLogin
from llmplane.components.serving.vllm_service import GPU_TYPE_LABEL
from llmplane.components.serving.weights_access import GcpWeightsAccess, GcpWeightsAccessArgs, gs_bucket
from llmplane.facts.addressing import GKE_CONTROL_PLANE_CIDR, gke_secondary_ranges
from llmplane.facts.clouds import gcp_local_ssd_count
from llmplane.facts.kubernetes import GPU_TAINT_KEY, POOL_LABEL

from .base import (
    ClusterArgs,
    GcpNetwork,
    GpuCluster,
    GpuNodePool,
    WorkloadReaders,
    exec_kubeconfig,
    moved_under,
    require_shape,
)

CONTROL_PLANE_CIDR = GKE_CONTROL_PLANE_CIDR
"""Range GKE's private control plane peers into; must not overlap the VPC (`facts.addressing`; the spec refuses a
network that overlaps it)."""


def kubeconfig(endpoint: pulumi.Input[str], ca: pulumi.Input[str]) -> pulumi.Output[str]:
    """A kubeconfig that authenticates with the gke-gcloud-auth-plugin."""
    return exec_kubeconfig(pulumi.Output.concat("https://", endpoint), ca,
                           {"command": "gke-gcloud-auth-plugin", "provideClusterInfo": True})


def local_ssds(component: str, pool: GpuNodePool) -> int:
    """Local SSDs backing a pool's ephemeral storage and node cache: the machine type's fixed count where GCE fixes
    one (a G2, A2 Ultra or A3 node pool asking for another count is refused by the API), else as many as the cache
    needs; a cache larger than the fixed count holds is refused here, before any resource."""
    shape = require_shape("gcp", pool, component)
    try:
        return gcp_local_ssd_count(shape.machine_type, pool.local_cache_gb)
    except ValueError as error:
        raise ValueError(f"{component}: pool {pool.name!r} local_cache_gb={pool.local_cache_gb}: {error} "
                         "(the spec's nodeCache.sizeGi)") from None


class GcpGpuCluster(GpuCluster):
    """One GCP region's GPU cluster."""

    provider: k8s.Provider
    """Provider the serving layer deploys through."""
    cluster_name: pulumi.Output[str]
    """GKE cluster name."""
    endpoint: pulumi.Output[str]
    """Kubernetes API endpoint."""
    network_id: pulumi.Output[str]
    """VPC network id (hybrid links attach to it)."""
    registry_url: pulumi.Output[str]
    """Artifact Registry location for the serving image."""
    registry_login: RegistryLogin
    """How VllmImage pushes to Artifact Registry (the caller's short-lived access token)."""
    network: GcpNetwork
    """The VPC network and project, for components that add resources beside the cluster (hybrid links)."""

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:cluster:GcpGpuCluster", name, None, opts)
        spec, labels = args, args.ownership.gcp_labels()
        if not args.gcp_project:
            raise ValueError(f"GcpGpuCluster {name}: give `gcp_project`, the project whose Workload Identity pool "
                             "the cluster joins (e.g. the `gcp:project` config)")
        for pool in args.pools:
            if pool.local_cache_gb:
                local_ssds(f"GcpGpuCluster {name}", pool)
        self._project, self._cluster_name, self._opts = args.gcp_project, args.name, opts
        child = children_of(self, opts)
        keep = children_of(self, opts, protect=args.protect)  # stateful: protected in prod
        ranges = gke_secondary_ranges(spec.network_cidr or "10.0.0.0/16")

        network = gcp.compute.Network(f"{name}-vpc", name=spec.name, auto_create_subnetworks=False, opts=child)
        subnet = gcp.compute.Subnetwork(
            f"{name}-subnet",
            name=f"{spec.name}-nodes",
            region=spec.region,
            network=network.id,
            ip_cidr_range=spec.network_cidr,
            private_ip_google_access=True,
            secondary_ip_ranges=[{"range_name": key, "ip_cidr_range": cidr} for key, cidr in ranges.items()],
            log_config={"aggregation_interval": "INTERVAL_5_SEC", "flow_sampling": 0.5},
            opts=child,
        )
        router = gcp.compute.Router(f"{name}-router", name=f"{spec.name}-nat", region=spec.region,
                                    network=network.id, opts=child)
        gcp.compute.RouterNat(f"{name}-nat", name=f"{spec.name}-nat", router=router.name, region=spec.region,
                              nat_ip_allocate_option="AUTO_ONLY",
                              source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
                              log_config={"enable": True, "filter": "ERRORS_ONLY"}, opts=child)
        nodes_sa = gcp.serviceaccount.Account(f"{name}-nodes", account_id=f"{spec.name}-nodes"[:30],
                                              display_name=f"GKE nodes of {spec.name}", opts=child)
        cluster = gcp.container.Cluster(
            f"{name}-gke",
            name=spec.name,
            location=spec.region,
            node_locations=spec.zones or None,
            network=network.id,
            subnetwork=subnet.id,
            remove_default_node_pool=True,
            initial_node_count=1,
            release_channel={"channel": "REGULAR"},
            min_master_version=spec.kubernetes_version,
            workload_identity_config={"workload_pool": f"{args.gcp_project}.svc.id.goog"},
            private_cluster_config={
                "enable_private_nodes": True,
                "enable_private_endpoint": args.private_endpoint,
                "master_ipv4_cidr_block": CONTROL_PLANE_CIDR,
            },
            master_authorized_networks_config={"cidr_blocks": [{"cidr_block": spec.network_cidr,
                                                                "display_name": "vpc"}]},
            ip_allocation_policy={"cluster_secondary_range_name": "pods", "services_secondary_range_name": "services"},
            gateway_api_config={"channel": "CHANNEL_DISABLED"},  # Envoy Gateway's chart owns the CRDs
            enable_shielded_nodes=True,
            logging_service="logging.googleapis.com/kubernetes",
            monitoring_service="monitoring.googleapis.com/kubernetes",
            deletion_protection=args.protect,
            resource_labels=labels,
            opts=keep,
        )
        node_defaults = {
            "service_account": nodes_sa.email,
            "oauth_scopes": ["https://www.googleapis.com/auth/cloud-platform"],
            "shielded_instance_config": {"enable_secure_boot": True, "enable_integrity_monitoring": True},
            "workload_metadata_config": {"mode": "GKE_METADATA"},
            "resource_labels": labels,
        }
        gcp.container.NodePool(
            f"{name}-system",
            name="system",
            cluster=cluster.id,
            location=spec.region,
            node_count=1,
            node_config={**node_defaults, "machine_type": "e2-standard-4",
                         "labels": {"llmplane.dev/role": "system"}},
            management={"auto_repair": True, "auto_upgrade": True},
            opts=child,
        )
        for pool in spec.pools:
            self._gpu_pool(name, cluster.id, spec.region, pool, node_defaults, child)
        self.registry = gcp.artifactregistry.Repository(
            f"{name}-vllm-repo",
            repository_id="llmplane",
            location=spec.region,
            format="DOCKER",
            docker_config={"immutable_tags": True},
            labels=labels,
            opts=keep,
        )
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=kubeconfig(cluster.endpoint, cluster.master_auth.cluster_ca_certificate),
            enable_server_side_apply=True,
            opts=child,
        )
        self.cluster_name = cluster.name
        self.endpoint = cluster.endpoint
        self.network_id = network.id
        self.network = GcpNetwork(network_id=network.id, project=args.gcp_project)
        self.registry_url = pulumi.Output.concat(spec.region, "-docker.pkg.dev/", self.registry.project, "/llmplane")
        client = gcp.organizations.get_client_config_output(opts=pulumi.InvokeOptions(parent=self))
        self.registry_login = RegistryLogin(repository=pulumi.Output.concat(self.registry_url, "/vllm"),
                                            address=f"{spec.region}-docker.pkg.dev", username="oauth2accesstoken",
                                            password=client.access_token)
        self.register_outputs({"cluster_name": self.cluster_name, "endpoint": self.endpoint,
                               "network_id": self.network_id, "registry_url": self.registry_url})

    def bind_workload_identity(self, name: str, readers: WorkloadReaders) -> dict[str, pulumi.Output[str]]:
        """GKE Workload Identity: a Google service account that may read the readers' gs:// buckets, impersonated
        by their Kubernetes service accounts, which must carry its email as `iam.gke.io/gcp-service-account`."""
        buckets = sorted({bucket for bucket in map(gs_bucket, readers.uris) if bucket})
        if not buckets:
            return {}
        reader = GcpWeightsAccess(name, GcpWeightsAccessArgs(
            project=self._project, cluster=self._cluster_name, namespace=readers.namespace,
            service_accounts=list(readers.service_accounts), buckets=buckets), opts=moved_under(self, self._opts))
        return {"iam.gke.io/gcp-service-account": reader.email}

    @staticmethod
    def _gpu_pool(name: str, cluster_id: pulumi.Input[str], region: str, pool: GpuNodePool, defaults: dict,
                  opts: pulumi.ResourceOptions) -> None:
        """GPU node pools: accelerators with the driver installed by GKE, the GPU taint, spot per spec.

        A GKE node pool is all spot or all on-demand, so a spot pool with an on-demand base becomes two pools:
        `<pool>-base` (on-demand, fixed at the base) and `<pool>` (spot, autoscaled above it).
        """
        shape = require_shape("gcp", pool, name)
        spot = pool.capacity_type == "spot"
        parts = [(pool.name, spot, pool.nodes_min, pool.nodes_max)]
        if spot and pool.on_demand_base > 0:
            parts = [(f"{pool.name}-base", False, pool.on_demand_base, pool.on_demand_base),
                     (pool.name, True, max(0, pool.nodes_min - pool.on_demand_base),
                      pool.nodes_max - pool.on_demand_base)]
        for pool_name, is_spot, low, high in parts:
            gcp.container.NodePool(
                f"{name}-{pool_name}",
                name=pool_name,
                cluster=cluster_id,
                location=region,
                autoscaling={"total_min_node_count": low, "total_max_node_count": high,
                             "location_policy": "ANY" if is_spot else "BALANCED"},
                node_config={
                    **defaults,
                    "machine_type": shape.machine_type,
                    "spot": is_spot,
                    "guest_accelerators": [{
                        "type": shape.accelerator,
                        "count": pool.gpus_per_node,
                        "gpu_driver_installation_config": {"gpu_driver_version": "LATEST"},
                    }],
                    "labels": {GPU_TYPE_LABEL: pool.gpu_type, POOL_LABEL: pool.name},
                    "taints": [{"key": GPU_TAINT_KEY, "value": "true", "effect": "NO_SCHEDULE"}],
                    "disk_size_gb": 300,
                    "disk_type": "pd-ssd",
                    **({"ephemeral_storage_local_ssd_config": {"local_ssd_count": local_ssds(name, pool)}}
                       if pool.local_cache_gb else {}),
                    **(GkeImagePreload().node_config() if pool.image_streaming else {}),
                },
                management={"auto_repair": True, "auto_upgrade": True},
                opts=opts,
            )
