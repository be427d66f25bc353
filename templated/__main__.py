"""`python -m templated`: the TemplateService process."""

from __future__ import annotations

import sys
from pathlib import Path

from mesh.logging import configure_logging
from mesh.runtime import Runtime, run, run_migrations
from mesh.settings import load_settings
from templated.settings import TemplatedSettings

MIGRATIONS = Path(__file__).parent / "migrations"


async def main() -> None:
    settings = load_settings(TemplatedSettings)
    configure_logging("templated", settings.log_level)
    async with Runtime("templated", settings) as runtime:
        runtime.metrics(settings.metrics_port)
        await runtime.postgres(settings.database, migrations_dir=MIGRATIONS)
        await runtime.serve_grpc(settings.grpc_port, [])
        await runtime.wait_for_shutdown()


if __name__ == "__main__":
    if sys.argv[1:] == ["migrate"]:
        configure_logging("templated")
        settings = load_settings(TemplatedSettings)
        run_migrations(settings, settings.database, MIGRATIONS)
    else:
        run(main)
