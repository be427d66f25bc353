"""`python -m gateway`: the REST edge, NotificationService, StatusService, SuppressionService
and CallbackService. `python -m gateway callbacks`: the process that posts status callbacks
(`gateway.callbacks.process`); `migrate`, `apikeys`: the database's migrations, API keys."""

from __future__ import annotations

import sys

from gateway import MIGRATIONS
from gateway.settings import GatewaySettings
from mesh.client import internal_channel
from mesh.logging import configure_logging
from mesh.runtime import Runtime, run, run_migrations
from mesh.settings import load_settings


async def main() -> None:
    # The server's modules load here, not at the top: `python -m gateway apikeys` stays fast.
    from gateway.core import start_core  # noqa: PLC0415
    from gateway.http.edge import start_edge  # noqa: PLC0415
    from userd.client_cache import start_local_users  # noqa: PLC0415

    settings = load_settings(GatewaySettings)
    configure_logging("gateway", settings.log_level)
    token = settings.service_token.get_secret_value()
    async with Runtime("gateway", settings) as runtime:
        runtime.metrics(settings.metrics_port)
        pool = await runtime.postgres(
            settings.database, migrations_dir=MIGRATIONS, max_size=settings.db_pool_size
        )
        connection = await runtime.rabbitmq(required=False)
        userd = internal_channel(settings.userd_addr, token)
        templated = internal_channel(settings.templated_addr, token)
        runtime.on_shutdown(userd.close)
        runtime.on_shutdown(templated.close)
        core = await start_core(
            runtime,
            settings,
            pool=pool,
            connection=connection,
            userd=userd,
            templated=templated,
            users=start_local_users(runtime, settings),
        )
        await runtime.serve_grpc(settings.grpc_port, core.services)
        await start_edge(runtime, settings, core=core, userd=userd, templated=templated, pool=pool)
        await runtime.wait_for_shutdown()


if __name__ == "__main__":
    if sys.argv[1:2] == ["apikeys"]:
        from gateway.apikeys.cli import main as apikeys

        sys.exit(apikeys(sys.argv[2:]))
    if sys.argv[1:] == ["callbacks"]:
        from gateway.callbacks.process import main as callbacks

        run(callbacks)
    elif sys.argv[1:] == ["migrate"]:
        configure_logging("gateway")
        settings = load_settings(GatewaySettings)
        run_migrations(settings, settings.database, MIGRATIONS)
    else:
        run(main)
