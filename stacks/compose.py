"""compose(spec): the one place that wires components together, per cluster and per model version."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
from llmplane.components.autoscaling.keda import KedaInstall
from llmplane.components.autoscaling.model_autoscaler import PROMETHEUS_URL, ModelAutoscaler, ModelAutoscalerArgs
from llmplane.components.autoscaling.scale_from_zero import (
    KEDA_NAMESPACE,
    HeldVersion,
    ScaleFromZero,
    ScaleFromZeroArgs,
    http_trigger,
    interceptor_backend_ref,
)
from llmplane.components.clusters.aws import AwsGpuCluster
from llmplane.components.clusters.base import ClusterArgs, GpuCluster, GpuNodePool, WorkloadReaders
from llmplane.components.clusters.crds import CustomResourceDefinitions, CustomResourceDefinitionsArgs
from llmplane.components.clusters.gcp import GcpGpuCluster
from llmplane.components.clusters.onprem import OnPremGpuCluster
from llmplane.components.gateway.certificates import (
    CertManagerArgs,
    CertManagerInstall,
    GatewayCertificate,
    GatewayCertificateArgs,
)
from llmplane.components.gateway.envoy_gateway import EnvoyGatewayArgs, EnvoyGatewayInstall, TracingTarget
from llmplane.components.gateway.external_dns import ExternalDnsArgs, ExternalDnsInstall
from llmplane.components.gateway.inference_pool import EPP_POD_LABELS, ModelInferencePool, ModelInferencePoolArgs
from llmplane.components.gateway.route_refs import credential_filter, pool_backend_ref, served_by
from llmplane.components.gateway.tenant_budgets import TenantBudget
from llmplane.components.gateway.tenants import GatewayTenants, GatewayTenantsArgs
from llmplane.components.gateway.token_usage import TokenUsage, TokenUsageArgs
from llmplane.components.gateway.tracing import TracingBackend, TracingBackendArgs, grpc_endpoint, vllm_tracing_args
from llmplane.components.gateway.upstream import UpstreamCredential, UpstreamCredentialArgs
from llmplane.components.gateway.version_split import lua_source as version_split_lua
from llmplane.components.hybrid.link import HybridLink, HybridLinkArgs, LinkSide, OnPremSite
from llmplane.components.labels import Ownership
from llmplane.components.networking.global_routing import (
    GlobalRouting,
    GlobalRoutingArgs,
    RoutedCluster,
    regional_hostname,
)
from llmplane.components.networking.regional_gateway import RegionalGateway, RegionalGatewayArgs
from llmplane.components.observability.stack import ObservabilityArgs, ObservabilityStack
from llmplane.components.serving.engine_args import VLLM_PORT, EngineSettings, LoraSettings, extra_dir
from llmplane.components.serving.feedback import FeedbackService, FeedbackServiceArgs
from llmplane.components.serving.image_prepull import ImagePrepull, ImagePrepullArgs
from llmplane.components.serving.model_cache import CachedVersion, NodeModelCache, NodeModelCacheArgs
from llmplane.components.serving.model_rollout import (
    EXPERIMENTS_ANNOTATION,
    ModelRollout,
    ModelRolloutArgs,
    RolloutVersion,
)
from llmplane.components.serving.namespace import SERVING_NAMESPACE, ServingNamespace, ServingNamespaceArgs
from llmplane.components.serving.shadow_compare import POD_LABELS as SHADOW_POD_LABELS
from llmplane.components.serving.shadow_compare import ShadowComparator, ShadowComparatorArgs, mirror_backend_ref
from llmplane.components.serving.vllm_image import VllmImage, VllmImageArgs
from llmplane.components.serving.vllm_service import (
    STORAGE_ENV,
    ExtraWeights,
    ModelWeights,
    VerifiedLoading,
    VllmService,
    VllmServiceArgs,
    pod_selector,
    replica_memory_gi,
    resource_name,
)
from llmplane.components.serving.warm_headroom import (
    SERVING_PRIORITY_CLASS,
    HeadroomWindow,
    ServingPriorities,
    WarmHeadroom,
    WarmHeadroomArgs,
)
from llmplane.facts.addressing import TUNNELS_PER_CONNECTION, assign_tunnels
from llmplane.facts.engines import DEFAULT_RELEASE, RELEASES, surface
from llmplane.facts.loading import NODE_CACHE_ROOTS
from llmplane.monitoring.rules import Slo
from llmplane.spec.models import Cluster, DeployedVersion, GpuPool, Model, NodeCache, PlatformSpec
from llmplane.spec.models import Slo as SpecSlo

from .crd_sources import GATEWAY_API, INFERENCE_EXTENSION, KEDA_HTTP_ADDON, PROMETHEUS_OPERATOR, crd_documents
from .crd_sources import KEDA as KEDA_CRDS
from .environments import PROJECT_ROOT
from .traffic import installs_gateway, pooled_versions, version_shares
from .tree import MOVED_FROM_ROOT, ModelNode, VersionNode

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
    tenant_keys: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Tenants' gateway API keys by their key name (`tenants[].apiKeySecrets`)."""


