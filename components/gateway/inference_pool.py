"""ModelInferencePool: a model version's InferencePool and its endpoint picker (EPP), which chooses the replica
for each request by prefix-cache affinity, queue depth and KV-cache use instead of round-robin.

The EPP is llm-d's router (the inference extension moved its EPP to github.com/llm-d/llm-d-router; the extension
module keeps the InferencePool API). Flags, ports, probes and the plugin names below follow that project's chart
(`config/charts/routerlib/templates/_deployment.yaml` and `_config.yaml`): ext-proc gRPC on 9002, gRPC health on
9003, metrics on 9090, `--pool-name/--pool-namespace/--pool-group/--config-file`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import yaml
from llmplane.components.labels import k8s_labels
from llmplane.components.network_policy import JAEGER_PODS, OTLP_GRPC_PORT, api_server, pods
from llmplane.components.options import children_of
from llmplane.components.serving.vllm_service import GATEWAY_NAMESPACE, MONITORING_NAMESPACE

from .route_refs import POOL_GROUP, pool_name

EPP_IMAGE = (
    "ghcr.io/llm-d/llm-d-router-endpoint-picker:v0.10.0"
    "@sha256:2e516fa1310da7be59b82beb1445362139597d6d553ef04d546716abe3aaaa70"
)
"""The llm-d router's endpoint picker v0.10.0, by digest (as pinned in public deployment notes, e.g. the
'Selected pins' table of an llm-d integration repository and a KServe benchmark record naming v0.10.0)."""
EXT_PROC_PORT = 9002
HEALTH_PORT = 9003
METRICS_PORT = 9090
EPP_POD_LABELS = {"app.kubernetes.io/name": "endpoint-picker"}
"""Labels every endpoint picker pod carries: what the vLLM pods' NetworkPolicy admits to their `/metrics`."""
SCORER_WEIGHTS = {"queue-scorer": 2, "kv-cache-utilization-scorer": 2, "prefix-cache-scorer": 3}
"""Scorer weights: prefix-cache affinity first, queue depth and KV-cache use as the tie-breakers that keep one
replica from being swamped by a popular prefix (the weights of the llm-d router chart's default profile)."""


LORA_SCORER = ("lora-affinity-scorer", 2)
"""For versions serving LoRA adapters: prefer a replica that already holds the requested adapter, or has a free
slot to load it, from vLLM's `vllm:lora_requests_info` (the llm-d router's and the inference extension's
`lora-affinity-scorer`, pkg/epp/.../scorer/lora_affinity.go; KServe turns it on for LoRA the same way)."""


def epp_config(model_server_port: int = 8000, lora: bool = False) -> dict:
    """The EndpointPickerConfig: prefix-cache-, queue- and KV-cache-aware scoring of vLLM replicas, which the
    EPP scrapes at `/metrics` (vllm:num_requests_waiting, vllm:kv_cache_usage_perc), and adapter affinity where
    the version serves LoRA adapters (requests name the adapter as their model)."""
    weights = {**SCORER_WEIGHTS, **(dict([LORA_SCORER]) if lora else {})}
    return {
        "apiVersion": "llm-d.ai/v1alpha1",
        "kind": "EndpointPickerConfig",
        "plugins": [
            *({"type": scorer} for scorer in weights),
            {"type": "metrics-data-source", "parameters": {"scheme": "http", "path": "/metrics",
                                                           "insecureSkipVerify": True}},
            {"type": "core-metrics-extractor"},
        ],
        "schedulingProfiles": [{"name": "default", "plugins": [
            {"pluginRef": scorer, "weight": weight} for scorer, weight in weights.items()]}],
    }


