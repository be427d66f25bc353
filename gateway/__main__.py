"""`python -m gateway`: the REST edge, NotificationService and StatusService."""

from __future__ import annotations

import sys
from pathlib import Path

from gateway.http.app import create_app
from gateway.http.health import Peer
from gateway.http.server import HttpServer
from gateway.settings import GatewaySettings
from mesh.client import internal_channel
from mesh.logging import configure_logging
from mesh.runtime import Runtime, run, run_migrations
from mesh.settings import load_settings

MIGRATIONS = Path(__file__).parent / "migrations"


async def main() -> None:
    settings = load_settings(GatewaySettings)
    configure_logging("gateway", settings.log_level)
    token = settings.service_token.get_secret_value()
    async with Runtime("gateway", settings) as runtime:
        await runtime.postgres(settings.database, migrations_dir=MIGRATIONS)
        await runtime.rabbitmq(required=False)
        userd = internal_channel(settings.userd_addr, token)
        templated = internal_channel(settings.templated_addr, token)
        runtime.on_shutdown(userd.close)
        runtime.on_shutdown(templated.close)
        await runtime.serve_grpc(settings.grpc_port, [])
        app = create_app(
            monitor=runtime.health,
            peers=[Peer("userd", userd), Peer("templated", templated)],
        )
        http = HttpServer(app, settings.host, settings.http_port)
        await http.start()
        runtime.on_shutdown(http.shutdown)
        await runtime.wait_for_shutdown()


if __name__ == "__main__":
    if sys.argv[1:] == ["migrate"]:
        configure_logging("gateway")
        settings = load_settings(GatewaySettings)
        run_migrations(settings, settings.database, MIGRATIONS)
    else:
        run(main)
