"""EnvoyGatewayInstall: the Gateway API implementation of every cluster — Envoy Gateway, its GatewayClass `envoy`,
the proxies' access logs and traces, and the Valkey store its global rate limiter counts tenants' tokens in.

The same implementation on EKS, GKE and on-prem: tenants, API keys, token budgets, the Lua token meter and the
failover Backends are Envoy Gateway resources, so one configuration holds everywhere and a tenant meets the same
limits in every region. GKE's own gateway has no global rate limit charged by a response-time cost (tokens), and the
AWS Load Balancer Controller's gateway none at all; both only front Envoy here (a cloud network load balancer in
front of the Envoy Service).

API fields follow Envoy Gateway v1.8.1 (api/v1alpha1 in the Go module github.com/envoyproxy/gateway): the
controller's `rateLimit.backend.redis.url` and `extensionApis.{enableBackend,enableLua}` (Lua policies and Backend
resources are off by default), and EnvoyProxy's `telemetry.accessLog` and `telemetry.tracing`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
from llmplane.components.labels import k8s_labels
from llmplane.components.network_policy import (
    PROXY_PODS,
    api_server,
    from_api_server,
    local,
    namespace_baseline,
    pods,
    policy,
    rule,
)
from llmplane.components.options import children_of
from llmplane.facts.namespaces import GATEWAY_NAMESPACE
from llmplane.monitoring.tenant_usage import ACCESS_LOG_KIND

from ..serving.model_rollout import SERVED_BY_HEADER
from .charts import AI_GATEWAY, AI_GATEWAY_CRDS, ENVOY_GATEWAY, VALKEY_IMAGE
from .route_refs import EG_API, POOL_GROUP
from .tenant_budgets import CLIENT_HEADER, USAGE_METADATA

GATEWAY_CLASS = "envoy"
"""Name of the GatewayClass every cluster's Gateway uses."""
CONTROLLER_NAME = "gateway.envoyproxy.io/gatewayclass-controller"
"""Envoy Gateway's controller name (the chart's `config.envoyGateway.gateway.controllerName`)."""
NAMESPACE = "envoy-gateway-system"
"""Namespace of the controller and its rate limiter. The Envoy proxies run in each Gateway's own namespace
(`deploy.type: GatewayNamespace`), the one the vLLM pods' NetworkPolicy admits."""
AI_GATEWAY_NAMESPACE = "envoy-ai-gateway-system"
"""Namespace of Envoy AI Gateway's controller, the extension server that resolves InferencePools."""
AI_GATEWAY_EXTENSION_PORT = 1063
AI_GATEWAY_EXTENSION = {"hostname": f"ai-gateway-controller.{AI_GATEWAY_NAMESPACE}.svc.cluster.local",
                        "port": AI_GATEWAY_EXTENSION_PORT}
