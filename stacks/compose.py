"""compose(spec): the one place that wires components together, per cluster and per model version."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi

from capacity.policy import AutoscalingPolicy
from components.autoscaling.keda import KedaInstall
from components.autoscaling.model_autoscaler import PROMETHEUS_URL, ModelAutoscaler, ModelAutoscalerArgs
from components.clusters.aws import AwsGpuCluster
from components.clusters.base import ClusterArgs
from components.clusters.crds import CustomResourceDefinitions, CustomResourceDefinitionsArgs
from components.clusters.gcp import GcpGpuCluster
from components.clusters.onprem import OnPremCluster
from components.hybrid.link import AwsSide, GcpSide, HybridLink, HybridLinkArgs
from components.labels import Ownership
from components.observability.stack import ObservabilityArgs, ObservabilityStack
from monitoring.rules import Slo
from components.networking.global_routing import GlobalRouting, GlobalRoutingArgs, regional_hostname
from components.networking.regional_gateway import RegionalGateway, RegionalGatewayArgs
from components.serving.model_rollout import ModelRollout, ModelRolloutArgs
from components.serving.namespace import SERVING_NAMESPACE, ServingNamespace
from components.serving.vllm_image import VllmImage
from components.serving.vllm_service import resource_name
from components.serving.weights_access import (
    GcpWeightsAccess,
    GcpWeightsAccessArgs,
    WeightsAccess,
    WeightsAccessArgs,
    gs_bucket,
    s3_object_arn,
)
from components.serving.vllm_service import VllmService, VllmServiceArgs

from .crd_sources import GATEWAY_API, PROMETHEUS_OPERATOR, crd_documents
from .crd_sources import KEDA as KEDA_CRDS
from .environments import PROJECT_ROOT
from .spec.addressing import TUNNELS_PER_CONNECTION, assign_tunnels
from .spec.models import Cluster, PlatformSpec, Slo as SpecSlo

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


ClusterComponent = AwsGpuCluster | GcpGpuCluster | OnPremCluster


def ownership(spec: PlatformSpec) -> Ownership:
    """Who owns and pays for the environment: the tags and labels every cloud resource carries."""
    return Ownership(spec.environment, spec.owner, spec.cost_center)


def _cluster(spec: PlatformSpec, cluster: Cluster, secrets: Secrets, gcp_project: str | None) -> ClusterComponent:
    args = ClusterArgs(
        cluster=cluster,
        ownership=ownership(spec),
        protect=spec.protect,
        private_endpoint=spec.protect,  # a protected (production) environment keeps its API off the internet
        kubeconfig=_kubeconfig(cluster, secrets),
        gcp_project=gcp_project,
        render_dir=plugin_relative(cluster.render_dir) if cluster.render_dir else None,
    )
    kind = {"aws": AwsGpuCluster, "gcp": GcpGpuCluster, "onprem": OnPremCluster}[cluster.cloud]
    return kind(cluster.name, args)


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


def _observability(spec: PlatformSpec, cluster: Cluster, target: ClusterComponent,
                   on_cluster: pulumi.ResourceOptions) -> ObservabilityStack:
    """The cluster's monitoring stack; alerts hold each model the cluster serves to its own SLO, and any other
    model to the spec's default one."""
    is_aws = isinstance(target, AwsGpuCluster)
    return ObservabilityStack(f"{cluster.name}-observability", ObservabilityArgs(
        cluster=cluster,
        settings=spec.observability,
        slos={name: _alert_slo(model.slo) for name, model in spec.models.items() if cluster in spec.clusters_of(model)},
        default_slo=_alert_slo(SpecSlo()),
        environment=spec.environment,
        tags=ownership(spec).tags(),
        aws_provider=target.aws_provider if is_aws else None,
        eks_cluster_name=target.cluster_name if is_aws else None,
        protect=spec.protect,
    ), opts=on_cluster)


def _served_archives(spec: PlatformSpec, cluster: Cluster) -> tuple[list[str], list[str]]:
    """The cluster's vLLM service account names and the URIs of the archives they fetch there."""
    accounts, uris = [], []
    for name, model in spec.models.items():
        if cluster in spec.clusters_of(model):
            for version in model.versions:
                accounts.append(resource_name(name, version.version))
                uris.append(model.catalog[version.version].uri_for(cluster.cloud))
    return accounts, uris


def _gcp_weights_access(spec: PlatformSpec, cluster: Cluster, project: str) -> GcpWeightsAccess | None:
    """Workload Identity for the cluster's vLLM service accounts to read their gs:// weights buckets."""
    accounts, uris = _served_archives(spec, cluster)
    buckets = sorted({b for b in map(gs_bucket, uris) if b})
    if not buckets:
        return None
    return GcpWeightsAccess(f"{cluster.name}-weights", GcpWeightsAccessArgs(
        project=project, cluster=cluster.name, namespace=SERVING_NAMESPACE, service_accounts=accounts,
        buckets=buckets))


