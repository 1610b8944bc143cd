"""`pulumi-language-python`, written in Python.

The real language host is a Go module the proxy here refuses to serve, so
this one speaks the same gRPC protocol using the stubs the `pulumi` SDK
ships. It runs programs (`Run`) and Python policy packs (`RunPlugin`);
every other RPC answers UNIMPLEMENTED, which the engine tolerates.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import threading
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from queue import Queue

import grpc
from google.protobuf.json_format import MessageToDict
from llmplane.toolchain.plugin_server import engine_address, serve
from pulumi.runtime.proto import language_pb2, language_pb2_grpc, plugin_pb2

RUNNER = Path(__file__).with_name("program_runner.py")
BAIL_EXIT_CODE = 32  # program_runner: error already reported to the engine


class VirtualenvMissing(Exception):
    """The project names a virtualenv that has not been created."""


def python_for(info: language_pb2.ProgramInfo) -> str:
    """The interpreter for a program or policy pack: its `virtualenv` option,
    relative to its root directory, else the interpreter running this host."""
    options = MessageToDict(info.options) if info.HasField("options") else {}
    venv = options.get("virtualenv")
    if not venv:
        return sys.executable
    venv_dir = Path(info.root_directory, venv)
    python = venv_dir / "bin" / "python"
    if not python.exists():
        raise VirtualenvMissing(
            f"The virtualenv {venv_dir} does not exist. Run `make up` (or "
            f"`python3 -m venv {venv} && {venv}/bin/pip install -e .`) in {info.root_directory}."
        )
    return str(python)


def run_command(request: language_pb2.RunRequest, python: str, engine: str) -> list[str]:
    cmd = [
        python, "-u", str(RUNNER),
        "--monitor", request.monitor_address,
        "--engine", engine,
        "--project", request.project,
        "--stack", request.stack,
        "--organization", request.organization or "organization",
        "--root-directory", request.info.root_directory or request.pwd,
        "--parallel", str(request.parallel),
    ]
    if request.dryRun:
        cmd.append("--dry-run")
    cmd.append(os.path.normpath(os.path.join(request.pwd, request.program)))
    return cmd


def run_env(request: language_pb2.RunRequest) -> dict[str, str]:
    """Config travels in the environment variables the SDK reads itself."""
    env = dict(os.environ)
    env["PULUMI_CONFIG"] = json.dumps(dict(request.config))
    env["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(list(request.configSecretKeys))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _pump(stream, kind: str, out: Queue) -> None:
    """Forward raw chunks as they come, so a plugin's port line is not held back."""
    for chunk in iter(lambda: os.read(stream.fileno(), 65536), b""):
        out.put((kind, chunk))
    out.put((kind, None))


class LanguageHost(language_pb2_grpc.LanguageRuntimeServicer):
    def __init__(self, engine: str) -> None:
        self.engine = engine

    def Handshake(self, request, context):
        return language_pb2.LanguageHandshakeResponse()

    def GetPluginInfo(self, request, context):
        return plugin_pb2.PluginInfo(version=version("pulumi"))

    def GetRequiredPlugins(self, request, context):
        # Plugins are found on PATH (see toolchain.bootstrap); nothing to download.
        return language_pb2.GetRequiredPluginsResponse()

    def GetRequiredPackages(self, request, context):
        return language_pb2.GetRequiredPackagesResponse()

    def InstallDependencies(self, request, context):
        # The engine reads this stream to its end; dependencies come from `make up`.
        yield language_pb2.InstallDependenciesResponse(
            stdout=b"Dependencies are installed by `make up` (pip install -e '.[test]' into .venv).\n"
        )

    def About(self, request, context):
        try:
            python = python_for(request.info)
        except VirtualenvMissing as exn:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exn))
        found = subprocess.run(
            [python, "-c", "import platform; print(platform.python_version())"],
            capture_output=True, text=True, check=False,
        )
        return language_pb2.AboutResponse(
            executable=python, version=found.stdout.strip() or platform.python_version()
        )

    def Run(self, request, context):
        try:
            python = python_for(request.info)
        except VirtualenvMissing as exn:
            return language_pb2.RunResponse(error=str(exn))
        # stdout/stderr are inherited: the engine shows them to the user.
        proc = subprocess.Popen(
            run_command(request, python, self.engine), cwd=request.pwd, env=run_env(request)
        )
        context.add_callback(proc.terminate)  # the engine gave up on this run
        code = proc.wait()
        if code == 0:
            return language_pb2.RunResponse()
        if code == BAIL_EXIT_CODE:
            return language_pb2.RunResponse(bail=True)
        return language_pb2.RunResponse(error=f"Program exited with exit code {code}")

    def RunPlugin(self, request, context) -> Iterator[language_pb2.RunPluginResponse]:
        if request.kind != "analyzer":
            context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                f"this language host runs Python policy packs only, not {request.kind!r} plugins",
            )
        try:
            python = python_for(request.info)
        except VirtualenvMissing as exn:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exn))
        env = dict(item.split("=", 1) for item in request.env if "=" in item)
        cmd = [python, "-u", "-m", "pulumi.policy", *request.args, request.info.program_directory]
        proc = subprocess.Popen(
            cmd, cwd=request.pwd or None, env=env or None,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        context.add_callback(proc.terminate)  # the engine closes an analyzer by cancelling
        chunks: Queue = Queue()
        for stream, kind in ((proc.stdout, "stdout"), (proc.stderr, "stderr")):
            threading.Thread(target=_pump, args=(stream, kind, chunks), daemon=True).start()
        open_streams = 2
        while open_streams:
            kind, chunk = chunks.get()
            if chunk is None:
                open_streams -= 1
            else:
                yield language_pb2.RunPluginResponse(**{kind: chunk})
        yield language_pb2.RunPluginResponse(exitcode=proc.wait())


def main() -> None:
    host = LanguageHost(engine_address(sys.argv[1:]))
    serve(lambda server: language_pb2_grpc.add_LanguageRuntimeServicer_to_server(host, server))


if __name__ == "__main__":
    main()