def ownership(spec: PlatformSpec) -> Ownership:
    """Who owns and pays for the environment: the tags and labels every cloud resource carries."""
    return Ownership(spec.environment, spec.owner, spec.cost_center)


CLUSTER_KINDS: dict[str, type[GpuCluster]] = {
    "aws": AwsGpuCluster, "gcp": GcpGpuCluster, "onprem": OnPremGpuCluster}
"""The component that makes (or reaches) a cluster of each cloud; everything after picks no kind."""


def _local_cache_gb(pool: GpuPool) -> int:
    """Local disk a cloud pool's nodes must bring for its node cache, GB (a host-path cache is the site's)."""
    cache = pool.node_cache
    if cache is None or cache.medium == "host-path":
        return 0
    return math.ceil(cache.size_gi * 2**30 / 1e9)


def _cluster(spec: PlatformSpec, cluster: Cluster, secrets: Secrets, gcp_project: str | None) -> GpuCluster:
    args = ClusterArgs(
        name=cluster.name,
        region=cluster.region,
        ownership=ownership(spec),
        pools=[GpuNodePool(name=p.name, gpu_type=p.gpu_type, gpus_per_node=p.gpus_per_node, nodes_min=p.nodes.min,
                           nodes_max=p.nodes.max, capacity_type=p.capacity_type, on_demand_base=p.on_demand_base,
                           local_cache_gb=_local_cache_gb(p), image_streaming=p.image_prepull)
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


def _custom_resource_definitions(spec: PlatformSpec, cluster: Cluster, on_cluster: pulumi.ResourceOptions,
                                 holds_requests: bool) -> CustomResourceDefinitions:
    """The CRDs the stack installs in a cluster from the projects' pinned modules where no chart brings them:
    where add-ons are external (e.g. the embedded cluster, which runs KEDA beside its control plane) the Gateway
    API's, KEDA's, its HTTP add-on's (when a version scales from zero) and the Prometheus Operator's; where the
    stack installs the gateway (whose chart brings the Gateway API's), the Inference Extension's InferencePool."""
    sources = ([INFERENCE_EXTENSION] if installs_gateway(cluster) else
               [GATEWAY_API, *([KEDA_CRDS] if spec.autoscaling.keda else []),
                *([KEDA_HTTP_ADDON] if holds_requests else []), PROMETHEUS_OPERATOR])
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
        log_retention_days=_log_retention_days(spec, cluster),
        remote_write_url=settings.remote_write_url,
        protect=spec.protect,
    ), opts=on_cluster)


def _log_retention_days(spec: PlatformSpec, cluster: Cluster) -> int:
    """Days Loki keeps logs: the gateway's access logs (the audit record) may ask for longer than the rest."""
    days = spec.observability.log_retention_days
    return max(days, spec.gateway.access_log_retention_days) if installs_gateway(cluster) else days


def _traces(spec: PlatformSpec, cluster: Cluster) -> bool:
    """Whether the cluster runs Jaeger and sends it the proxies' and vLLM's traces."""
    return installs_gateway(cluster) and spec.observability.enabled and spec.gateway.tracing


def _envoy_gateway(spec: PlatformSpec, cluster: Cluster, observability: ObservabilityStack | None,
                   on_cluster: pulumi.ResourceOptions) -> EnvoyGatewayInstall | None:
    """Envoy Gateway on a cluster whose add-ons the stack installs, tracing to Jaeger in the monitoring namespace
    when the environment observes and traces."""
    if not installs_gateway(cluster):
        return None
    settings = spec.gateway
    tracing = None
    if observability is not None and _traces(spec, cluster):
        jaeger = TracingBackend(f"{cluster.name}-tracing", TracingBackendArgs(),
                                opts=on_cluster.merge(pulumi.ResourceOptions(depends_on=[observability])))
        tracing = TracingTarget(service=jaeger.service, namespace=jaeger.namespace)
    return EnvoyGatewayInstall(f"{cluster.name}-envoy-gateway", EnvoyGatewayArgs(
        cloud=cluster.cloud, access_log_retention_days=settings.access_log_retention_days, tracing=tracing,
        tracing_sample_percent=settings.tracing_sample_percent), opts=on_cluster)