"""Where Envoy Gateway calls the extension server (the AI Gateway chart's controller Service and gRPC port)."""
RATE_LIMIT_POD_LABELS = {"app.kubernetes.io/name": "envoy-ratelimit", "app.kubernetes.io/component": "ratelimit"}
"""Labels of the rate-limit pods Envoy Gateway deploys (internal/infrastructure/kubernetes/ratelimit/resource.go,
v1.8.1): the only clients Valkey admits."""
VALKEY_PORT = 6379
CONTROLLER_PODS = {"control-plane": "envoy-gateway"}
"""Label of Envoy Gateway's controller pods (chart gateway-helm v1.8.1 templates/envoy-gateway-deployment.yaml)."""
CERTGEN_PODS = {"app": "certgen"}
"""The chart's pre-install Job that writes the controller's TLS Secrets (templates/certgen.yaml)."""
XDS_PORT = 18000
"""The controller's xDS port the proxies connect to (internal/xds/bootstrap/bootstrap.go `DefaultXdsServerPort`)."""
RATE_LIMIT_XDS_PORT = 18001
"""The controller's xDS port for the rate limiter's configuration (chart value `service.ports` `ratelimit`)."""
CONTROLLER_WEBHOOK_PORT = 9443
"""The controller's topology-injector webhook (chart `topologyInjector.enabled: true`), called by the API server."""
RATE_LIMIT_PORT = 8081
"""The rate limiter's gRPC port (internal/infrastructure/kubernetes/ratelimit/resource.go `InfraGRPCPort`)."""
AI_GATEWAY_PODS = {"app.kubernetes.io/name": "ai-gateway-helm"}
"""Label of Envoy AI Gateway's controller pods (ai-gateway-helm v1.1.0 templates/_helpers.tpl
`ai-gateway-helm.controller.selectorLabels`: the chart's name)."""
AI_GATEWAY_WEBHOOK_PORT = 9443
"""Its mutating webhook (values.yaml `controller.service.ports` `mutating-webhook`), called by the API server."""
LUA_VALIDATION = "InsecureSyntax"
"""How Envoy Gateway checks our Lua policies (EnvoyProxy `luaValidation`, api/v1alpha1/envoyproxy_types.go): syntax
only. Its default, Strict, runs each script against its own mock of Envoy's API, which lacks `clearRouteCache`
(internal/gatewayapi/luavalidator/mocks.lua, v1.8.1 and v1.9.1), so it refuses the version split, and a refused
EnvoyExtensionPolicy turns every route of the Gateway into a direct 500 (seen in tests/test_gateway_controller.py).
The scripts themselves run in a real Lua against harnesses of Envoy's API in tests/test_gateway_lua.py and
tests/test_gateway_version_split.py."""
PROXY_SERVICE_ANNOTATIONS = {
    "aws": {"service.beta.kubernetes.io/aws-load-balancer-type": "external",
            "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
            "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing"},
    "gcp": {},
    "onprem": {},
}
"""Annotations of the proxies' LoadBalancer Service per cloud: on AWS an internet-facing NLB with IP targets from the
AWS Load Balancer Controller; GKE's default external passthrough load balancer; on-prem the site's own."""


def _usage(key: str) -> str:
    return f"%DYNAMIC_METADATA({USAGE_METADATA[0]}:{key})%"


ACCESS_LOG_FIELDS = {
    "log": ACCESS_LOG_KIND,
    "start_time": "%START_TIME%",
    "tenant": _usage("tenant"),
    "client": f"%REQ({CLIENT_HEADER})%",
    "model": _usage("model"),
    "version": _usage("version"),
    "cluster": _usage("cluster"),
    "served_by": f"%RESP({SERVED_BY_HEADER})%",
    "prompt_tokens": _usage("prompt_tokens"),
    "completion_tokens": _usage("completion_tokens"),
    "total_tokens": _usage("total_tokens"),
    "status": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%",
    "duration_ms": "%DURATION%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "upstream": "%UPSTREAM_HOST%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "trace_id": "%TRACE_ID%",
}
"""One JSON line per request: tenant (and the client id of its key, never the key), model, version and cluster
that answered, tokens (written by the token-usage filter), status and duration. Envoy command operators."""


def sampling_fraction(percent: float) -> dict[str, int]:
    """A sample percentage as a Gateway API Fraction in hundredths of a percent."""
    numerator = round(percent * 100)
    if not 1 <= numerator <= 10_000:
        raise ValueError(f"EnvoyGatewayArgs.tracing_sample_percent: {percent} is outside 0.01..100; set "
                         "gateway.tracingSamplePercent between 0.01 and 100")
    return {"numerator": numerator, "denominator": 10_000}


@dataclass(frozen=True)
class TracingTarget:
    """Where the proxies send OpenTelemetry traces."""

    service: pulumi.Input[str]
    """Name of the collector's Service (TracingBackend.service)."""
    namespace: pulumi.Input[str]
    """Its namespace."""
    port: int = 4317
    """Its OTLP gRPC port."""


