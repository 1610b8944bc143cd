"""The gateway's version split: a Lua filter (`version_split.lua`) that picks, per request, which version of a
model answers, so that each version's HTTPRoute rule names exactly one InferencePool.

Why not Gateway API weights over two InferencePools in one rule: Envoy AI Gateway, which hands InferencePool
backends to their endpoint pickers for Envoy Gateway, refuses any rule with more than one pool
(`internal/extensionserver/post_route_modify.go` and `post_cluster_modify.go` of envoyproxy/ai-gateway v1.1.0:
"at most one inferencepool can be referenced per route rule"; the AIGatewayRoute CRD has the same rule), and
with the extension not failing open Envoy Gateway then publishes no new configuration for the Gateway at all
(`internal/xds/translator/translator.go`). The filter sets `VERSION_HEADER` and clears Envoy's route cache
(`clearRouteCache`, Envoy's Lua filter, `source/extensions/filters/http/lua/wrappers.h`), and the route is
matched again: the version's own rule, one pool, its own endpoint picker and prefix-aware picking.

The header only moves a request between rules of the HTTPRoute it first matched (version rules exist only in
the model's own route), so the route's SecurityPolicy (tenant keys) and rate limits still apply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from llmplane.components.serving.model_rollout import VARIANT_HEADER, VERSION_HEADER

USER_HEADER = "x-llmplane-user"
"""Request header a client may send naming its end user: the same user of a tenant stays on one version."""
_SOURCE = (Path(__file__).with_name("version_split.lua")).read_text(encoding="utf-8")
__all__ = ["VARIANT_HEADER", "VERSION_HEADER", "USER_HEADER", "VersionShare", "lua_source"]
_MARKER = "-- LLMPLANE_SPLITS"


@dataclass(frozen=True)
class VersionShare:
    """One version of a model that answers users, and its percent of the model's traffic."""

    version: str
    """The version."""
    weight: int
    """Percent of the model's requests (0 to 100)."""
    pinnable: bool = False
    """Whether a client may ask for it with the variant header (A/B versions)."""

    def __post_init__(self) -> None:
        if not 0 <= self.weight <= 100:
            raise ValueError(f"version split: version '{self.version}' has weight {self.weight}; give a percent "
                             "from 0 to 100")


def _lua_string(text: str) -> str:
    if any(c in text for c in '"\\\n\r'):
        raise ValueError(f"'{text}' cannot be a model or version name in the gateway's version split")
    return f'"{text}"'


def lua_source(splits: Mapping[str, Sequence[VersionShare]]) -> str:
    """The filter's Lua, with each model's weights written in, one line per version, so that a rollout step reads
    as the weight lines it changes. A model's shares sum to 100."""
    lines = ["local SPLITS = {"]
    pins = ["local PINNABLE = {"]
    for model, shares in sorted(splits.items()):
        total = sum(s.weight for s in shares)
        if total != 100:
            raise ValueError(f"version split of '{model}': the weights sum to {total}; they must sum to 100")
        lines.append(f"  [{_lua_string(model)}] = {{")
        lines += [f"    {{{_lua_string(s.version)}, {s.weight}}}," for s in shares if s.weight > 0]
        lines.append("  },")
        pinned = [f"[{_lua_string(s.version)}] = true" for s in shares if s.pinnable]
        if pinned:
            pins.append(f"  [{_lua_string(model)}] = {{{', '.join(pinned)}}},")
    table = "\n".join([*lines, "}", *pins, "}"])
    return _SOURCE.replace(_MARKER, table, 1)