def _certificates_and_dns(spec: PlatformSpec, cluster: Cluster, target: GpuCluster, gateway: RegionalGateway,
                          on_cluster: pulumi.ResourceOptions) -> None:
    """cert-manager with the cloud's issuer and the Gateway's certificate for both its names; external-dns, which
    publishes the regional name in the zone, on cloud clusters (on-prem has no cloud DNS to write to)."""
    settings = spec.gateway
    zone = settings.dns_zone or spec.routing.hosted_zone
    owners = ownership(spec).tags()
    cert_manager = CertManagerInstall(f"{cluster.name}-cert-manager", CertManagerArgs(
        cluster_name=cluster.name, issuer=settings.tls_issuer[cluster.cloud], network=target.network,
        dns_zone=zone, acme_email=settings.acme_email, gcp_managed_zone=settings.gcp_managed_zone,
        aws_region=cluster.region if cluster.cloud == "aws" else "us-east-1", tags=owners), opts=on_cluster)
    GatewayCertificate(f"{cluster.name}-gateway-tls", GatewayCertificateArgs(
        issuer_name=cert_manager.issuer_name, namespace=gateway.gateway_namespace,
        hostnames=[spec.routing.hostname, regional_hostname(cluster.name, spec.routing.hostname)]),
        opts=on_cluster.merge(pulumi.ResourceOptions(depends_on=[cert_manager, gateway])))
    if target.network is not None and zone is not None:
        ExternalDnsInstall(f"{cluster.name}-external-dns", ExternalDnsArgs(
            cluster_name=cluster.name, network=target.network, dns_zone=zone, global_hostname=spec.routing.hostname,
            gcp_managed_zone=settings.gcp_managed_zone, tags=owners), opts=on_cluster)


def _tenants(spec: PlatformSpec, cluster: Cluster, secrets: Secrets, gateway: RegionalGateway,
             routes: Mapping[str, pulumi.Input[str]], namespace: pulumi.Input[str],
             after_gateway: pulumi.ResourceOptions) -> None:
    """What the gateway enforces per request: tenants' keys and budgets on the model routes, and the token meter
    that charges the budgets."""
    splits = {name: version_shares(model) for name, model in _served_here(spec, cluster)}
    TokenUsage(f"{cluster.name}-token-usage", TokenUsageArgs(
        gateway_name=gateway.gateway_name, gateway_namespace=gateway.gateway_namespace,
        lua_before=(version_split_lua(splits),)), opts=after_gateway)
    if not spec.tenants:
        return
    GatewayTenants(f"{cluster.name}-tenants", GatewayTenantsArgs(
        tenants=[TenantBudget(name=t.name, models=tuple(t.models), key_names=tuple(t.api_key_secrets),
                              tokens_per_minute=t.tokens_per_minute, tokens_per_day=t.tokens_per_day,
                              priority=t.priority) for t in spec.tenants],
        api_keys={key: secrets.tenant_keys[key] for t in spec.tenants for key in t.api_key_secrets},
        routes=dict(routes), routes_namespace=namespace, gateway_name=gateway.gateway_name,
        gateway_namespace=gateway.gateway_namespace), opts=after_gateway)


def _feedback(spec: PlatformSpec, cluster: Cluster, gateway: Gateway, namespace: pulumi.Input[str]) -> None:
    """The feedback endpoint where experiments run: the ratings of every model under experiment, counted per arm,
    from the tenants that may call it (their keys authenticate it as they do the model's route)."""
    versions = {name: [v.version for v in model.versions if v.role != "shadow"]
                for name, model in spec.models.items() if model.experiments}
    if not versions:
        return
    tenants = {t.name: [m for m in t.models if m in versions] for t in spec.tenants}
    tenants = {name: models for name, models in tenants.items() if models}
    if not tenants:
        pulumi.log.warn(f"{cluster.name}: no feedback endpoint for the experiments of {', '.join(versions)}: a "
                        "rating's tenant comes from its API key, and no tenant may call these models")
        return
    FeedbackService(f"{cluster.name}-feedback", FeedbackServiceArgs(
        versions=versions, tenants=tenants, namespace=namespace,
        hostnames=[spec.routing.hostname, regional_hostname(cluster.name, spec.routing.hostname)],
        gateway_name=gateway.gateway.gateway_name, gateway_namespace=gateway.gateway.gateway_namespace),
        opts=gateway.after_gateway_api)


