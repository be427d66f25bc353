"""`python -m templated`: the TemplateService process."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

from mesh.health import Dependency
from mesh.logging import configure_logging
from mesh.runtime import GrpcService, Runtime, run, run_migrations
from mesh.settings import load_settings
from templated.cache import HeadCache
from templated.invalidation import invalidation_listener
from templated.limits import Limits
from templated.rendering import Renderer
from templated.service import TemplateService
from templated.servicer import SERVICE_NAME, TemplateServicer, register
from templated.settings import TemplatedSettings
from templated.store import TemplateStore

MIGRATIONS = Path(__file__).parent / "migrations"


async def main() -> None:
    settings = load_settings(TemplatedSettings)
    configure_logging("templated", settings.log_level)
    async with Runtime("templated", settings) as runtime:
        runtime.metrics(settings.metrics_port)
        pool = await runtime.postgres(settings.database, migrations_dir=MIGRATIONS)
        origin = uuid.uuid4().hex  # tells this process's notifications from the others'
        heads = HeadCache(ttl=settings.active_ttl_seconds, maxsize=settings.cache_size)
        listener = invalidation_listener(
            url=settings.database_url(settings.database), heads=heads, origin=origin
        )
        await listener.start()
        runtime.on_shutdown(listener.stop)
        runtime.health.add_dependency(
            Dependency("template-invalidation", listener.ping, required=False)
        )
        limits = Limits(max_output_chars=settings.max_output_chars, max_steps=settings.render_steps)
        service = TemplateService(
            store=TemplateStore(pool, origin=origin),
            renderer=Renderer(limits),
            heads=heads,
            cache_size=settings.cache_size,
        )
        servicer = TemplateServicer(service, max_variables_bytes=settings.max_variables_bytes)
        await runtime.serve_grpc(
            settings.grpc_port, [GrpcService(SERVICE_NAME, register(servicer))]
        )
        await runtime.wait_for_shutdown()


if __name__ == "__main__":
    if sys.argv[1:] == ["migrate"]:
        configure_logging("templated")
        settings = load_settings(TemplatedSettings)
        run_migrations(settings, settings.database, MIGRATIONS)
    else:
        run(main)