@dataclass(frozen=True)
class EnvoyGatewayArgs:
    """The cluster's cloud and what the proxies report."""

    cloud: str
    """aws, gcp or onprem: picks the proxies' load-balancer annotations."""
    access_log_retention_days: int
    """Days the access logs are kept (`gateway.accessLogRetentionDays`); Loki keeps them, this passes it on."""
    tracing: TracingTarget | None = None
    """Trace collector, or no tracing."""
    tracing_sample_percent: float = 1.0
    """Share of requests traced, in percent (`gateway.tracingSamplePercent`)."""
    proxy_replicas: int = 2
    """Envoy proxies per Gateway (two survive a node drain)."""

    def __post_init__(self) -> None:
        if self.cloud not in PROXY_SERVICE_ANNOTATIONS:
            raise ValueError(f"EnvoyGatewayArgs.cloud: '{self.cloud}' is not a cloud; use one of "
                             f"{', '.join(PROXY_SERVICE_ANNOTATIONS)}")
        if self.proxy_replicas < 1:
            raise ValueError(f"EnvoyGatewayArgs.proxy_replicas: {self.proxy_replicas} would leave the Gateway "
                             "without a proxy; use 1 or more")
        if self.access_log_retention_days < 1:
            raise ValueError(f"EnvoyGatewayArgs.access_log_retention_days: {self.access_log_retention_days}; use "
                             "1 or more days")
        sampling_fraction(self.tracing_sample_percent)


def chart_values(redis_url: str) -> dict:
    """Envoy Gateway's chart values: the controller with its global rate limiter on Valkey, Backend resources
    (failover) and Lua policies (token usage) switched on, proxies in their Gateway's namespace, and InferencePool
    backendRefs handed to Envoy AI Gateway's extension server (the hooks its install guide asks for). Extension
    errors are not ignored (`failOpen: false`): a failed translation keeps the last good configuration rather
    than pushing routes without their endpoint pickers."""
    return {"config": {"envoyGateway": {
        "gateway": {"controllerName": CONTROLLER_NAME},
        "provider": {"type": "Kubernetes", "kubernetes": {"deploy": {"type": "GatewayNamespace"}}},
        "logging": {"level": {"default": "info"}},
        "rateLimit": {"backend": {"type": "Redis", "redis": {"url": redis_url}}},
        "extensionApis": {"enableBackend": True, "enableLua": True},
        "extensionManager": {
            "backendResources": [{"group": POOL_GROUP, "kind": "InferencePool", "version": "v1"}],
            "hooks": {"xdsTranslator": {
                "translation": {kind: {"includeAll": True} for kind in ("listener", "route", "cluster", "secret")},
                "post": ["Translation", "Cluster", "Route"]}},
            "service": {"fqdn": AI_GATEWAY_EXTENSION},
            "failOpen": False,
        },
    }}}


