"""What a cluster's gateway adds between a tenant and the model servers: vLLM's own key on every forwarded request
(UpstreamCredential).

API fields follow Envoy Gateway v1.8.1: HTTPRouteFilter `credentialInjection` (the Secret's `credential` key holds
the whole header value).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
from llmplane.components.labels import k8s_labels
from llmplane.components.options import children_of

from .route_refs import CREDENTIAL_FILTER, EG_API

CREDENTIAL_SECRET = "vllm-upstream-credential"
"""Secret holding `Bearer <vLLM's key>` for the credential filter."""


@dataclass(frozen=True)
class UpstreamCredentialArgs:
    """vLLM's key and where the serving routes live."""

    namespace: pulumi.Input[str]
    """Namespace of the model routes (the filter and its Secret must be beside them)."""
    api_key: pulumi.Input[str]
    """vLLM's `--api-key`; a Pulumi secret."""


class UpstreamCredential(pulumi.ComponentResource):
    """A Secret with vLLM's key as a bearer credential, and the HTTPRouteFilter that injects it (overwriting
    whatever Authorization a client sent)."""

    filter_name: pulumi.Output[str]
    """Name of the HTTPRouteFilter (what `routing.credential_filter` refers to)."""

    def __init__(self, name: str, args: UpstreamCredentialArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:gateway:UpstreamCredential", name, None, opts)
        child = children_of(self, opts)
        labels = k8s_labels(name="gateway", instance=CREDENTIAL_FILTER, component="upstream-credential")
        secret = k8s.core.v1.Secret(
            f"{name}-secret",
            metadata={"name": CREDENTIAL_SECRET, "namespace": args.namespace, "labels": labels},
            type="Opaque",
            string_data={"credential": pulumi.Output.secret(pulumi.Output.concat("Bearer ", args.api_key))},
            opts=child,
        )
        route_filter = k8s.apiextensions.CustomResource(
            f"{name}-filter",
            api_version=EG_API,
            kind="HTTPRouteFilter",
            metadata={"name": CREDENTIAL_FILTER, "namespace": args.namespace, "labels": labels},
            spec={"credentialInjection": {"header": "Authorization", "overwrite": True,
                                          "credential": {"valueRef": {"name": secret.metadata.name}}}},
            opts=child,
        )
        self.filter_name = route_filter.metadata.apply(lambda m: m["name"])
        self.register_outputs({"filter_name": self.filter_name})
