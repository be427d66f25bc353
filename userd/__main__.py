"""`python -m userd`: the UserService process."""

from __future__ import annotations

import sys
from pathlib import Path

from mesh.logging import configure_logging
from mesh.runtime import Runtime, run, run_migrations
from mesh.settings import load_settings
from userd.settings import UserdSettings

MIGRATIONS = Path(__file__).parent / "migrations"


async def main() -> None:
    settings = load_settings(UserdSettings)
    configure_logging("userd", settings.log_level)
    async with Runtime("userd", settings) as runtime:
        runtime.metrics(settings.metrics_port)
        await runtime.postgres(settings.database, migrations_dir=MIGRATIONS)
        runtime.redis(required=False)
        await runtime.serve_grpc(settings.grpc_port, [])
        await runtime.wait_for_shutdown()


if __name__ == "__main__":
    if sys.argv[1:] == ["migrate"]:
        configure_logging("userd")
        settings = load_settings(UserdSettings)
        run_migrations(settings, settings.database, MIGRATIONS)
    else:
        run(main)
