"""compose(spec): the one place that wires components together, per cluster and per model version."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi

from components.autoscaling.keda import KedaInstall
from components.autoscaling.model_autoscaler import PROMETHEUS_URL, ModelAutoscaler, ModelAutoscalerArgs
from components.clusters.aws import AwsGpuCluster
from components.clusters.base import ClusterArgs, GpuCluster, GpuNodePool, WorkloadReaders
from components.clusters.crds import CustomResourceDefinitions, CustomResourceDefinitionsArgs
from components.clusters.gcp import GcpGpuCluster
from components.clusters.onprem import OnPremCluster
from components.hybrid.link import HybridLink, HybridLinkArgs, LinkSide, OnPremSite
from components.labels import Ownership
from components.observability.stack import ObservabilityArgs, ObservabilityStack
from monitoring.rules import Slo
from components.networking.global_routing import GlobalRouting, GlobalRoutingArgs, RoutedCluster, regional_hostname
from components.networking.regional_gateway import RegionalGateway, RegionalGatewayArgs
from components.serving.engine_args import EngineSettings
from components.serving.model_rollout import ModelRollout, ModelRolloutArgs, RolloutVersion
from components.serving.namespace import SERVING_NAMESPACE, ServingNamespace, ServingNamespaceArgs
from components.serving.vllm_image import VllmImage, VllmImageArgs
from components.serving.vllm_service import resource_name
from components.serving.vllm_service import ModelWeights, VllmService, VllmServiceArgs

from .autoscaling import policy_of
from .crd_sources import GATEWAY_API, PROMETHEUS_OPERATOR, crd_documents
from .crd_sources import KEDA as KEDA_CRDS
from .environments import PROJECT_ROOT
from facts.addressing import TUNNELS_PER_CONNECTION, assign_tunnels
from .spec.models import Cluster, DeployedVersion, Model, PlatformSpec, Slo as SpecSlo

PROGRAM_DIR = PROJECT_ROOT / "stacks"
"""Where the engine starts the program and its plugins (Pulumi.yaml `main: stacks/`)."""


def plugin_relative(path: str) -> str:
    """A project-relative path as plugins must be given it: relative to the program directory, so the state
    holds the same value on every clone."""
    return os.path.relpath(PROJECT_ROOT / path, PROGRAM_DIR)


@dataclass(frozen=True)
class Secrets:
    """Secret inputs, read from `llmplane:secrets` by the program; always Pulumi secrets."""

    api_key: pulumi.Input[str]
    """API key clients present to vLLM."""
    kubeconfigs: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Kubeconfigs by secret key name (`clusters[].kubeconfigSecret`)."""
    preshared_keys: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """VPN pre-shared keys by secret key name (`<link>-psk-<cluster>-<n>`), for links that bring their own."""
    storage_credentials: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Object-storage credential files for the weights fetcher, by file name (none: workload identity)."""


def ownership(spec: PlatformSpec) -> Ownership:
    """Who owns and pays for the environment: the tags and labels every cloud resource carries."""
    return Ownership(spec.environment, spec.owner, spec.cost_center)


CLUSTER_KINDS: dict[str, type[GpuCluster]] = {"aws": AwsGpuCluster, "gcp": GcpGpuCluster, "onprem": OnPremCluster}
"""The component that makes (or reaches) a cluster of each cloud; everything after picks no kind."""


def _cluster(spec: PlatformSpec, cluster: Cluster, secrets: Secrets, gcp_project: str | None) -> GpuCluster:
    args = ClusterArgs(
        name=cluster.name,
        region=cluster.region,
        ownership=ownership(spec),
        pools=[GpuNodePool(name=p.name, gpu_type=p.gpu_type, gpus_per_node=p.gpus_per_node, nodes_min=p.nodes.min,
                           nodes_max=p.nodes.max, capacity_type=p.capacity_type, on_demand_base=p.on_demand_base)
               for p in cluster.pools],
        zones=list(cluster.zones),
        kubernetes_version=cluster.kubernetes_version,
        network_cidr=cluster.network_cidr,
        protect=spec.protect,
        private_endpoint=spec.protect,  # a protected (production) environment keeps its API off the internet
        kubeconfig=_kubeconfig(cluster, secrets),
        gcp_project=gcp_project,
        render_dir=plugin_relative(cluster.render_dir) if cluster.render_dir else None,
    )
    return CLUSTER_KINDS[cluster.cloud](cluster.name, args)


def kubeconfig_file_key(path: str) -> str:
    """Where a `kubeconfigFile` cluster's kubeconfig sits in `Secrets.kubeconfigs`."""
    return f"file:{path}"


