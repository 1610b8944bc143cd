"""How a Pulumi plugin process starts and stops, shared by our plugins.

The engine launches a plugin with optional logging/tracing flags followed by
the engine's gRPC address, reads one line from the plugin's stdout (the port
it listens on), and on shutdown sends SIGINT to the plugin's process group.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc

# The engine allows messages up to 400 MiB (rpcutil.GrpcChannelOptions);
# rendered manifests and configs can exceed gRPC's 4 MiB default.
_MAX_MESSAGE = 400 * 1024 * 1024
_GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    ("grpc.max_send_message_length", _MAX_MESSAGE),
]


def engine_address(argv: list[str]) -> str:
    """Return the engine address: the last argument that is not a flag.

    Flags the engine may pass first: --logtostderr, -v=N, --tracing <file>.
    """
    positional: list[str] = []
    skip_next = False
    for arg in argv:
        if skip_next:
            skip_next = False
        elif arg == "--tracing":
            skip_next = True
        elif not arg.startswith("-"):
            positional.append(arg)
    return positional[-1] if positional else ""


def serve(register: Callable[[grpc.Server], None], max_workers: int = 8) -> None:
    """Serve on a free localhost port, announce it, block until told to stop."""
    server = grpc.server(ThreadPoolExecutor(max_workers=max_workers), options=_GRPC_OPTIONS)
    register(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()

    def stop(_signum: int, _frame: object) -> None:
        server.stop(grace=1)

    # SIGINT is how the engine asks a plugin to exit: leave without a traceback.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    server.wait_for_termination()