@dataclass(frozen=True)
class ModelInferencePoolArgs:
    """One model version in one cluster: the pods to pool and where."""

    model: str
    """Model name."""
    version: str
    """Deployed version; the pool is named like its Deployment (`routing.pool_name`)."""
    namespace: pulumi.Input[str]
    """Namespace of the version's vLLM pods."""
    selector: dict[str, str]
    """Labels selecting the version's vLLM pods (the VllmService's selector)."""
    target_port: int = 8000
    """Port vLLM serves on."""
    image: str = EPP_IMAGE
    """Endpoint picker image, by digest."""
    tracing_endpoint: str | None = None
    """OTLP gRPC endpoint the EPP sends traces to, or no tracing."""
    lora: bool = False
    """The version serves LoRA adapters: score replicas by adapter affinity too."""
    gateway_namespace: str = GATEWAY_NAMESPACE
    """Namespace of the Envoy proxies, the only callers of the EPP's ext_proc port."""


class ModelInferencePool(pulumi.ComponentResource):
    """InferencePool, EPP ServiceAccount, RBAC, config, Deployment, Service and NetworkPolicy of one model
    version."""

    pool_name: pulumi.Output[str]
    """Name of the InferencePool (what HTTPRoute backendRefs name)."""
    epp_service: pulumi.Output[str]
    """Name of the EPP's Service."""

    def __init__(self, name: str, args: ModelInferencePoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:gateway:ModelInferencePool", name, None, opts)
        child = children_of(self, opts)
        pool = pool_name(args.model, args.version)
        epp = f"{pool}-epp"[:63]
        labels = k8s_labels(name=EPP_POD_LABELS["app.kubernetes.io/name"], instance=epp, component="inference-gateway",
                            version="v0.10.0", model=args.model, model_version=args.version)
        selector = {"app.kubernetes.io/instance": epp}
        meta = {"name": epp, "namespace": args.namespace, "labels": labels}
        account = k8s.core.v1.ServiceAccount(f"{name}-epp", metadata=meta, automount_service_account_token=True,
                                             opts=child)
        role = k8s.rbac.v1.Role(f"{name}-epp", metadata=meta, rules=[
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [POOL_GROUP], "resources": ["inferencepools"], "verbs": ["get", "list", "watch"]},
        ], opts=child)
        k8s.rbac.v1.RoleBinding(f"{name}-epp", metadata=meta, role_ref={
            "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role.metadata.name},
            subjects=[{"kind": "ServiceAccount", "name": account.metadata.name, "namespace": args.namespace}],
            opts=child)
        # The picker authenticates and authorizes whoever reads its /metrics (`--metrics-endpoint-auth`, on by
        # default: pkg/epp/server/options.go of the inference extension v1.3.0, llm-d-router v0.10.0), through
        # the API server's TokenReview and SubjectAccessReview: cluster-scoped, so a ClusterRole.
        # Named like the picker: a model version has one picker per cluster.
        cluster_meta = {"name": epp, "labels": labels}
        auth = k8s.rbac.v1.ClusterRole(f"{name}-epp-auth", metadata=cluster_meta, rules=[
            {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
            {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
        ], opts=child)
        k8s.rbac.v1.ClusterRoleBinding(f"{name}-epp-auth", metadata=cluster_meta, role_ref={
            "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": auth.metadata.name},
            subjects=[{"kind": "ServiceAccount", "name": account.metadata.name, "namespace": args.namespace}],
            opts=child)
        config = k8s.core.v1.ConfigMap(f"{name}-epp", metadata=meta,
                                       data={"config.yaml": yaml.safe_dump(epp_config(args.target_port, args.lora),
                                                                           sort_keys=False)}, opts=child)
        env = [{"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
               {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
        if args.tracing_endpoint:
            env += [{"name": "OTEL_SERVICE_NAME", "value": epp},
                    {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": args.tracing_endpoint},
                    {"name": "OTEL_TRACES_EXPORTER", "value": "otlp"}]
        grpc_probe = {"grpc": {"port": HEALTH_PORT, "service": "inference-extension"}}
        k8s.apps.v1.Deployment(f"{name}-epp", metadata=meta, spec={
            "replicas": 1,  # one active picker keeps one prefix-cache index (the chart's recommended pattern)
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": {**labels, **selector}}, "spec": {
                "serviceAccountName": account.metadata.name,
                "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{
                    "name": "epp",
                    "image": args.image,
                    "args": ["--pool-name", pool, "--pool-namespace", args.namespace, "--pool-group", POOL_GROUP,
                             "--config-file", "/config/config.yaml", "--zap-encoder", "json",
                             "--grpc-health-port", str(HEALTH_PORT),
                             f"--tracing={'true' if args.tracing_endpoint else 'false'}"],
                    "env": env,
                    "ports": [{"name": "grpc", "containerPort": EXT_PROC_PORT},
                              {"name": "grpc-health", "containerPort": HEALTH_PORT},
                              {"name": "metrics", "containerPort": METRICS_PORT}],
                    "readinessProbe": {**grpc_probe, "periodSeconds": 2},
                    "livenessProbe": {**grpc_probe, "initialDelaySeconds": 5, "periodSeconds": 10},
                    "resources": {"requests": {"cpu": "1", "memory": "2Gi"},
                                  "limits": {"cpu": "4", "memory": "8Gi"}},
                    "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                        "capabilities": {"drop": ["ALL"]}},
                    "volumeMounts": [{"name": "config", "mountPath": "/config", "readOnly": True}],
                }],
                "volumes": [{"name": "config", "configMap": {"name": config.metadata.name}}],
            }},
        }, opts=child)
        service = k8s.core.v1.Service(f"{name}-epp", metadata=meta, spec={
            "selector": selector,
            "ports": [{"name": "grpc-ext-proc", "port": EXT_PROC_PORT, "appProtocol": "http2"},
                      {"name": "metrics", "port": METRICS_PORT}],
        }, opts=child)
        # Out: the API (it watches the pool's pods), the pool's vLLM pods (their /metrics and, with the
        # serving namespace's DNS, nothing else of it), and Jaeger when it traces.
        out = [api_server(), {"peers": [{"podSelector": {"matchLabels": dict(args.selector)}}],
                              "ports": [{"port": args.target_port, "protocol": "TCP"}]}]
        if args.tracing_endpoint:
            out.append({"peers": [pods(MONITORING_NAMESPACE, JAEGER_PODS)],
                        "ports": [{"port": OTLP_GRPC_PORT, "protocol": "TCP"}]})
        k8s.networking.v1.NetworkPolicy(f"{name}-epp", metadata=meta, spec={
            "podSelector": {"matchLabels": selector},
            "policyTypes": ["Ingress", "Egress"],
            "egress": [{"to": r["peers"], "ports": r["ports"]} for r in out],
            "ingress": [
                {"from": [{"namespaceSelector": {"matchLabels": {
                    "kubernetes.io/metadata.name": args.gateway_namespace}}}],
                 "ports": [{"port": EXT_PROC_PORT, "protocol": "TCP"}]},
                {"from": [{"namespaceSelector": {"matchLabels": {
                    "kubernetes.io/metadata.name": MONITORING_NAMESPACE}}}],
                 "ports": [{"port": METRICS_PORT, "protocol": "TCP"}]},
            ],
        }, opts=child)
        inference_pool = k8s.apiextensions.CustomResource(
            f"{name}-pool",
            api_version=f"{POOL_GROUP}/v1",
            kind="InferencePool",
            metadata={"name": pool, "namespace": args.namespace, "labels": {**labels, "app.kubernetes.io/name": "vllm",
                                                                             "app.kubernetes.io/instance": pool}},
            spec={
                "selector": {"matchLabels": args.selector},
                "targetPorts": [{"number": args.target_port}],
                # FailClose is what runs: Envoy AI Gateway v1.1.0 builds the picker's ext_proc filter with
                # failure_mode_allow false whatever the pool says (internal/extensionserver/inferencepool.go).
                "endpointPickerRef": {"name": service.metadata.name, "port": {"number": EXT_PROC_PORT},
                                      "failureMode": "FailClose"},
            },
            opts=child,
        )
        self.pool_name = inference_pool.metadata.apply(lambda m: m["name"])
        self.epp_service = service.metadata.name
        self.register_outputs({"pool_name": self.pool_name, "epp_service": self.epp_service})
