"""`python -m userd`: the UserService process."""

from __future__ import annotations

import sys
from pathlib import Path

import grpc

from herald.v1 import user_pb2_grpc
from mesh.logging import configure_logging
from mesh.runtime import GrpcService, Runtime, run, run_migrations
from mesh.settings import load_settings
from userd.cache import UserCache
from userd.cache_sync import CacheSync
from userd.passwords import Passwords
from userd.service import Users
from userd.servicer import SERVICE_NAME, UserServicer
from userd.settings import UserdSettings

MIGRATIONS = Path(__file__).parent / "migrations"


async def main() -> None:
    settings = load_settings(UserdSettings)
    configure_logging("userd", settings.log_level)
    async with Runtime("userd", settings) as runtime:
        runtime.metrics(settings.metrics_port)
        pool = await runtime.postgres(settings.database, migrations_dir=MIGRATIONS)
        redis = runtime.redis(required=False)
        cache = CacheSync(
            cache=UserCache(redis, settings.redis_prefix, settings.cache_ttl_seconds),
            pool=pool,
            timeout=settings.cache_timeout_seconds,
        )
        await cache.start()
        runtime.on_shutdown(cache.stop)
        users = Users(
            pool=pool,
            cache=cache,
            passwords=Passwords(settings.password_hash_profile),
            outbound=settings.outbound_rule(),
        )
        servicer = UserServicer(users)

        def register(server: grpc.aio.Server) -> None:
            user_pb2_grpc.add_UserServiceServicer_to_server(servicer, server)

        await runtime.serve_grpc(settings.grpc_port, [GrpcService(SERVICE_NAME, register)])
        await runtime.wait_for_shutdown()


if __name__ == "__main__":
    if sys.argv[1:] == ["migrate"]:
        configure_logging("userd")
        settings = load_settings(UserdSettings)
        run_migrations(settings, settings.database, MIGRATIONS)
    else:
        run(main)
