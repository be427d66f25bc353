"""The life of a Herald process: start servers and pools, serve, shut down gracefully.

    async with Runtime("userd", settings) as runtime:
        pool = await runtime.postgres("herald_users", migrations=Path(...))
        await runtime.serve_grpc(port, [GrpcService(name, register)])
        await runtime.wait_for_shutdown()

On SIGTERM or SIGINT: health turns NOT_SERVING, then everything registered is stopped
in reverse order of registration (consumers before the gRPC server, the server, given
`grace_seconds` to finish its calls, before the pools it uses).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import grpc
import psycopg
import redis.asyncio as aioredis
import structlog
from aio_pika.abc import AbstractRobustConnection
from aio_pika.exceptions import AMQPError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from mesh import amqp, cache, db, migrations, ports, tracing
from mesh.health import Dependency, HealthMonitor
from mesh.interceptors import default_interceptors
from mesh.metrics import start_metrics_server
from mesh.settings import CommonSettings, mask_url

log = structlog.get_logger("mesh.runtime")

# A shutdown step that takes this long is logged (a warning naming it): a process that
# outlasts its supervisor's stop timeout then says which step held it.
SLOW_STEP_SECONDS = 1.0

# What a server that cannot be reached raises while a process starts.
UNREACHABLE = (OSError, psycopg.Error, PoolTimeout, AMQPError)


class StartupError(Exception):
    """A server the process needs to start could not be reached (the message names it)."""


@dataclass(frozen=True)
class GrpcService:
    """A servicer to mount: its full name (for health and reflection) and its registrar."""

    name: str
    register: Callable[[grpc.aio.Server], None]


async def create_grpc_server(
    address: str,
    services: Sequence[GrpcService],
    health: HealthMonitor,
    token: str,
) -> tuple[grpc.aio.Server, int]:
    """Builds a started-to-be server with health, reflection and the interceptor chain.

    Returns the server and the port it bound (useful with port 0).
    """
    server = grpc.aio.server(
        interceptors=[*tracing.server_interceptors(), *default_interceptors(token)]
    )
    for service in services:
        service.register(server)
        health.add_service(service.name)
    health_pb2_grpc.add_HealthServicer_to_server(health.servicer, server)
    reflection.enable_server_reflection(
        [
            *(s.name for s in services),
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind gRPC server to {address}")
    return server, port


class Runtime:
    """Owns a process's resources and their orderly shutdown."""

    def __init__(self, name: str, settings: CommonSettings) -> None:
        self.name = name
        self.settings = settings
        self.health = HealthMonitor(settings.health_interval_seconds)
        self._stack = contextlib.AsyncExitStack()
        self._stop = asyncio.Event()

    async def __aenter__(self) -> Self:
        tracing.configure(self.name, self.settings.otlp_endpoint)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_shutdown)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        log.info("shutting down", service=self.name)
        # A second signal (a process manager's SIGTERM after the terminal's SIGINT) must
        # neither interrupt the shutdown nor kill the process once the loop is gone.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
            signal.signal(sig, signal.SIG_IGN)
        async with self._timed("health"):
            await self.health.shutdown()
        await self._stack.aclose()
        async with self._timed("tracing"):
            tracing.shutdown()
        log.info("stopped", service=self.name)

    def request_shutdown(self) -> None:
        """Asks the process to stop (what SIGTERM does)."""
        self._stop.set()

    async def wait_for_shutdown(self) -> None:
        """Blocks until SIGTERM/SIGINT or `request_shutdown`."""
        await self._stop.wait()

    def on_shutdown(self, callback: Callable[[], Awaitable[object]]) -> None:
        """Runs `callback` at shutdown, before whatever was registered earlier."""
        self._step(getattr(callback, "__qualname__", repr(callback)), callback)

    def _step(self, name: str, callback: Callable[[], Awaitable[object]]) -> None:
        async def timed() -> None:
            async with self._timed(name):
                await callback()

        self._stack.push_async_callback(timed)

    @contextlib.asynccontextmanager
    async def _timed(self, step: str) -> AsyncIterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            took = time.monotonic() - began
            if took >= SLOW_STEP_SECONDS:
                log.warning(
                    "a shutdown step was slow", service=self.name, step=step, seconds=round(took, 2)
                )

    def metrics(self, port: int) -> None:
        """Serves Prometheus metrics on `port` (0 disables)."""
        if port:
            try:
                server = start_metrics_server(self.settings.host, port)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                holder = ports.live_holder(port) or "a closed connection"
                raise ports.PortInUse(
                    f"port {port} on {self.settings.host} is in use by {holder}"
                ) from exc

            async def stop_metrics() -> None:
                server.shutdown()

            self._step("metrics", stop_metrics)

    async def postgres(
        self, database: str, *, migrations_dir: Path | None = None, max_size: int = 10
    ) -> AsyncConnectionPool:
        """Creates the database if needed, applies its migrations, opens a pool."""
        url = self.settings.database_url(database)
        try:
            if migrations_dir is not None:
                await migrations.prepare(self.settings.postgres_url, database, migrations_dir)
            pool = await db.open_pool(url, max_size=max_size)
        except UNREACHABLE as exc:
            raise StartupError(f"PostgreSQL at {mask_url(url)}: {exc}") from exc
        self._step("postgres", pool.close)
        self.health.add_dependency(Dependency("postgres", lambda: db.ping(pool)))
        return pool

    def redis(self, *, required: bool) -> aioredis.Redis:
        """A Redis client; `required=False` means an outage only degrades the service."""
        client = cache.create_redis(self.settings.redis_url)
        self._step("redis", client.aclose)
        self.health.add_dependency(Dependency("redis", lambda: cache.ping(client), required))
        return client

    async def rabbitmq(self, *, required: bool) -> AbstractRobustConnection:
        """A robust RabbitMQ connection, closed at shutdown."""
        try:
            connection = await amqp.connect(self.settings.amqp_url)
        except UNREACHABLE as exc:
            url = mask_url(self.settings.amqp_url)
            raise StartupError(f"RabbitMQ at {url}: {exc!r}") from exc
        self._step("rabbitmq", connection.close)
        self.health.add_dependency(Dependency("rabbitmq", lambda: amqp.ping(connection), required))
        return connection

    async def serve_grpc(self, port: int, services: Sequence[GrpcService]) -> int:
        """Starts the gRPC server (health and reflection included); returns its port.

        A port held only by a closed connection (TIME-WAIT) is waited for first.
        """
        await ports.wait_until_bindable(self.settings.host, port)
        server, bound = await create_grpc_server(
            f"{self.settings.host}:{port}",
            services,
            self.health,
            self.settings.service_token.get_secret_value(),
        )
        await server.start()
        await self.health.start()
        grace = self.settings.grace_seconds

        async def stop() -> None:
            await server.stop(grace)

        self._step("grpc", stop)
        log.info("serving", service=self.name, grpc_port=bound)
        return bound


def run(main: Callable[[], Coroutine[None, None, None]]) -> None:
    """Runs a process's async main on uvloop; exits 0 after a graceful shutdown.

    A server that cannot be reached at start-up, or a port a live process holds, stops
    the process with one line naming it (exit 1), not a traceback: the supervisor
    restarts it once the server is back.
    """
    import uvloop  # noqa: PLC0415 - only processes, not tests, pick the loop

    try:
        uvloop.run(main())
    except (StartupError, ports.PortInUse) as exc:
        reason = " ".join(str(exc).split())
        sys.stderr.write(f"herald: cannot start: {reason}\n")
        raise SystemExit(1) from None


def run_migrations(settings: CommonSettings, database: str, folder: Path) -> None:
    """`python -m <service> migrate`: creates the database and applies its migrations."""
    applied = asyncio.run(migrations.prepare(settings.postgres_url, database, folder))
    log.info("database ready", database=database, applied=applied)
