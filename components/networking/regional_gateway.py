"""RegionalGateway: the TLS entry point of one cluster that model routes attach to, on Envoy Gateway's class in
every cloud (EnvoyGatewayInstall brings it; the embedded cluster runs without one)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
from llmplane.components.gateway.envoy_gateway import GATEWAY_CLASS
from llmplane.components.labels import k8s_labels
from llmplane.components.options import children_of
from llmplane.facts.namespaces import GATEWAY_NAMESPACE

GATEWAY_NAME = "llmplane"
TLS_SECRET = "llmplane-tls"
"""Certificate Secret in the gateway namespace (issued by cert-manager, or synced from the cloud's CA)."""



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
