"""uvicorn inside the gateway's own event loop, stopped by the runtime, not by uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI

from mesh.ports import wait_until_bindable


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the process runtime."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def shared_socket(host: str, port: int) -> socket.socket:
    """A listening socket bound with SO_REUSEPORT, as gRPC binds its own port: several
    gateway processes on one host share both ports, and the kernel spreads the
    connections between them."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


class HttpServer:
    """Serves an ASGI app until `shutdown()`, which lets in-flight requests finish."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
            server_header=False,
        )
        self._server = _EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    async def start(self) -> None:
        # A port held only by a closed connection (TIME-WAIT) is waited for first.
        await wait_until_bindable(self._server.config.host, self._server.config.port)
        self._socket = shared_socket(self._server.config.host, self._server.config.port)
        self._task = asyncio.create_task(
            self._server.serve(sockets=[self._socket]), name="http-server"
        )
        while not self._server.started:
            if self._task.done():
                await self._task
                raise OSError("HTTP server stopped during start-up")
            await asyncio.sleep(0.01)

    async def shutdown(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        if self._socket is not None:
            self._socket.close()