def _weights_access(spec: PlatformSpec, cluster: Cluster, target: AwsGpuCluster) -> WeightsAccess | None:
    """Pod Identity for the cluster's vLLM service accounts to read their s3:// weights, nothing else."""
    accounts, uris = _served_archives(spec, cluster)
    arns = {a for a in map(s3_object_arn, uris) if a}
    if not arns:
        return None
    return WeightsAccess(f"{cluster.name}-weights", WeightsAccessArgs(
        cluster_name=target.cluster_name, namespace=SERVING_NAMESPACE, service_accounts=accounts,
        object_arns=sorted(arns), tags=ownership(spec).tags(),
    ), opts=pulumi.ResourceOptions(provider=target.aws_provider))


def psk_secret_key(link: str, cluster: str, index: int) -> str:
    """Key in `llmplane:secrets` of a pre-shared key a link brings instead of generating it."""
    return f"{link}-psk-{cluster}-{index}"


def _hybrid_links(spec: PlatformSpec, targets: Mapping[str, ClusterComponent],
                  secrets: Secrets) -> dict[str, pulumi.Output]:
    """One HybridLink per spec link; its on-prem side configuration is a secret stack output."""
    outputs: dict[str, pulumi.Output] = {}
    assigned = assign_tunnels(spec.hybrid)
    owners = ownership(spec)
    for link in spec.hybrid:
        aws_sides, gcp_sides, keys = [], [], {}
        for name in link.cloud_clusters:
            target = targets[name]
            if isinstance(target, AwsGpuCluster):
                aws_sides.append(AwsSide(spec.cluster(name), target.aws_provider, target.vpc_id,
                                         target.private_subnet_ids, target.private_route_tables))
            elif isinstance(target, GcpGpuCluster):
                gcp_sides.append(GcpSide(spec.cluster(name), target.network_id))
            if link.preshared_key_secrets:
                keys.update({f"{name}-{i}": secrets.preshared_keys[psk_secret_key(link.name, name, i)]
                             for i in range(TUNNELS_PER_CONNECTION)})
        component = HybridLink(f"hybrid-{link.name}", HybridLinkArgs(
            link=link, aws=aws_sides, gcp=gcp_sides,
            inside_cidrs={name: assigned[(link.name, name)] for name in link.cloud_clusters},
            preshared_keys=keys, tags=owners.tags(), labels=owners.gcp_labels()))
        outputs[f"hybrid:{link.name}:onprem-config"] = component.onprem_config
    return outputs


def compose(spec: PlatformSpec, secrets: Secrets, gcp_project: str | None = None) -> dict[str, pulumi.Output]:
    """Register every component of the environment; return the stack outputs."""
    outputs: dict[str, pulumi.Output] = {}
    targets: dict[str, ClusterComponent] = {}
    for cluster in spec.clusters:
        target = targets[cluster.name] = _cluster(spec, cluster, secrets, gcp_project)
        on_cluster = pulumi.ResourceOptions(providers=[target.provider])
        image: pulumi.Input[str] = spec.images.vllm
        if isinstance(target, (AwsGpuCluster, GcpGpuCluster)):
            image = VllmImage(f"{cluster.name}-vllm-image", target.registry_login,
                              context=plugin_relative("images/vllm")).ref
        serving = ServingNamespace(f"{cluster.name}-serving", api_key=secrets.api_key,
                                   storage_credentials=dict(secrets.storage_credentials),
                                   secret_data_out_of_band=bool(cluster.render_dir), opts=on_cluster)
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
        annotations = None
        if isinstance(target, AwsGpuCluster):
            _weights_access(spec, cluster, target)
        elif isinstance(target, GcpGpuCluster) and gcp_project:
            reader = _gcp_weights_access(spec, cluster, gcp_project)
            annotations = {"iam.gke.io/gcp-service-account": reader.email} if reader else None
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
            pool = next(p for p in cluster.pools if p.name == model.pool)
            for version in model.versions:
                policy = AutoscalingPolicy.from_spec(spec.autoscaling, model, version, model_name)
                service = VllmService(
                    f"{cluster.name}-{model_name}-{version.version}",
                    VllmServiceArgs(
                        model_name=model_name,
                        model=model,
                        version=version,
                        pool=pool,
                        namespace=serving.namespace,
                        image=image,
                        api_key_secret=serving.api_key_secret,
                        entrypoint_configmap=serving.entrypoint_configmap,
                        storage_secret=serving.storage_secret,
                        storage_files=tuple(secrets.storage_credentials),
                        cloud=cluster.cloud,
                        service_account_annotations=annotations,
                        service_monitor=spec.observability.enabled,
                        autoscaled=True,
                    ),
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
                    model=model,
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
            clusters=[spec.cluster(name) for name in order],
            health_model=next(iter(spec.models)),
            tags=ownership(spec).tags(),
        ))
        outputs["hostname"] = routing.hostname
    return outputs
