"""Making sure a server's port can be bound before the server binds it.

Herald's gRPC ports (50050-50056) sit inside Linux's ephemeral range (32768-60999), so
the local end of a recent *client* connection can hold one in TIME-WAIT for a minute
after a test or a bench run; a listening socket cannot bind over it. Such a port frees
itself: the server waits for it, saying so in one log line. A port held by a live process
does not: that is `PortInUse`, one line naming the port and its holder.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time

import psutil
import structlog

log = structlog.get_logger("mesh.ports")

# Linux keeps TIME-WAIT for 60 s; a little more covers a FIN-WAIT before it.
WAIT_SECONDS = 75.0
# States of a connection its process has already closed: the kernel ends them by itself.
CLOSING = frozenset(
    {
        psutil.CONN_TIME_WAIT,
        psutil.CONN_FIN_WAIT1,
        psutil.CONN_FIN_WAIT2,
        psutil.CONN_CLOSING,
        psutil.CONN_LAST_ACK,
        psutil.CONN_CLOSE,
    }
)


class PortInUse(Exception):
    """A live process holds the port (the message names the port and the holder)."""


def can_bind(host: str, port: int) -> bool:
    """Whether a listening socket could bind `host:port` now, with the options Herald's
    servers use (SO_REUSEADDR and SO_REUSEPORT, as gRPC sets them)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def live_holder(port: int) -> str | None:
    """Who holds local `port` other than closed connections, described in a few words;
    None when only closed connections (TIME-WAIT and the like) hold it."""
    for conn in psutil.net_connections("tcp"):
        if not conn.laddr or conn.laddr.port != port:
            continue
        if conn.status in CLOSING and conn.pid is None:
            continue
        return f"{describe(conn.pid)} ({conn.status})"
    return None


def describe(pid: int | None) -> str:
    """`pid 1234 (python -m templated)`, or what is known of a process we cannot see."""
    if pid is None:
        return "a process of another user"
    try:
        command = " ".join(psutil.Process(pid).cmdline()) or psutil.Process(pid).name()
    except psutil.Error:
        return f"pid {pid}"
    return f"pid {pid} ({command[:80]})"


async def wait_until_bindable(host: str, port: int, *, timeout: float = WAIT_SECONDS) -> None:
    """Returns once `host:port` can be bound; waits while only closed connections hold it.

    Raises `PortInUse` at once when a live process holds it, or when it is still held
    after `timeout` seconds.
    """
    if not port or can_bind(host, port):
        return
    deadline = time.monotonic() + timeout
    said = False
    while not can_bind(host, port):
        holder = live_holder(port)
        if holder is not None:
            raise PortInUse(f"port {port} on {host} is in use by {holder}")
        if time.monotonic() > deadline:
            raise PortInUse(f"port {port} on {host} is still held after {timeout:.0f} s")
        if not said:
            log.warning(
                "port held by a closed connection (TIME-WAIT); waiting for it",
                port=port,
                up_to_seconds=round(timeout),
            )
            said = True
        await asyncio.sleep(0.5)
