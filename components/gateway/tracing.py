"""TracingBackend: Jaeger (Apache-2.0) in the monitoring namespace, receiving OpenTelemetry traces over OTLP gRPC
and HTTP from the gateway's proxies, the endpoint pickers and vLLM, and the vLLM arguments that send them there.

All-in-one with in-memory storage: traces are for looking at a slow or failed request of the last hours, not an
archive (the access logs are the audit record), so a restart losing them costs little and there is no volume to
manage. The collector configuration follows Jaeger v2's OpenTelemetry-collector layout (`jaeger_storage` with a
`memory` backend, `jaeger_query`, the `otlp` receiver; chart 4.11.1's `userconfig`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from llmplane.components.labels import k8s_labels
from llmplane.components.network_policy import JAEGER_PODS, OTLP_GRPC_PORT, PROXY_PODS, pods, policy, rule
from llmplane.components.options import children_of
from llmplane.components.serving.namespace import SERVING_NAMESPACE
from llmplane.components.serving.vllm_service import MONITORING_NAMESPACE, TRACES_FLAG, VLLM_PODS
from llmplane.facts.namespaces import GATEWAY_NAMESPACE

from .charts import JAEGER
from .inference_pool import EPP_POD_LABELS

SERVICE = "jaeger"
"""Name of Jaeger's Service (the chart's `fullnameOverride`)."""
OTLP_HTTP_PORT = 4318
QUERY_PORT = 16686


def grpc_endpoint(namespace: str = MONITORING_NAMESPACE) -> str:
    """The OTLP gRPC endpoint of a TracingBackend in `namespace`, as a plain value for arguments built before
    deployment (vLLM's command line)."""
    return f"http://{SERVICE}.{namespace}.svc.cluster.local:{OTLP_GRPC_PORT}"


def vllm_tracing_args(endpoint: str) -> list[str]:
    """`vllm serve` arguments sending each request's spans to `endpoint` (OTLP gRPC, vLLM's default protocol).

    `--collect-detailed-traces` is left out: vLLM 0.14.0 documents it as possibly costly and blocking
    (`ObservabilityConfig.collect_detailed_traces`), and the request span already carries queue time, time to
    first token and token counts. The image must carry the OpenTelemetry SDK and OTLP exporter: vLLM refuses
    `--otlp-traces-endpoint` without them."""
    if not endpoint.startswith(("http://", "https://")):
        raise ValueError(f"vllm_tracing_args: endpoint '{endpoint}' has no scheme; write http://host:4317 "
                         "(plaintext inside the cluster) or https://host:4317")
    return [TRACES_FLAG, endpoint]


def collector_config(max_traces: int) -> dict:
    """Jaeger v2's configuration: OTLP receivers on gRPC and HTTP, batched into an in-memory store of `max_traces`
    traces, the query UI/API, and the health check the chart probes."""
    return {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query", "healthcheckv2"],
            "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["batch"],
                                     "exporters": ["jaeger_storage_exporter"]}},
        },
        "extensions": {
            "healthcheckv2": {"use_v2": True, "http": {"endpoint": "0.0.0.0:13133"}},
            "jaeger_query": {"storage": {"traces": "memory_store"}},
            "jaeger_storage": {"backends": {"memory_store": {"memory": {"max_traces": max_traces}}}},
        },
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"0.0.0.0:{OTLP_GRPC_PORT}"},
                                             "http": {"endpoint": f"0.0.0.0:{OTLP_HTTP_PORT}"}}}},
        "processors": {"batch": {}},
        "exporters": {"jaeger_storage_exporter": {"trace_storage": "memory_store"}},
    }


@dataclass(frozen=True)
class TracingBackendArgs:
    """Where Jaeger runs and how much it keeps."""

    namespace: pulumi.Input[str] = MONITORING_NAMESPACE
    """Namespace (the observability stack's; create it first)."""
    max_traces: int = 100_000
    """Traces kept in memory; the oldest go first."""
    memory_limit: str = "4Gi"
    """Memory limit of the Jaeger pod (sized with max_traces)."""

    def __post_init__(self) -> None:
        if self.max_traces < 1:
            raise ValueError(f"TracingBackendArgs.max_traces: {self.max_traces}; keep at least 1 trace")


class TracingBackend(pulumi.ComponentResource):
    """Jaeger all-in-one by pinned chart, receiving OTLP."""

    otlp_grpc_endpoint: pulumi.Output[str]
    """OTLP gRPC endpoint (vLLM's `--otlp-traces-endpoint`, the endpoint pickers' OTEL_EXPORTER_OTLP_ENDPOINT)."""
    otlp_http_endpoint: pulumi.Output[str]
    """OTLP HTTP endpoint."""
    service: pulumi.Output[str]
    """Name of the collector's Service (EnvoyGatewayInstall's TracingTarget)."""
    namespace: pulumi.Output[str]
    """Its namespace."""

    def __init__(self, name: str, args: TracingBackendArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:gateway:TracingBackend", name, None, opts)
        child = children_of(self, opts)
        labels = k8s_labels(name="jaeger", instance=SERVICE, component="tracing", version=JAEGER.version)
        release = JAEGER.release(f"{name}-jaeger", args.namespace, {
            "fullnameOverride": SERVICE,
            "commonLabels": labels,
            "userconfig": collector_config(args.max_traces),
            "jaeger": {
                "enabled": True,
                "resources": {"requests": {"cpu": "250m", "memory": "512Mi"},
                              "limits": {"cpu": "2", "memory": args.memory_limit}},
                "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
                "service": {"type": "ClusterIP"},  # the query UI (16686) is for port-forwards, never exposed
            },
        }, child)
        # Traces in only, from the gateway's proxies, vLLM and the endpoint pickers; the query
        # port admits nobody (no Grafana datasource reads Jaeger), and Jaeger itself opens no connection.
        policy(f"{name}-netpol", args.namespace, "jaeger", labels, JAEGER_PODS, child, ingress=[
            rule([pods(GATEWAY_NAMESPACE, PROXY_PODS), pods(SERVING_NAMESPACE, VLLM_PODS),
                  pods(SERVING_NAMESPACE, EPP_POD_LABELS)], [OTLP_GRPC_PORT])])
        namespace = pulumi.Output.all(release.id, args.namespace).apply(lambda v: v[1])
        self.otlp_grpc_endpoint = namespace.apply(grpc_endpoint)
        self.otlp_http_endpoint = namespace.apply(
            lambda ns: f"http://{SERVICE}.{ns}.svc.cluster.local:{OTLP_HTTP_PORT}")
        self.service = pulumi.Output.all(release.id, SERVICE).apply(lambda v: v[1])
        self.namespace = pulumi.Output.from_input(args.namespace)
        self.register_outputs({"otlp_grpc_endpoint": self.otlp_grpc_endpoint,
                               "otlp_http_endpoint": self.otlp_http_endpoint, "service": self.service,
                               "namespace": self.namespace})