def _served_here(spec: PlatformSpec, cluster: Cluster) -> list[tuple[str, Model]]:
    """The models deployed to the cluster, by name."""
    return [(name, model) for name, model in spec.models.items() if cluster in spec.clusters_of(model)]


def node_cache_root(cache: NodeCache) -> str:
    """Where a pool's node cache lives on its nodes: the local disks' mount (cloud) or the spec's folder."""
    return cache.host_path if cache.medium == "host-path" else NODE_CACHE_ROOTS[cache.medium]


def cache_account(pool: str) -> str:
    """The service account a pool's prefetch reads object storage as."""
    return f"{pool}-model-cache"


def _source_uri(model: Model, version: str, cloud: str) -> str:
    """What a replica or a prefetch reads: the version's folder when the catalog lists its files, else the
    archive."""
    artifact = model.artifact(version)
    return artifact.folder_for(cloud) if artifact.files else artifact.uri_for(cloud)


def _weights_readers(spec: PlatformSpec, cluster: Cluster) -> WorkloadReaders:
    """The cluster's vLLM and prefetch service accounts, and the archives and folders they read there."""
    accounts, uris = [], []
    for name, model in _served_here(spec, cluster):
        for version in model.versions:
            accounts.append(resource_name(name, version.version))
            uris.append(_source_uri(model, version.version, cluster.cloud))
        uris += [extra.uri for extra in extra_weights(model)]
    accounts += sorted({cache_account(p.name) for _, m in _served_here(spec, cluster)
                        if m.uses_node_cache(p := m.pool_in(cluster))})
    return WorkloadReaders(namespace=SERVING_NAMESPACE, service_accounts=accounts, uris=sorted(set(uris)),
                           tags=ownership(spec).tags())


def _verified_loading(cluster: Cluster, pool: GpuPool, model: Model, version: str) -> VerifiedLoading | None:
    """The launcher's settings when the model streams its weights or reads the pool's node cache; None for the
    download path."""
    streamed = model.streams_weights()
    cached = model.uses_node_cache(pool)
    if not (streamed or cached):
        return None
    artifact = model.artifact(version)
    return VerifiedLoading(
        files=dict(artifact.files),
        stream_uri=artifact.folder_for(cluster.cloud) if streamed else None,
        node_cache_path=node_cache_root(pool.node_cache) if cached and pool.node_cache else None,
        compile_cache=model.compile_cache and cached,
        streamer_distributed=surface(model.release_of(version)).streamer_distributed,
        weights_version=None if model.weights_version(version) == version else model.weights_version(version),
    )


def _held_versions(spec: PlatformSpec, cluster: Cluster) -> dict[str, HeldVersion]:
    """The cluster's versions that may scale to zero, by Service name: KEDA's HTTP interceptor holds their
    requests until the first replica is ready, as long as the derived cold start on a new node."""
    held = {}
    for name, model in _served_here(spec, cluster):
        for version in model.versions:
            if spec.autoscaling_policy(name, version).scale_to_zero:
                service = resource_name(name, version.version)
                startup = model.startup_on(cluster.cloud, model.pool_in(cluster))
                held[service] = HeldVersion(service=service, port=VLLM_PORT, model=name, version=version.version,
                                            hold_seconds=math.ceil(startup.cold_start_seconds),
                                            generation_seconds=VllmServiceArgs.generation_seconds,
                                            concurrency_per_replica=model.engine.max_num_seqs)
    return held


def _backend_ref(held: Mapping[str, HeldVersion], pooled: list[str], model: str, version: str) -> dict | None:
    """Where a version's share of the route goes: KEDA's interceptor while it may be at zero, its InferencePool
    behind the gateway, else (the embedded cluster, shadows) its Service."""
    if resource_name(model, version) in held:
        return _held_backend(held, resource_name(model, version))
    return pool_backend_ref(model, version) if version in pooled else None


def _held_backend(held: Mapping[str, HeldVersion], service: str) -> dict | None:
    """A version's route backend: KEDA's interceptor while it may be at zero replicas, else its Service."""
    return interceptor_backend_ref(service) if service in held else None


