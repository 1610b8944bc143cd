"""`pulumi-resource-kubernetes` for render mode only, written in Python.

The real provider is a Go module the proxy here refuses to serve. The local
stack only needs its `renderYamlToDirectory` mode (write each object as a
YAML file instead of calling a cluster), which this provider implements
with the same gRPC protocol. Anything that needs a cluster is refused with
a message naming the real provider.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2
from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc, plugin_pb2, provider_pb2, provider_pb2_grpc

from toolchain.manifest_diff import REPLACE_PATHS, Change, diff_objects
from toolchain.manifest_files import manifest_path, object_id, render, write_atomically
from toolchain.plugin_server import engine_address, serve
from toolchain.wire_values import UNKNOWN, reveal, to_python

VERSION = "4.34.2"  # the pinned pulumi-kubernetes SDK asks for this plugin version
RENDER_KEY = "renderYamlToDirectory"
ONLY_RENDERS = (
    "this offline Kubernetes provider only renders YAML (set `renderYamlToDirectory` on the "
    "provider); install the real provider (`pulumi plugin install resource kubernetes "
    f"v{VERSION}`) to deploy to a cluster"
)

Warn = Callable[[str, str], None]  # (urn, message)

_DIFF_KIND = {
    (Change.ADD, False): provider_pb2.PropertyDiff.ADD,
    (Change.ADD, True): provider_pb2.PropertyDiff.ADD_REPLACE,
    (Change.DELETE, False): provider_pb2.PropertyDiff.DELETE,
    (Change.DELETE, True): provider_pb2.PropertyDiff.DELETE_REPLACE,
    (Change.UPDATE, False): provider_pb2.PropertyDiff.UPDATE,
    (Change.UPDATE, True): provider_pb2.PropertyDiff.UPDATE_REPLACE,
}


def _old_inputs(request: provider_pb2.DiffRequest) -> dict[str, Any]:
    """Diff against what the program last asked for (older engines send only outputs)."""
    return to_python(request.old_inputs if request.HasField("old_inputs") else request.olds)


def _missing_name(obj: dict[str, Any]) -> bool:
    metadata = obj.get("metadata")
    if metadata == UNKNOWN:
        return False
    return not (isinstance(metadata, dict) and metadata.get("name"))


class RenderProvider(provider_pb2_grpc.ResourceProviderServicer):
    def __init__(self, warn: Warn) -> None:
        self.warn = warn
        self.render_dir: Path | None = None

    def Handshake(self, request, context):
        return provider_pb2.ProviderHandshakeResponse(accept_secrets=True)

    def GetPluginInfo(self, request, context):
        return plugin_pb2.PluginInfo(version=VERSION)

    def CheckConfig(self, request, context):
        return provider_pb2.CheckResponse(inputs=request.news)

    def DiffConfig(self, request, context):
        old, new = _old_inputs(request), to_python(request.news)
        changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        # A new render directory means every object moves: replace them all.
        return provider_pb2.DiffResponse(
            changes=provider_pb2.DiffResponse.DIFF_SOME if changed else provider_pb2.DiffResponse.DIFF_NONE,
            diffs=changed,
            replaces=[k for k in changed if k == RENDER_KEY],
        )

    def Configure(self, request, context):
        args = reveal(to_python(request.args))
        target = args.get(RENDER_KEY) or request.variables.get(f"kubernetes:config:{RENDER_KEY}")
        if not target:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, ONLY_RENDERS)
        # Relative to the working directory the engine gives plugins, like the real provider.
        self.render_dir = Path(target).absolute()
        return provider_pb2.ConfigureResponse(acceptSecrets=True, supportsPreview=True)

    def Check(self, request, context):
        failures = []
        if _missing_name(to_python(request.news)):
            failures.append(provider_pb2.CheckFailure(
                property="metadata.name",
                reason="metadata.name is required: the render provider does not auto-name objects",
            ))
        return provider_pb2.CheckResponse(inputs=request.news, failures=failures)

    def Diff(self, request, context):
        diff = diff_objects(_old_inputs(request), to_python(request.news))
        if not diff.changes:
            return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_NONE)
        detailed = {
            path: provider_pb2.PropertyDiff(kind=_DIFF_KIND[change, path in REPLACE_PATHS], inputDiff=True)
            for path, change in diff.changes.items()
        }
        return provider_pb2.DiffResponse(
            changes=provider_pb2.DiffResponse.DIFF_SOME,
            diffs=diff.top_level_keys,
            replaces=diff.replaced_top_level_keys,
            detailedDiff=detailed,
            hasDetailedDiff=True,
        )

    def Create(self, request, context):
        if request.preview:
            return provider_pb2.CreateResponse(properties=request.properties)
        obj = to_python(request.properties)
        self._write(obj, request.urn, context)
        return provider_pb2.CreateResponse(id=object_id(obj), properties=request.properties)

    def Update(self, request, context):
        if not request.preview:
            self._write(to_python(request.news), request.urn, context)
        return provider_pb2.UpdateResponse(properties=request.news)

    def Read(self, request, context):
        obj = to_python(request.properties)
        # A rendered file that was removed by hand reads as gone, so the next
        # `pulumi up --refresh` renders it again.
        if not obj or not self._path(obj, context).exists():
            return provider_pb2.ReadResponse()
        inputs = request.inputs if request.HasField("inputs") else request.properties
        return provider_pb2.ReadResponse(id=request.id, properties=request.properties, inputs=inputs)

    def Delete(self, request, context):
        self._path(to_python(request.properties), context).unlink(missing_ok=True)
        return empty_pb2.Empty()

    def Cancel(self, request, context):
        return empty_pb2.Empty()

    def _path(self, obj: dict[str, Any], context) -> Path:
        if self.render_dir is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, ONLY_RENDERS)
        return manifest_path(self.render_dir, obj)

    def _write(self, obj: dict[str, Any], urn: str, context) -> None:
        path = self._path(obj, context)
        try:
            text = render(obj, lambda message: self.warn(urn, message))
        except ValueError as exn:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exn))
        write_atomically(path, text)


def engine_warner(address: str) -> Warn:
    """Warnings go to the engine's Log service, shown next to the resource;
    plugin stderr would be hidden by the engine."""
    if not address:
        return lambda urn, message: print(f"warning: {urn}: {message}", file=sys.stderr)
    engine = engine_pb2_grpc.EngineStub(grpc.insecure_channel(address))

    def warn(urn: str, message: str) -> None:
        engine.Log(engine_pb2.LogRequest(severity=engine_pb2.WARNING, message=message, urn=urn))

    return warn


def main() -> None:
    provider = RenderProvider(engine_warner(engine_address(sys.argv[1:])))
    serve(lambda server: provider_pb2_grpc.add_ResourceProviderServicer_to_server(provider, server))


if __name__ == "__main__":
    main()
