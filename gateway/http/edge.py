"""Starts the REST edge inside the gateway process, once its gRPC server is up."""

from __future__ import annotations

import grpc
from psycopg_pool import AsyncConnectionPool

from gateway.apikeys import Authenticator
from gateway.http.app import create_app
from gateway.http.backends import Backends
from gateway.http.health import Peer
from gateway.http.server import HttpServer
from gateway.settings import GatewaySettings
from mesh.client import internal_channel
from mesh.runtime import Runtime


def _loopback(host: str, port: int) -> str:
    """Where this process's own gRPC server answers, given the address it bound."""
    if host in ("", "0.0.0.0", "localhost"):
        return f"127.0.0.1:{port}"
    if host == "::":
        return f"[::1]:{port}"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def start_edge(
    runtime: Runtime,
    settings: GatewaySettings,
    *,
    pool: AsyncConnectionPool,
    grpc_port: int,
    userd: grpc.aio.Channel,
    templated: grpc.aio.Channel,
) -> None:
    """Serves HTTP on settings.http_port until shutdown (stopped before the gRPC server).

    NotificationService and StatusService are called over a loopback channel to this
    process's own gRPC port (or HERALD_GATEWAY_NOTIFICATIONS_ADDR), like any peer.
    """
    own = not settings.notifications_addr
    address = _loopback(settings.host, grpc_port) if own else settings.notifications_addr
    notifications = internal_channel(address, settings.service_token.get_secret_value())
    runtime.on_shutdown(notifications.close)
    peers = [Peer("userd", userd), Peer("templated", templated)]
    if not own:
        peers.append(Peer("notifications", notifications))
    app = create_app(
        settings=settings,
        monitor=runtime.health,
        peers=peers,
        backends=Backends.over(
            notifications=notifications,
            users=userd,
            templates=templated,
            timeout=settings.rpc_timeout_seconds,
        ),
        authenticator=Authenticator(pool, ttl=settings.api_key_cache_seconds),
    )
    http = HttpServer(app, settings.host, settings.http_port)
    await http.start()
    runtime.on_shutdown(http.shutdown)