def _kubeconfig(cluster: Cluster, secrets: Secrets) -> pulumi.Input[str] | None:
    """An on-prem cluster's kubeconfig, from `llmplane:secrets` or from a file on this machine."""
    if cluster.kubeconfig_secret:
        return secrets.kubeconfigs.get(cluster.kubeconfig_secret)
    if cluster.kubeconfig_file:
        return secrets.kubeconfigs.get(kubeconfig_file_key(cluster.kubeconfig_file))
    return None


def _custom_resource_definitions(spec: PlatformSpec, cluster: Cluster,
                                 on_cluster: pulumi.ResourceOptions) -> CustomResourceDefinitions | None:
    """The CRDs the stack installs in a cluster from the projects' pinned modules: the Gateway API wherever the
    cloud does not serve it (all but GKE); KEDA's and the Prometheus Operator's where no chart brings them
    (`addons: external`, e.g. the embedded cluster, which runs KEDA beside its control plane)."""
    sources = [GATEWAY_API] if cluster.cloud != "gcp" else []
    if cluster.addons == "external":
        sources += [KEDA_CRDS] if spec.autoscaling.keda else []
        sources += [PROMETHEUS_OPERATOR]
    if not sources:
        return None
    documents = [document for source in sources for document in crd_documents(source)]
    return CustomResourceDefinitions(f"{cluster.name}-crds", CustomResourceDefinitionsArgs(documents=documents),
                                     opts=on_cluster)


def _alert_slo(slo: SpecSlo) -> Slo:
    """A model's SLO in the spec as the alerts' SLO (the spec's `availability` is their availability objective)."""
    return Slo(ttft_seconds=slo.ttft_seconds, ttft_objective=slo.ttft_objective,
               availability_objective=slo.availability)


def _observability(spec: PlatformSpec, cluster: Cluster, target: GpuCluster,
                   on_cluster: pulumi.ResourceOptions) -> ObservabilityStack:
    """The cluster's monitoring stack; alerts hold each model the cluster serves to its own SLO, and any other
    model to the spec's default one."""
    settings = spec.observability
    return ObservabilityStack(f"{cluster.name}-observability", ObservabilityArgs(
        cluster_name=cluster.name,
        region=cluster.region,
        slos={name: _alert_slo(model.slo) for name, model in spec.models.items() if cluster in spec.clusters_of(model)},
        default_slo=_alert_slo(SpecSlo()),
        environment=spec.environment,
        tags=ownership(spec).tags(),
        network=target.network,
        metrics_retention_days=settings.metrics_retention_days,
        log_retention_days=settings.log_retention_days,
        remote_write_url=settings.remote_write_url,
        protect=spec.protect,
    ), opts=on_cluster)


def _weights_readers(spec: PlatformSpec, cluster: Cluster) -> WorkloadReaders:
    """The cluster's vLLM service accounts and the URIs of the archives they fetch there."""
    accounts, uris = [], []
    for name, model in spec.models.items():
        if cluster in spec.clusters_of(model):
            for version in model.versions:
                accounts.append(resource_name(name, version.version))
                uris.append(model.catalog[version.version].uri_for(cluster.cloud))
    return WorkloadReaders(namespace=SERVING_NAMESPACE, service_accounts=accounts, uris=uris,
                           tags=ownership(spec).tags())


