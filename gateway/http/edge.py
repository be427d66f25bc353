"""Starts the REST edge (and the operator console under /console) inside the gateway
process, once its gRPC server is up."""

from __future__ import annotations

import grpc
from psycopg_pool import AsyncConnectionPool

from console import create_console
from console.services import Services
from console.sessions import Sessions
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
    pool: AsyncConnectionPool,
) -> None:
    """Serves HTTP on settings.http_port until shutdown (stopped before the gRPC server).

    Notifications and status reports go to this process's own domain (`core`); users and
    templates to userd and templated over gRPC.
    """
    backends = Backends.over(users=userd, templates=templated, timeout=settings.rpc_timeout_seconds)
    app = create_app(
        settings=settings,
        monitor=runtime.health,
        peers=[Peer("userd", userd), Peer("templated", templated)],
        backends=backends,
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
    # The console calls the same domain objects in process (docs/console.md: why here).
    console = Services(
        notifications=core.notifications,
        keys=core.keys,
        backends=backends,
        providers=core.providers,
        inbox=core.inbox,
        suppressions=core.suppressions,
        sessions=Sessions(
            pool=pool, authenticator=core.authenticator, seconds=settings.console_session_seconds
        ),
        bulk_retry_max=settings.console_bulk_retry_max,
        secure_cookie=settings.console_secure_cookie,
    )
    app.mount("/console", create_console(console))
    http = HttpServer(app, settings.host, settings.http_port)
    await http.start()
    runtime.on_shutdown(http.shutdown)
