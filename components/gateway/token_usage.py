"""TokenUsage: the Lua filter (`token_usage.lua`) that reads vLLM's token usage at the gateway, on every route of
a Gateway, and the request buffer it needs.

The filter reads whole request bodies (to make streamed requests ask for usage), so the Gateway's listeners get a
buffer large enough for the longest prompt: Envoy Gateway's default per-connection buffer is 32 KiB
(`ClientConnection.bufferLimit`, api/v1alpha1/connection_types.go, v1.8.1), which a long prompt exceeds. Answers
are read chunk by chunk and never buffered, so streaming stays streaming.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
from llmplane.components.labels import k8s_labels
from llmplane.components.options import children_of

from .route_refs import EG_API

LUA_SOURCE = (Path(__file__).with_name("token_usage.lua")).read_text(encoding="utf-8")
"""The filter's Lua source, inlined into the EnvoyExtensionPolicy."""
_QUANTITY = re.compile(r"^[1-9][0-9]*([EPTGMK]i|[EPTGMk])?$")
"""Envoy Gateway's pattern for `bufferLimit` (api/v1alpha1/connection_types.go, v1.8.1)."""


@dataclass(frozen=True)
class TokenUsageArgs:
    """The Gateway whose routes are metered."""

    gateway_name: pulumi.Input[str]
    """Name of the Gateway."""
    gateway_namespace: pulumi.Input[str]
    """Namespace of the Gateway; the policies live there."""
    request_buffer: str = "8Mi"
    """Largest request body the gateway accepts and the filter reads (a Kubernetes quantity, e.g. 8Mi): above
    it the client gets 413."""
    lua_before: tuple[str, ...] = ()
    """Lua filters that run before the meter, in the same EnvoyExtensionPolicy (Envoy Gateway accepts one
    policy of a kind per target), e.g. the version split (`version_split.lua_source`)."""

    def __post_init__(self) -> None:
        if not _QUANTITY.match(self.request_buffer):
            raise ValueError(f"TokenUsageArgs.request_buffer: '{self.request_buffer}' is not a byte quantity; "
                             "write it like 8Mi, 512Ki or 1048576")


class TokenUsage(pulumi.ComponentResource):
    """An EnvoyExtensionPolicy running the token-usage Lua filter (after any `lua_before`) on every route of a
    Gateway, and a ClientTrafficPolicy giving its listeners a request buffer large enough for long prompts."""

    extension_policy: pulumi.Output[str]
    """Name of the EnvoyExtensionPolicy."""

    def __init__(self, name: str, args: TokenUsageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:gateway:TokenUsage", name, None, opts)
        child = children_of(self, opts)
        target = [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": args.gateway_name}]
        labels = k8s_labels(name="gateway", instance="token-usage", component="metering")
        policy = k8s.apiextensions.CustomResource(
            f"{name}-lua",
            api_version=EG_API,
            kind="EnvoyExtensionPolicy",
            metadata={"name": "token-usage", "namespace": args.gateway_namespace, "labels": labels},
            spec={"targetRefs": target, "lua": [{"type": "Inline", "inline": source}
                                                for source in (*args.lua_before, LUA_SOURCE)]},
            opts=child,
        )
        k8s.apiextensions.CustomResource(
            f"{name}-buffer",
            api_version=EG_API,
            kind="ClientTrafficPolicy",
            metadata={"name": "request-buffer", "namespace": args.gateway_namespace, "labels": labels},
            spec={"targetRefs": target, "connection": {"bufferLimit": args.request_buffer}},
            opts=child,
        )
        self.extension_policy = policy.metadata.apply(lambda m: m["name"])
        self.register_outputs({"extension_policy": self.extension_policy})