def _pool_layer(spec: PlatformSpec, cluster: Cluster, pool: GpuPool, serving: ServingNamespace,
                images: Mapping[str, pulumi.Input[str]], annotations: Mapping[str, pulumi.Input[str]], secrets: Secrets,
                priorities: ServingPriorities | None, on_cluster: pulumi.ResourceOptions,
                after_keda: pulumi.ResourceOptions) -> None:
    """What makes a pool's replicas start fast: the node cache and its prefetch, the image on every node before
    a replica needs it, and warm slots held by placeholder pods."""
    models = [(name, model) for name, model in _served_here(spec, cluster) if model.pool == pool.name]
    if not models:
        return
    cached = [(name, model) for name, model in models if model.uses_node_cache(pool)]
    on_pool = [images[release] for release in _releases_here(spec, cluster, pool.name)]
    if cached and pool.node_cache:
        NodeModelCache(f"{cluster.name}-{pool.name}-cache", NodeModelCacheArgs(
            pool=pool.name,
            cache_path=node_cache_root(pool.node_cache),
            versions=[CachedVersion(model=name, version=held, uri=_source_uri(model, held, cluster.cloud),
                                    files=dict(model.artifact(held).files),
                                    archive_sha256=None if model.artifact(held).files else model.artifact(held).sha256)
                      for name, model in cached
                      for held in sorted({model.weights_version(v.version) for v in model.versions})],
            image=on_pool[0],
            namespace=serving.namespace,
            service_account=cache_account(pool.name),
            service_account_annotations=dict(annotations),
            compile_cache=any(model.compile_cache for _, model in cached),
            credentials_secret=serving.storage_secret,
            credential_env={file: STORAGE_ENV[file] for file in secrets.storage_credentials},
        ), opts=on_cluster)
    if pool.image_prepull:
        ImagePrepull(f"{cluster.name}-{pool.name}-prepull", ImagePrepullArgs(
            pool=pool.name, images=on_pool, namespace=serving.namespace), opts=on_cluster)
    headroom = pool.warm_headroom
    if headroom and priorities and (headroom.slots or headroom.schedules):
        widest = max(models, key=lambda item: item[1].engine.tensor_parallel_size)[1]
        gpus = widest.engine.tensor_parallel_size
        WarmHeadroom(f"{cluster.name}-{pool.name}-headroom", WarmHeadroomArgs(
            pool=pool.name, namespace=serving.namespace, gpus=gpus, cpu=str(4 * gpus),
            memory=f"{replica_memory_gi(widest.weight_bytes(), gpus)}Gi", slots=headroom.slots,
            windows=[HeadroomWindow(cron=w.cron, duration_minutes=w.duration_minutes, slots=headroom.slots + w.slots)
                     for w in headroom.schedules],
            priority_class=priorities.headroom_class,
        ), opts=after_keda if headroom.schedules else on_cluster)


def engine_settings(model: Model, version: str) -> EngineSettings:
    """The spec's engine section, with the version's generation defaults, as the serving component's settings."""
    engine = model.engine
    lora, speculative = engine.lora, engine.speculative
    proposal: dict[str, object] | None = None
    if speculative is not None:
        proposal = {"method": speculative.method, "num_speculative_tokens": speculative.num_speculative_tokens}
        proposal |= ({"prompt_lookup_max": speculative.prompt_lookup_max} if speculative.method == "ngram"
                     else {"model": extra_dir("draft")})
    defaults = model.generation_defaults_of(version)
    return EngineSettings(
        **engine.model_dump(include={"tensor_parallel_size", "gpu_memory_utilization", "max_model_len",
                                     "max_num_seqs", "max_num_batched_tokens", "quantization",
                                     "enable_prefix_caching", "kv_cache_dtype", "calculate_kv_scales"}),
        kv_offload_gib=engine.kv_offload.cpu_gib if engine.kv_offload else None,
        kv_offload_backend=engine.kv_offload.backend if engine.kv_offload else "native",
        lora=LoraSettings(adapters=tuple(sorted(lora.adapters)), max_loras=lora.max_loras,
                          max_lora_rank=lora.max_lora_rank, max_cpu_loras=lora.max_cpu_loras) if lora else None,
        speculative=proposal,
        generation_overrides=defaults.overrides() if defaults else {},
    )


def extra_weights(model: Model) -> tuple[ExtraWeights, ...]:
    """The verified extras a version's pods fetch beside the weights: its LoRA adapters and the speculative draft
    (each an archive with its sha256, as the catalog's weights)."""
    engine = model.engine
    adapters = sorted((engine.lora.adapters if engine.lora else {}).items())
    extras = [ExtraWeights(f"lora-{name}", a.uri, a.sha256, a.size_mib * 2**20) for name, a in adapters]
    draft = engine.speculative.draft if engine.speculative else None
    if draft is not None:
        extras.append(ExtraWeights("draft", draft.uri, draft.sha256, draft.size_mib * 2**20))
    return tuple(extras)


