"""Starts the REST edge inside the gateway process, once its gRPC server is up."""

from __future__ import annotations

import grpc

from gateway.core import Core
from gateway.http.app import create_app
from gateway.http.backends import Backends
from gateway.http.health import Peer
from gateway.http.server import HttpServer
from gateway.settings import GatewaySettings
from mesh.runtime import Runtime


async def start_edge(
    runtime: Runtime,
    settings: GatewaySettings,
    *,
    core: Core,
    userd: grpc.aio.Channel,
    templated: grpc.aio.Channel,
) -> None:
    """Serves HTTP on settings.http_port until shutdown (stopped before the gRPC server).

    Notifications and status reports go to this process's own domain (`core`); users and
    templates to userd and templated over gRPC.
    """
    app = create_app(
        settings=settings,
        monitor=runtime.health,
        peers=[Peer("userd", userd), Peer("templated", templated)],
        backends=Backends.over(
            users=userd, templates=templated, timeout=settings.rpc_timeout_seconds
        ),
        acceptor=core.acceptor,
        notification_reads=core.notifications,
        statuses=core.statuses,
        authenticator=core.authenticator,
        keys=core.keys,
        receipts=core.receipts,
        suppression_list=core.suppressions,
        callback_endpoints=core.callbacks,
        callback_history=core.callback_history,
    )
    http = HttpServer(app, settings.host, settings.http_port)
    await http.start()
    runtime.on_shutdown(http.shutdown)
