"""The real gateway StatusService and userd UserService, served in the test's event loop.

Each runs on a grpc.aio server of its own on port 0, behind Herald's interceptor chain
(the service token is checked), over a database of its own with its service's
migrations. `Faults` sits in front of the real servicer only to make it unreachable for
a while or refuse some calls, and to record what it answered; the protocol is the
servicer's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from aio_pika.abc import AbstractRobustConnection
from grpc_health.v1 import health_pb2_grpc
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

import gateway
import userd
from gateway.lifecycle import RetryPolicy
from gateway.outbox import Outbox, RunningOutbox, start_outbox
from gateway.status import servicer as status_servicer
from gateway.status.claims import Claims
from gateway.status.service import Statuses
from gateway.wire import CHANNELS_BY_NAME
from herald.v1 import user_pb2_grpc
from mesh import cache, db, migrations
from mesh.health import HealthMonitor
from mesh.interceptors import default_interceptors
from mesh.outbound import OutboundRule
from mesh.runtime import GrpcService
from tests.support.infra import POSTGRES_URL, REDIS_URL, SERVICE_TOKEN
from userd.cache import UserCache
from userd.cache_sync import CacheSync
from userd.passwords import Passwords
from userd.service import Users
from userd.servicer import SERVICE_NAME as USER_SERVICE
from userd.servicer import UserServicer

GATEWAY_MIGRATIONS = Path(gateway.__file__).parent / "migrations"
USERD_MIGRATIONS = Path(userd.__file__).parent / "migrations"
# The outbox's timings: the relay picks up what an inline publish did not confirm.
OUTBOX_GRACE_SECONDS = 2.0
OUTBOX_INTERVAL_SECONDS = 0.5
# The gateway's retry policy (`start_gateway`): delays of BACKOFF_BASE * 2^(attempt-1)
# plus a jitter, at most BACKOFF_MAX.
BACKOFF_BASE = 0.3
BACKOFF_MAX = 3.0
MAX_ATTEMPTS = {"email": 3, "sms": 2, "push": 2}
# Herald's own services (health and reflection are never faulted nor recorded).
HERALD_METHODS = "/herald."

Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


@dataclass
class Rule:
    """Calls of some methods (all when empty) answered with `code`, `remaining` more
    times (None: until healed)."""

    methods: frozenset[str]
    code: grpc.StatusCode
    remaining: int | None

    def takes(self, method: str) -> bool:
        return (not self.methods or method in self.methods) and self.remaining != 0


@dataclass
class Gate:
    """Holds calls of some methods until released; `held` counts the calls it stopped."""

    methods: frozenset[str]
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    held: int = 0

    def release(self) -> None:
        self.opened.set()


@dataclass(frozen=True)
class Call:
    """A call the real servicer answered."""

    method: str
    request: Any
    response: Any


@dataclass
class Faults(grpc.aio.ServerInterceptor):
    """In front of the real servicer: fails or holds calls as an outage or a slow gateway
    would; records what the servicer answered."""

    calls: list[Call] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    gates: list[Gate] = field(default_factory=list)

    def fail(
        self,
        *methods: str,
        times: int | None = None,
        code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE,
    ) -> Rule:
        """The next `times` calls of `methods` (every method when none) fail with `code`."""
        rule = Rule(frozenset(methods), code, times)
        self.rules.append(rule)
        return rule

    def hold(self, *methods: str) -> Gate:
        """Calls of `methods` wait until the gate is released."""
        gate = Gate(frozenset(methods))
        self.gates.append(gate)
        return gate

    def heal(self) -> None:
        self.rules.clear()
        for gate in self.gates:
            gate.release()
        self.gates.clear()

    def answers(self, *methods: str) -> list[Call]:
        return [c for c in self.calls if c.method in methods]

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        full_name: str = handler_call_details.method
        if (
            handler is None
            or handler.unary_unary is None
            or not full_name.startswith(HERALD_METHODS)
        ):
            return handler
        method = full_name.rsplit("/", 1)[-1]
        behavior: Behavior = handler.unary_unary

        async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            for rule in self.rules:
                if rule.takes(method):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    await context.abort(rule.code, f"injected by the test: {method}")
            for gate in self.gates:
                if method in gate.methods and not gate.opened.is_set():
                    gate.held += 1
                    await gate.opened.wait()
            response = await behavior(request, context)
            self.calls.append(Call(method, request, response))
            return response

        return grpc.unary_unary_rpc_method_handler(
            run,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


@dataclass
class Served:
    """A grpc.aio server on 127.0.0.1, port 0, with Herald's interceptors and health."""

    server: grpc.aio.Server
    port: int
    health: HealthMonitor
    faults: Faults

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @classmethod
    async def start(cls, services: list[GrpcService]) -> Served:
        faults = Faults()
        server = grpc.aio.server(interceptors=[*default_interceptors(SERVICE_TOKEN), faults])
        health = HealthMonitor(interval=0.5)
        for service in services:
            service.register(server)
            health.add_service(service.name)
        health_pb2_grpc.add_HealthServicer_to_server(health.servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        await health.start()
        return cls(server, port, health, faults)

    async def stop(self) -> None:
        await self.health.shutdown()
        await self.server.stop(1)


async def database(name: str, folder: Path) -> AsyncConnectionPool:
    """A pool on database `name`, created with the migrations of `folder`."""
    await migrations.prepare(POSTGRES_URL, name, folder)
    return await db.open_pool(f"{POSTGRES_URL}/{name}", max_size=5)


@dataclass
class Gateway:
    """The gateway's StatusService and its outbox, over the notifications database."""

    pool: AsyncConnectionPool
    outbox: Outbox
    statuses: Statuses
    running: RunningOutbox
    served: Served

    @property
    def faults(self) -> Faults:
        return self.served.faults

    async def stop(self) -> None:
        """In the gateway's order: the server, the relay, the last marks, the publisher."""
        await self.served.stop()
        await self.running.stop()
        await self.pool.close()


async def start_gateway(*, database_name: str, connection: AbstractRobustConnection) -> Gateway:
    """The StatusService as `gateway.core.start_core` wires it (nothing else of the
    gateway), publishing on `connection`'s vhost. The only place a test builds
    `Statuses`, so a change of its constructor is one edit here."""
    pool = await database(database_name, GATEWAY_MIGRATIONS)
    running = await start_outbox(
        pool,
        connection,
        publish_timeout=5.0,
        interval=OUTBOX_INTERVAL_SECONDS,
        grace=OUTBOX_GRACE_SECONDS,
        batch_size=100,
    )
    outbox = running.outbox
    policy = RetryPolicy(
        max_attempts={CHANNELS_BY_NAME[name]: n for name, n in MAX_ATTEMPTS.items()},
        base=BACKOFF_BASE,
        maximum=BACKOFF_MAX,
    )
    statuses = Statuses(pool=pool, outbox=outbox, policy=policy)
    servicer = status_servicer.StatusServicer(statuses, Claims(pool=pool))
    served = await Served.start([status_servicer.service(servicer)])
    return Gateway(pool, outbox, statuses, running, served)


@dataclass
class Userd:
    """userd's UserService over the users database and Redis (under the run's prefix)."""

    pool: AsyncConnectionPool
    redis: Redis
    cache: CacheSync
    served: Served

    @property
    def faults(self) -> Faults:
        return self.served.faults

    async def stop(self) -> None:
        await self.served.stop()
        await self.cache.stop()
        await self.redis.aclose()
        await self.pool.close()


async def start_userd(*, database_name: str, redis_prefix: str, allow_loopback: bool) -> Userd:
    """The UserService as `userd.__main__` wires it; `allow_loopback` as
    HERALD_OUTBOUND_ALLOW_LOOPBACK (the fake push service is on 127.0.0.1)."""
    pool = await database(database_name, USERD_MIGRATIONS)
    redis = cache.create_redis(REDIS_URL)
    sync = CacheSync(
        cache=UserCache(redis, redis_prefix, 600.0),
        pool=pool,
        timeout=1.0,
        repair_interval=0.5,
    )
    await sync.start()
    outbound = OutboundRule(allow_loopback=allow_loopback)
    servicer = UserServicer(
        Users(pool=pool, cache=sync, passwords=Passwords("cheapest"), outbound=outbound)
    )

    def register(server: grpc.aio.Server) -> None:
        user_pb2_grpc.add_UserServiceServicer_to_server(servicer, server)

    served = await Served.start([GrpcService(USER_SERVICE, register)])
    return Userd(pool, redis, sync, served)


async def drop(*names: str) -> None:
    await asyncio.gather(*(db.drop_database(POSTGRES_URL, n) for n in names))