def _service_args(spec: PlatformSpec, cluster: Cluster, model_name: str, model: Model, version: DeployedVersion,
                  serving: ServingNamespace, image: pulumi.Input[str], secrets: Secrets,
                  annotations: Mapping[str, pulumi.Input[str]], priorities: ServingPriorities | None,
                  held: bool) -> VllmServiceArgs:
    """One deployed version in one cluster as VllmService arguments; its autoscaler owns the replica count."""
    artifact = model.artifact(version.version)
    pool = model.pool_in(cluster)
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
        engine=engine_settings(model, version.version),
        engine_release=model.release_of(version.version),
        extras=extra_weights(model),
        replicas=None,
        storage_secret=serving.storage_secret,
        storage_files=tuple(secrets.storage_credentials),
        service_monitor=spec.observability.enabled,
        cloud=cluster.cloud,
        service_account_annotations=annotations or None,
        loading=_verified_loading(cluster, pool, model, version.version),
        priority_class=SERVING_PRIORITY_CLASS if priorities else None,
        admit_namespaces=(KEDA_NAMESPACE,) if held else (),
        admit_pods=[*([EPP_POD_LABELS] if installs_gateway(cluster) else []),
                    *([SHADOW_POD_LABELS] if any(v.role == "shadow" for v in model.versions) else [])],
        extra_args=tuple(vllm_tracing_args(grpc_endpoint())) if _traces(spec, cluster) else (),
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


@dataclass(frozen=True)
class Platform:
    """What a cluster's platform phase leaves for its gateway and its models."""

    target: GpuCluster
    on_cluster: pulumi.ResourceOptions
    """The cluster's provider, under the cluster in the tree."""
    images: dict[str, pulumi.Input[str]]
    """The serving image of every engine release the cluster runs, by release."""
    serving: ServingNamespace
    priorities: ServingPriorities | None
    held: dict[str, HeldVersion]
    """Versions that may scale to zero, by Service name."""
    crds: CustomResourceDefinitions
    annotations: Mapping[str, pulumi.Input[str]]
    after_keda: pulumi.ResourceOptions
    after_monitoring: pulumi.ResourceOptions
    prometheus_url: str
    observability: ObservabilityStack | None


@dataclass(frozen=True)
class Gateway:
    """What a cluster's gateway phase leaves for its models: the Gateway, and Envoy Gateway where it is installed."""

    gateway: RegionalGateway
    envoy: EnvoyGatewayInstall | None
    after_gateway_api: pulumi.ResourceOptions
    """Options of everything that needs the Gateway API (and, behind Envoy Gateway, its extensions)."""
    credential: UpstreamCredential | None


def _releases_here(spec: PlatformSpec, cluster: Cluster, pool: str | None = None) -> list[str]:
    """The engine releases the versions deployed to `cluster` (on `pool`, when given) run, oldest first."""
    used = {model.release_of(v.version) for _, model in _served_here(spec, cluster)
            if pool is None or model.pool == pool for v in model.versions if v.version in model.catalog}
    return [release for release in RELEASES if release in used]


def _serving_images(spec: PlatformSpec, cluster: Cluster, target: GpuCluster) -> dict[str, pulumi.Input[str]]:
    """One serving image per engine release in use: built on the release's image and pushed where the cluster has
    a registry of ours, else the spec's image for the release (or the release's official one). The default release
    keeps the image resource's first name, so stacks from before per-version engines keep their image."""
    images: dict[str, pulumi.Input[str]] = {}
    for release in _releases_here(spec, cluster):
        base = spec.images.vllm_for(release)
        if target.registry_login is None or base is None:
            images[release] = base or ""
            continue
        suffix = "" if release == DEFAULT_RELEASE else f"-{release.replace('.', '-')}"
        images[release] = VllmImage(f"{cluster.name}-vllm-image{suffix}", VllmImageArgs(
            login=target.registry_login, context=plugin_relative("images/vllm"), release=release, base=base),
            opts=pulumi.ResourceOptions(parent=target).merge(MOVED_FROM_ROOT)).ref
    return images


