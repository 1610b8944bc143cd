"""A private network namespace whose loopback ports lead to the same ports on the host's loopback.

Envoy Gateway's controller binds fixed ports on every interface (tests/test_gateway_controller.py); run in a network
namespace of its own, those binds reach no interface but that namespace's loopback. It still has to reach the test's
API server and extension server on the host's 127.0.0.1. This process creates the namespace, brings its loopback
up, listens there on those ports, returns to the host's namespace and forwards each connection to the same port on
the host's 127.0.0.1: it listens on nothing of the host's.

Usage: netns_bridge.py READY PORT...; once it listens, READY holds a path naming the namespace (for `nsenter
--net=`); it forwards until stopped, and the namespace ends with it and whatever joined it.
"""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import functools
import os
import socket
import struct
import sys
from pathlib import Path

CLONE_NEWNET = 0x40000000  # <sched.h>
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1  # <linux/sockios.h>, <net/if.h>
IFREQ = struct.Struct("16sH22x")
"""struct ifreq: the interface's name, then ifr_flags at the start of a 24-byte union."""


def _checked(result: int) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def _listen_in_private_namespace(ports: list[int]) -> tuple[int, list[socket.socket]]:
    """Listen on 127.0.0.1 at the ports in a new network namespace, then come back to the host's; returns a
    descriptor holding the namespace and the listeners. Python 3.11 has no os.unshare or os.setns, hence libc."""
    libc = ctypes.CDLL(None, use_errno=True)
    host = os.open("/proc/self/ns/net", os.O_RDONLY)
    _checked(libc.unshare(CLONE_NEWNET))
    private = os.open("/proc/self/ns/net", os.O_RDONLY)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # a new namespace's loopback starts down
        flags = IFREQ.unpack(fcntl.ioctl(sock, SIOCGIFFLAGS, IFREQ.pack(b"lo", 0)))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, IFREQ.pack(b"lo", flags | IFF_UP))
    listeners = [socket.create_server(("127.0.0.1", port)) for port in ports]
    _checked(libc.setns(host, CLONE_NEWNET))
    os.close(host)
    return private, listeners


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction; its end is passed on as a half-close, as TCP would."""
    while data := await reader.read(1 << 16):
        writer.write(data)
        await writer.drain()
    writer.write_eof()


async def _forward(port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        writer.close()
        return
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(_pipe(reader, upstream_writer))
            group.create_task(_pipe(upstream_reader, writer))
    except* OSError:
        pass  # a reset on either side ends both directions
    finally:
        writer.close()
        upstream_writer.close()


async def _serve(listeners: list[socket.socket]) -> None:
    servers = [await asyncio.start_server(functools.partial(_forward, sock.getsockname()[1]), sock=sock)
               for sock in listeners]
    await asyncio.gather(*(server.serve_forever() for server in servers))


def main(argv: list[str]) -> None:
    ready, ports = Path(argv[0]), [int(port) for port in argv[1:]]
    private, listeners = _listen_in_private_namespace(ports)
    written = ready.with_name(ready.name + ".partial")
    written.write_text(f"/proc/{os.getpid()}/fd/{private}")
    written.rename(ready)  # whole or absent for the reader
    asyncio.run(_serve(listeners))


if __name__ == "__main__":
    main(sys.argv[1:])
