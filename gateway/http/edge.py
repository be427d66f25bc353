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


async def start_edge(
    runtime: Runtime,
    settings: GatewaySettings,
    *,
    pool: AsyncConnectionPool,
    local: grpc.aio.Channel,
    userd: grpc.aio.Channel,
    templated: grpc.aio.Channel,
) -> None:
    """Serves HTTP on settings.http_port until shutdown (stopped before the gRPC server).

    NotificationService and StatusService are this process's own, called in process
    (`local`), unless HERALD_GATEWAY_NOTIFICATIONS_ADDR names another gateway's.
    """
    notifications = local
    peers = [Peer("userd", userd), Peer("templated", templated)]
    if settings.notifications_addr:
        notifications = internal_channel(
            settings.notifications_addr, settings.service_token.get_secret_value()
        )
        runtime.on_shutdown(notifications.close)
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