def cluster_platform(spec: PlatformSpec, cluster: Cluster, secrets: Secrets, gcp_project: str | None) -> Platform:
    """Phase 1: the cluster and what every model on it stands on: the serving namespace and image, CRDs,
    monitoring, KEDA, the pools' node caches, pre-pulls and warm slots, and the scale-from-zero interceptor."""
    target = _cluster(spec, cluster, secrets, gcp_project)
    on_cluster = pulumi.ResourceOptions(providers=[target.provider], parent=target).merge(MOVED_FROM_ROOT)
    images = _serving_images(spec, cluster, target)
    served = _served_here(spec, cluster)
    serving = ServingNamespace(f"{cluster.name}-serving", ServingNamespaceArgs(
        api_key=secrets.api_key, storage_credentials=dict(secrets.storage_credentials),
        secret_data_out_of_band=bool(cluster.render_dir),
        node_cache=any(model.uses_node_cache(model.pool_in(cluster)) for _, model in served)), opts=on_cluster)
    priorities = (ServingPriorities(f"{cluster.name}-priorities", opts=on_cluster)
                  if any(m.pool_in(cluster).warm_headroom for _, m in served) else None)
    held = _held_versions(spec, cluster)
    crds = _custom_resource_definitions(spec, cluster, on_cluster, holds_requests=bool(held))
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
    for pool in cluster.pools:
        _pool_layer(spec, cluster, pool, serving, images, annotations, secrets, priorities, on_cluster, after_keda)
    if held:
        ScaleFromZero(f"{cluster.name}-scale-from-zero", ScaleFromZeroArgs(
            namespace=serving.namespace, versions=list(held.values()), route_namespace=SERVING_NAMESPACE,
            install_addon=cluster.addons == "helm"), opts=after_keda)
    return Platform(target=target, on_cluster=on_cluster, images=images, serving=serving, priorities=priorities,
                    held=held, crds=crds, annotations=annotations, after_keda=after_keda,
                    after_monitoring=after_monitoring,
                    prometheus_url=(spec.observability.prometheus_url or PROMETHEUS_URL).rstrip("/"),
                    observability=observability)


def cluster_gateway(spec: PlatformSpec, cluster: Cluster, secrets: Secrets, platform: Platform) -> Gateway:
    """Phase 2: the Gateway, with Envoy Gateway, its certificate and DNS, and the upstream credential where the
    stack installs the gateway."""
    on_cluster = platform.on_cluster
    envoy = _envoy_gateway(spec, cluster, platform.observability, on_cluster)
    # The Gateway and routes wait for the Gateway API: Envoy Gateway's chart, or the stack's own CRDs.
    after_gateway_api = on_cluster.merge(pulumi.ResourceOptions(
        depends_on=[d for d in (envoy, platform.crds) if d]))
    gateway = RegionalGateway(
        f"{cluster.name}-gateway",
        RegionalGatewayArgs(hostname=spec.routing.hostname,
                            regional_hostname=regional_hostname(cluster.name, spec.routing.hostname),
                            serving_namespace=platform.serving.namespace),
        opts=after_gateway_api,
    )
    credential = None
    if envoy is not None:
        _certificates_and_dns(spec, cluster, platform.target, gateway, on_cluster)
        # Behind the gateway, vLLM's own key is put on each request: tenants only ever hold theirs.
        credential = UpstreamCredential(f"{cluster.name}-upstream-credential", UpstreamCredentialArgs(
            namespace=platform.serving.namespace, api_key=secrets.api_key), opts=after_gateway_api)
    return Gateway(gateway=gateway, envoy=envoy, after_gateway_api=after_gateway_api, credential=credential)


def serve_model(spec: PlatformSpec, cluster: Cluster, model_name: str, model: Model, secrets: Secrets,
                platform: Platform, gateway: Gateway) -> pulumi.Output[str]:
    """Phase 3, per model: its versions (each a Service, its autoscaler and, behind Envoy Gateway, its
    InferencePool) and the route that splits traffic between them; returns the route's name."""
    node = ModelNode(f"{cluster.name}-{model_name}", opts=pulumi.ResourceOptions(parent=platform.target))
    in_model = pulumi.ResourceOptions(parent=node)
    pooled = pooled_versions(model_name, model, platform.held) if gateway.envoy is not None else []
    for version in model.versions:
        _serve_version(spec, cluster, model_name, model, version, secrets, platform, gateway, node,
                       pooled=version.version in pooled)
    shadows = [v.version for v in model.versions if v.role == "shadow"]
    if shadows:
        answering = [v for v in model.versions if v.role != "shadow"]
        stable = next((v for v in answering if v.role == "stable"), max(answering, key=lambda v: v.weight))
        ShadowComparator(f"{cluster.name}-{model_name}-shadow-compare", ShadowComparatorArgs(
            model_name=model_name, stable_version=stable.version, shadow_versions=shadows,
            namespace=platform.serving.namespace, service_monitor=spec.observability.enabled),
            opts=platform.after_monitoring.merge(in_model))
    route = ModelRollout(
        f"{cluster.name}-{model_name}",
        ModelRolloutArgs(
            model_name=model_name,
            versions=[RolloutVersion(version=v.version, weight=v.weight, role=v.role,
                                     backend_ref=_backend_ref(platform.held, pooled, model_name, v.version))
                      for v in model.versions],
            namespace=platform.serving.namespace,
            hostnames=[spec.routing.hostname, regional_hostname(cluster.name, spec.routing.hostname)],
            gateway_name=gateway.gateway.gateway_name,
            gateway_namespace=gateway.gateway.gateway_namespace,
            request_filters=[credential_filter()] if gateway.credential is not None else [],
            # Behind Envoy Gateway the version split picks each version's own rule.
            split="version_header" if gateway.envoy is not None else "weights",
            annotations=experiment_annotations(model),
            mirror=mirror_backend_ref(model_name) if shadows else None,
            served_by={s.version: served_by(model_name, s.version, cluster.name)
                       for s in version_shares(model)} if gateway.envoy is not None else None,
        ),
        opts=gateway.after_gateway_api.merge(in_model).merge(pulumi.ResourceOptions(
            depends_on=[gateway.credential] if gateway.credential is not None else [])),
    )
    return route.route_name


