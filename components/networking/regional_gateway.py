"""RegionalGateway: the TLS entry point of one cluster that model routes attach to, on Envoy Gateway's class in
every cloud (EnvoyGatewayInstall brings it; the embedded cluster runs without one)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
from llmplane.components.autoscaling.keda import KEDA_NAMESPACE
from llmplane.components.autoscaling.scale_from_zero import INTERCEPTOR_PODS, INTERCEPTOR_PORT
from llmplane.components.gateway.envoy_gateway import (
    CONTROLLER_PODS,
    GATEWAY_CLASS,
    NAMESPACE,
    RATE_LIMIT_POD_LABELS,
    RATE_LIMIT_PORT,
    XDS_PORT,
)
from llmplane.components.gateway.inference_pool import EXT_PROC_PORT
from llmplane.components.labels import k8s_labels
from llmplane.components.network_policy import (
    JAEGER_PODS,
    OTLP_GRPC_PORT,
    PROXY_PODS,
    cidr,
    namespace_baseline,
    pods,
    policy,
    rule,
)
from llmplane.components.options import children_of
from llmplane.components.serving.engine_args import VLLM_PORT
from llmplane.components.serving.feedback import API_PORT as FEEDBACK_PORT
from llmplane.components.serving.shadow_compare import API_PORT as COMPARATOR_PORT
from llmplane.facts.namespaces import GATEWAY_NAMESPACE, MONITORING_NAMESPACE

GATEWAY_NAME = "llmplane"
TLS_SECRET = "llmplane-tls"
"""Certificate Secret in the gateway namespace (issued by cert-manager, or synced from the cloud's CA)."""
LISTENER_CONTAINER_PORT = 10443
"""The proxies' container port for the HTTPS listener's 443: Envoy Gateway shifts ports below 1024 by 10000
(v1.8.1 internal/gatewayapi/listener.go, translator.go `wellKnownPortShift`)."""
SERVING_PORTS = tuple(sorted({VLLM_PORT, EXT_PROC_PORT, FEEDBACK_PORT, COMPARATOR_PORT}))
"""What the proxies reach in the serving namespace: vLLM, the endpoint pickers' ext_proc and the API port of the
feedback service and the shadow comparators."""



@dataclass(frozen=True)
class RegionalGatewayArgs:
    """Where the gateway runs and what it serves."""

    hostname: str
    """Global hostname the HTTPS listener answers for."""
    regional_hostname: str
    """This cluster's own name (health checks, failover targets); external-dns publishes it."""
    serving_namespace: pulumi.Input[str]
    """The namespace whose routes may attach."""


class RegionalGateway(pulumi.ComponentResource):
    """Gateway namespace and an HTTPS-only Gateway; routes from the serving namespace attach to it."""

    gateway_name: pulumi.Output[str]
    """Name of the Gateway."""
    gateway_namespace: pulumi.Output[str]
    """Namespace of the Gateway."""

    def __init__(self, name: str, args: RegionalGatewayArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:networking:RegionalGateway", name, None, opts)
        child = children_of(self, opts)
        labels = k8s_labels(name="gateway", instance=GATEWAY_NAME, component="gateway")
        ns = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": GATEWAY_NAMESPACE, "labels": {**labels, "llmplane.dev/role": "gateway"}},
            opts=child,
        )
        self._policies(name, ns.metadata.name, labels, args.serving_namespace, child)
        gateway = k8s.apiextensions.CustomResource(
            f"{name}-gateway",
            api_version="gateway.networking.k8s.io/v1",
            kind="Gateway",
            metadata={"name": GATEWAY_NAME, "namespace": ns.metadata.name, "labels": labels,
                      "annotations": {"external-dns.alpha.kubernetes.io/hostname": args.regional_hostname}},
            spec={
                "gatewayClassName": GATEWAY_CLASS,
                "listeners": [
                    {
                        "name": listener,
                        "protocol": "HTTPS",
                        "port": 443,
                        "hostname": hostname,
                        "tls": {"mode": "Terminate", "certificateRefs": [{"name": TLS_SECRET}]},
                        "allowedRoutes": {
                            "namespaces": {
                                "from": "Selector",
                                "selector": {"matchLabels": {"kubernetes.io/metadata.name": args.serving_namespace}},
                            }
                        },
                    }
                    for listener, hostname in (("global", args.hostname), ("regional", args.regional_hostname))
                ],
            },
            opts=child,
        )
        self.gateway_name = gateway.metadata.apply(lambda m: m["name"])
        self.gateway_namespace = ns.metadata.name
        self.register_outputs({"gateway_name": self.gateway_name, "gateway_namespace": self.gateway_namespace})

    def _policies(self, name: str, namespace: pulumi.Input[str], labels: dict[str, str],
                  serving_namespace: pulumi.Input[str], child: pulumi.ResourceOptions) -> None:
        """The Gateway's namespace: default deny; Envoy Gateway's proxies take client connections on the HTTPS
        listener from anywhere (clients, the cloud's load balancer and its health checks), fetch their
        configuration from the controller, ask the rate limiter, forward to the serving namespace (vLLM, the
        endpoint pickers' ext_proc, the feedback service and the shadow comparators' API port, each admitting the
        gateway's namespace in its own policy), to KEDA's HTTP interceptor for versions held at zero, and send
        traces to Jaeger. The last two admit nothing where no interceptor or Jaeger runs."""
        namespace_baseline(f"{name}-netpol", namespace, labels, child)
        serving = pulumi.Output.from_input(serving_namespace)
        policy(f"{name}-netpol-proxies", namespace, "envoy-proxies", labels, PROXY_PODS, child,
               ingress=[rule([cidr()], [LISTENER_CONTAINER_PORT])],
               egress=[
                   rule([pods(NAMESPACE, CONTROLLER_PODS)], [XDS_PORT]),
                   rule([pods(NAMESPACE, RATE_LIMIT_POD_LABELS)], [RATE_LIMIT_PORT]),
                   rule([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": serving}}}],
                        SERVING_PORTS),
                   rule([pods(KEDA_NAMESPACE, INTERCEPTOR_PODS)], [INTERCEPTOR_PORT]),
                   rule([pods(MONITORING_NAMESPACE, JAEGER_PODS)], [OTLP_GRPC_PORT]),
               ])