class EnvoyGatewayInstall(pulumi.ComponentResource):
    """Envoy Gateway's chart, Envoy AI Gateway's (the InferencePool extension), the Valkey its rate limiter counts
    in, an EnvoyProxy with JSON access logs to stdout (Alloy ships them to Loki) and OpenTelemetry traces, and the
    GatewayClass `envoy` using it, which waits for both controllers."""

    gateway_class: pulumi.Output[str]
    """Name of the GatewayClass Gateways use."""
    namespace: pulumi.Output[str]
    """Namespace of the controller and its rate limiter."""
    rate_limit_backend: pulumi.Output[str]
    """Valkey address the rate limiter counts in (host:port)."""
    access_log_retention_days: pulumi.Output[int]
    """Days the access logs must be kept: pass to the log store's retention."""

    def __init__(self, name: str, args: EnvoyGatewayArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:gateway:EnvoyGatewayInstall", name, None, opts)
        child = children_of(self, opts)
        labels = k8s_labels(name="envoy-gateway", instance=NAMESPACE, component="gateway",
                            version=ENVOY_GATEWAY.version)
        ns = k8s.core.v1.Namespace(f"{name}-namespace", metadata={"name": NAMESPACE, "labels": labels}, opts=child)
        valkey = self._valkey(name, ns.metadata.name, child)
        redis_url = f"{valkey}.{NAMESPACE}.svc.cluster.local:{VALKEY_PORT}"
        release = ENVOY_GATEWAY.release(f"{name}-envoy-gateway", ns.metadata.name, chart_values(redis_url), child)
        after_chart = children_of(self, opts, depends_on=[release])  # the chart brings the CRDs
        ai_crds = AI_GATEWAY_CRDS.release(f"{name}-ai-gateway-crds", AI_GATEWAY_NAMESPACE, {}, after_chart,
                                          create_namespace=True)
        ai_gateway = AI_GATEWAY.release(f"{name}-ai-gateway", AI_GATEWAY_NAMESPACE, {},
                                        children_of(self, opts, depends_on=[ai_crds]),
                                        create_namespace=True)
        self._policies(name, ns.metadata.name, labels, child, children_of(self, opts, depends_on=[ai_crds]))
        telemetry: dict = {"accessLog": {"settings": [{
            "format": {"type": "JSON", "json": ACCESS_LOG_FIELDS},
            "sinks": [{"type": "File", "file": {"path": "/dev/stdout"}}],
        }]}}
        if args.tracing is not None:
            telemetry["tracing"] = {
                "samplingFraction": sampling_fraction(args.tracing_sample_percent),
                "provider": {"type": "OpenTelemetry", "backendRefs": [{
                    "name": args.tracing.service, "namespace": args.tracing.namespace, "port": args.tracing.port}]},
                "tags": {"llmplane.client": f"%REQ({CLIENT_HEADER})%"},
            }
        proxy = k8s.apiextensions.CustomResource(
            f"{name}-proxy",
            api_version=EG_API,
            kind="EnvoyProxy",
            metadata={"name": "llmplane", "namespace": ns.metadata.name, "labels": labels},
            spec={
                "provider": {"type": "Kubernetes", "kubernetes": {
                    "envoyDeployment": {"replicas": args.proxy_replicas},
                    "envoyService": {"type": "LoadBalancer", "annotations": PROXY_SERVICE_ANNOTATIONS[args.cloud]},
                }},
                "telemetry": telemetry,
                "luaValidation": LUA_VALIDATION,
            },
            opts=after_chart,
        )
        gateway_class = k8s.apiextensions.CustomResource(
            f"{name}-class",
            api_version="gateway.networking.k8s.io/v1",
            kind="GatewayClass",
            metadata={"name": GATEWAY_CLASS, "labels": labels},
            spec={"controllerName": CONTROLLER_NAME, "parametersRef": {
                "group": "gateway.envoyproxy.io", "kind": "EnvoyProxy", "name": "llmplane",
                "namespace": ns.metadata.name}},
            opts=children_of(self, opts, depends_on=[release, ai_gateway, proxy]),
        )
        self.gateway_class = gateway_class.metadata.apply(lambda m: m["name"])
        self.namespace = ns.metadata.name
        self.rate_limit_backend = pulumi.Output.from_input(redis_url)
        self.access_log_retention_days = pulumi.Output.from_input(args.access_log_retention_days)
        self.register_outputs({"gateway_class": self.gateway_class, "namespace": self.namespace,
                               "rate_limit_backend": self.rate_limit_backend,
                               "access_log_retention_days": self.access_log_retention_days})

    def _policies(self, name: str, namespace: pulumi.Input[str], labels: dict[str, str],
                  child: pulumi.ResourceOptions, in_ai_namespace: pulumi.ResourceOptions) -> None:
        """Envoy Gateway's and Envoy AI Gateway's namespaces: default deny; the proxies fetch their configuration
        from the controller and ask the rate limiter; the rate limiter gets its own configuration from the
        controller and counts in Valkey (whose own policy admits only it); the controller calls the AI Gateway's
        extension server; the API server calls both webhooks; the controllers and the certgen Job watch the API."""
        proxies = pods(GATEWAY_NAMESPACE, PROXY_PODS)
        namespace_baseline(f"{name}-netpol", namespace, labels, child)
        policy(f"{name}-netpol-controller", namespace, "envoy-gateway", labels, CONTROLLER_PODS, child, ingress=[
            rule([proxies], [XDS_PORT]),
            rule([local(RATE_LIMIT_POD_LABELS)], [RATE_LIMIT_XDS_PORT]),
            from_api_server(CONTROLLER_WEBHOOK_PORT),
        ], egress=[rule([pods(AI_GATEWAY_NAMESPACE, AI_GATEWAY_PODS)], [AI_GATEWAY_EXTENSION_PORT]), api_server()])
        policy(f"{name}-netpol-ratelimit", namespace, "envoy-ratelimit", labels, RATE_LIMIT_POD_LABELS, child,
               ingress=[rule([proxies], [RATE_LIMIT_PORT])],
               egress=[rule([local({"app.kubernetes.io/name": "valkey"})], [VALKEY_PORT]),
                       rule([local(CONTROLLER_PODS)], [RATE_LIMIT_XDS_PORT])])
        policy(f"{name}-netpol-certgen", namespace, "envoy-gateway-certgen", labels, CERTGEN_PODS, child,
               egress=[api_server()])
        ai_labels = {**labels, "app.kubernetes.io/instance": AI_GATEWAY_NAMESPACE}
        namespace_baseline(f"{name}-ai-netpol", AI_GATEWAY_NAMESPACE, ai_labels, in_ai_namespace)
        policy(f"{name}-ai-netpol-controller", AI_GATEWAY_NAMESPACE, "ai-gateway-controller", ai_labels,
               AI_GATEWAY_PODS, in_ai_namespace, ingress=[
                   rule([pods(NAMESPACE, CONTROLLER_PODS)], [AI_GATEWAY_EXTENSION_PORT]),
                   from_api_server(AI_GATEWAY_WEBHOOK_PORT)], egress=[api_server()])

    def _valkey(self, name: str, namespace: pulumi.Input[str], child: pulumi.ResourceOptions) -> str:
        """One Valkey pod holding the rate limiter's counters in memory, reachable only by the rate limiter. A
        restart forgets the current windows' counts (at most a minute's and a day's budget granted again)."""
        service_name = "ratelimit-valkey"
        labels = k8s_labels(name="valkey", instance=service_name, component="rate-limit-store", version="8.1.3")
        selector = {"app.kubernetes.io/name": "valkey", "app.kubernetes.io/instance": service_name}
        meta = {"name": service_name, "namespace": namespace, "labels": labels}
        probe = {"tcpSocket": {"port": VALKEY_PORT}, "periodSeconds": 10}
        k8s.apps.v1.Deployment(f"{name}-valkey", metadata=meta, spec={
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": labels}, "spec": {
                "automountServiceAccountToken": False,
                "securityContext": {"runAsNonRoot": True, "runAsUser": 999, "runAsGroup": 1000, "fsGroup": 1000,
                                    "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{
                    "name": "valkey",
                    "image": VALKEY_IMAGE,
                    "args": ["valkey-server", "--save", "", "--appendonly", "no", "--protected-mode", "no"],
                    "ports": [{"name": "valkey", "containerPort": VALKEY_PORT}],
                    "readinessProbe": probe,
                    "livenessProbe": {**probe, "initialDelaySeconds": 10},
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                  "limits": {"cpu": "1", "memory": "512Mi"}},
                    "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                        "capabilities": {"drop": ["ALL"]}},
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }],
                "volumes": [{"name": "data", "emptyDir": {}}],
            }},
        }, opts=child)
        k8s.core.v1.Service(f"{name}-valkey", metadata=meta, spec={
            "selector": selector, "ports": [{"name": "valkey", "port": VALKEY_PORT, "targetPort": VALKEY_PORT}]},
            opts=child)
        k8s.networking.v1.NetworkPolicy(f"{name}-valkey", metadata=meta, spec={
            "podSelector": {"matchLabels": selector},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": RATE_LIMIT_POD_LABELS}}],
                         "ports": [{"port": VALKEY_PORT}]}],
        }, opts=child)
        return service_name