def experiment_annotations(model: Model) -> dict[str, str] | None:
    """The route's record of its experiments: each treatment's weight beside the weight its verdict allows."""
    if not model.experiments:
        return None
    weights = {v.version: v.weight for v in model.versions}
    record = [{"name": e.name, "treatments": {t: weights.get(t, 0) for t in e.treatments},
               "allowed": e.allowed_weight(), "verdict": e.verdict.decision if e.verdict else None,
               "report": e.verdict.report_sha256 if e.verdict else None}
              for e in model.experiments if e.strategy != "shadow"]
    return {EXPERIMENTS_ANNOTATION: json.dumps(record, sort_keys=True)} if record else None


def _serve_version(spec: PlatformSpec, cluster: Cluster, model_name: str, model: Model, version: DeployedVersion,
                   secrets: Secrets, platform: Platform, gateway: Gateway, model_node: ModelNode,
                   pooled: bool) -> None:
    """One deployed version in one cluster, under its node in the tree."""
    name = f"{cluster.name}-{model_name}-{version.version}"
    node = VersionNode(name, opts=pulumi.ResourceOptions(parent=model_node))
    in_version = pulumi.ResourceOptions(parent=node)
    kname = resource_name(model_name, version.version)
    held = kname in platform.held
    service = VllmService(
        name,
        _service_args(spec, cluster, model_name, model, version, platform.serving,
                      platform.images[model.release_of(version.version)], secrets,
                      platform.annotations, platform.priorities, held),
        opts=platform.after_monitoring.merge(in_version),
    )
    ModelAutoscaler(
        name,
        ModelAutoscalerArgs(policy=spec.autoscaling_policy(model_name, version),
                            deployment_name=service.deployment_name, namespace=platform.serving.namespace,
                            model=model_name, version=version.version, prometheus_url=platform.prometheus_url,
                            extra_triggers=(http_trigger(kname),) if held else ()),
        opts=platform.after_keda.merge(in_version),
    )
    if pooled:
        ModelInferencePool(name, ModelInferencePoolArgs(
            model=model_name, version=version.version, namespace=platform.serving.namespace,
            selector=pod_selector(model_name, version.version), target_port=VLLM_PORT,
            tracing_endpoint=grpc_endpoint() if _traces(spec, cluster) else None,
            lora=model.engine.lora is not None),
            opts=gateway.after_gateway_api.merge(in_version))


PHASES = (cluster_platform, cluster_gateway, serve_model)
"""compose()'s phases per cluster, in order (the README's architecture picture is drawn from them)."""


def compose(spec: PlatformSpec, secrets: Secrets, gcp_project: str | None = None) -> dict[str, pulumi.Output]:
    """Register every component of the environment, cluster by cluster in phases, then what spans clusters
    (hybrid links, global routing); return the stack outputs."""
    outputs: dict[str, pulumi.Output] = {}
    targets: dict[str, GpuCluster] = {}
    for cluster in spec.clusters:
        platform = cluster_platform(spec, cluster, secrets, gcp_project)
        targets[cluster.name] = platform.target
        gateway = cluster_gateway(spec, cluster, secrets, platform)
        routes = {name: serve_model(spec, cluster, name, model, secrets, platform, gateway)
                  for name, model in _served_here(spec, cluster)}
        if gateway.envoy is not None:
            _tenants(spec, cluster, secrets, gateway.gateway, routes, platform.serving.namespace,
                     gateway.after_gateway_api)
            _feedback(spec, cluster, gateway, platform.serving.namespace)
        outputs[f"{cluster.name}:cluster"] = platform.target.cluster_name
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