def engine_settings(model: Model) -> EngineSettings:
    """The spec's engine section as the serving component's settings (the same fields, one by one)."""
    return EngineSettings(**model.engine.model_dump())


def _service_args(spec: PlatformSpec, cluster: Cluster, model_name: str, model: Model, version: DeployedVersion,
                  serving: ServingNamespace, image: pulumi.Input[str], secrets: Secrets,
                  annotations: Mapping[str, pulumi.Input[str]]) -> VllmServiceArgs:
    """One deployed version in one cluster as VllmService arguments; its autoscaler owns the replica count."""
    artifact = model.catalog[version.version]
    pool = next(p for p in cluster.pools if p.name == model.pool)
    return VllmServiceArgs(
        model_name=model_name,
        version=version.version,
        weights=ModelWeights(uri=artifact.uri_for(cluster.cloud), sha256=artifact.sha256,
                             size_bytes=model.weight_bytes(), load_seconds=model.load_seconds),
        gpu_type=pool.gpu_type,
        namespace=serving.namespace,
        image=image,
        api_key_secret=serving.api_key_secret,
        entrypoint_configmap=serving.entrypoint_configmap,
        engine=engine_settings(model),
        replicas=None,
        storage_secret=serving.storage_secret,
        storage_files=tuple(secrets.storage_credentials),
        service_monitor=spec.observability.enabled,
        cloud=cluster.cloud,
        service_account_annotations=annotations or None,
    )


def psk_secret_key(link: str, cluster: str, index: int) -> str:
    """Key in `llmplane:secrets` of a pre-shared key a link brings instead of generating it."""
    return f"{link}-psk-{cluster}-{index}"


def _hybrid_links(spec: PlatformSpec, targets: Mapping[str, GpuCluster],
                  secrets: Secrets) -> dict[str, pulumi.Output]:
    """One HybridLink per spec link; its on-prem side configuration is a secret stack output."""
    outputs: dict[str, pulumi.Output] = {}
    assigned = assign_tunnels(spec.hybrid)
    owners = ownership(spec)
    for link in spec.hybrid:
        sides = []
        for name in link.cloud_clusters:
            network = targets[name].network
            assert network is not None, "the spec rules link cloud clusters only"
            keys = ([secrets.preshared_keys[psk_secret_key(link.name, name, i)] for i in range(TUNNELS_PER_CONNECTION)]
                    if link.preshared_key_secrets else [])
            sides.append(LinkSide(cluster=name, region=spec.cluster(name).region, network=network,
                                  inside_cidrs=assigned[(link.name, name)], preshared_keys=keys))
        component = HybridLink(f"hybrid-{link.name}", HybridLinkArgs(
            site=OnPremSite(name=link.name, public_ip=link.public_ip, bgp_asn=link.bgp_asn,
                            cidrs=list(link.onprem_cidrs)),
            sides=sides, tags=owners.tags(), labels=owners.gcp_labels()))
        outputs[f"hybrid:{link.name}:onprem-config"] = component.onprem_config
    return outputs


def compose(spec: PlatformSpec, secrets: Secrets, gcp_project: str | None = None) -> dict[str, pulumi.Output]:
    """Register every component of the environment; return the stack outputs."""
    outputs: dict[str, pulumi.Output] = {}
    targets: dict[str, GpuCluster] = {}
    for cluster in spec.clusters:
        target = targets[cluster.name] = _cluster(spec, cluster, secrets, gcp_project)
        on_cluster = pulumi.ResourceOptions(providers=[target.provider])
        image: pulumi.Input[str] = spec.images.vllm
        if target.registry_login is not None:
            image = VllmImage(f"{cluster.name}-vllm-image", VllmImageArgs(
                login=target.registry_login, context=plugin_relative("images/vllm"))).ref
        serving = ServingNamespace(f"{cluster.name}-serving", ServingNamespaceArgs(
            api_key=secrets.api_key, storage_credentials=dict(secrets.storage_credentials),
            secret_data_out_of_band=bool(cluster.render_dir)), opts=on_cluster)
        crds = _custom_resource_definitions(spec, cluster, on_cluster)
        # GKE serves the Gateway API itself (the cluster enables it); elsewhere the stack installs its CRDs.
        after_gateway_api = on_cluster.merge(pulumi.ResourceOptions(depends_on=[crds] if crds else []))
        gateway = RegionalGateway(
            f"{cluster.name}-gateway",
            RegionalGatewayArgs(cloud=cluster.cloud, hostname=spec.routing.hostname,
                                regional_hostname=regional_hostname(cluster.name, spec.routing.hostname),
                                serving_namespace=serving.namespace),
            opts=after_gateway_api,
        )
        observability = _observability(spec, cluster, target, on_cluster) if spec.observability.enabled else None
        annotations = target.bind_workload_identity(f"{cluster.name}-weights", _weights_readers(spec, cluster))
        keda = None
        if spec.autoscaling.keda:
            keda = KedaInstall(f"{cluster.name}-keda", opts=on_cluster) if cluster.addons == "helm" else crds
        # Custom resources wait for their definitions: from the stack's CRDs, the KEDA chart or the monitoring
        # stack's kube-prometheus-stack chart.
        after_keda = on_cluster.merge(pulumi.ResourceOptions(depends_on=[keda] if keda else []))
        after_monitoring = on_cluster.merge(pulumi.ResourceOptions(depends_on=[
            d for d in (observability, crds if cluster.addons == "external" else None) if d]))
        prometheus_url = (spec.observability.prometheus_url or PROMETHEUS_URL).rstrip("/")
        for model_name, model in spec.models.items():
            if cluster not in spec.clusters_of(model):
                continue
            for version in model.versions:
                policy = policy_of(spec.autoscaling, model, version, model_name)
                service = VllmService(
                    f"{cluster.name}-{model_name}-{version.version}",
                    _service_args(spec, cluster, model_name, model, version, serving, image, secrets, annotations),
                    opts=after_monitoring,
                )
                ModelAutoscaler(
                    f"{cluster.name}-{model_name}-{version.version}",
                    ModelAutoscalerArgs(policy=policy, deployment_name=service.deployment_name,
                                        namespace=serving.namespace, model=model_name, version=version.version,
                                        prometheus_url=prometheus_url),
                    opts=after_keda,
                )
            ModelRollout(
                f"{cluster.name}-{model_name}",
                ModelRolloutArgs(
                    model_name=model_name,
                    versions=[RolloutVersion(version=v.version, weight=v.weight, role=v.role) for v in model.versions],
                    namespace=serving.namespace,
                    hostnames=[spec.routing.hostname, regional_hostname(cluster.name, spec.routing.hostname)],
                    gateway_name=gateway.gateway_name,
                    gateway_namespace=gateway.gateway_namespace,
                ),
                opts=after_gateway_api,
            )
        outputs[f"{cluster.name}:cluster"] = target.cluster_name
    outputs.update(_hybrid_links(spec, targets, secrets))
    if spec.routing.hosted_zone:
        order = spec.routing.failover_order or [c.name for c in spec.clusters]
        routing = GlobalRouting("global", GlobalRoutingArgs(
            hostname=spec.routing.hostname,
            hosted_zone=spec.routing.hosted_zone,
            clusters=[RoutedCluster(name=c.name, cloud=c.cloud, region=c.region)
                      for c in map(spec.cluster, order)],
            health_model=next(iter(spec.models)),
            tags=ownership(spec).tags(),
        ))
        outputs["hostname"] = routing.hostname
    return outputs
