"""Health: the gRPC health servicer fed by periodic checks of each dependency.

Service names served: "" (the whole process), each gRPC service of the process, and
`herald.dependency.<name>` per dependency. A required dependency that is down turns the
process and its services NOT_SERVING; an optional one only its own entry (degraded).
`herald.live` is SERVING from start-up until shutdown whatever the dependencies say: a
liveness probe asks it (a database outage must not restart every pod), readiness asks
the service's own name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from grpc_health.v1 import health, health_pb2

from mesh.metrics import DEPENDENCY_UP
from mesh.metrics import SERVING as SERVING_GAUGE

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
DEPENDENCY_PREFIX = "herald.dependency."
LIVE = "herald.live"
CHECK_TIMEOUT = 1.5

log = structlog.get_logger("mesh.health")


@dataclass(frozen=True)
class Dependency:
    """Something the process talks to, with a cheap liveness check."""

    name: str
    check: Callable[[], Awaitable[object]]
    required: bool = True


class HealthMonitor:
    """Owns the health servicer and keeps it in step with the dependencies."""

    def __init__(self, interval: float) -> None:
        self.servicer = health.aio.HealthServicer()
        self._interval = interval
        self._dependencies: list[Dependency] = []
        self._services: list[str] = [""]
        self._up: dict[str, bool] = {}
        self._task: asyncio.Task[None] | None = None
        self._shutting_down = False

    def add_dependency(self, dependency: Dependency) -> None:
        self._dependencies.append(dependency)

    def add_service(self, name: str) -> None:
        self._services.append(name)

    @property
    def healthy(self) -> bool:
        """True when every required dependency answered its last check."""
        return all(self._up.get(d.name, False) for d in self._dependencies if d.required)

    async def start(self) -> None:
        """Checks once (so the first answer is real), then keeps checking in the background."""
        await self.servicer.set(LIVE, SERVING)
        await self.check_all()
        self._task = asyncio.create_task(self._loop(), name="health-monitor")

    async def check_all(self) -> None:
        results = await asyncio.gather(*(self._check(d) for d in self._dependencies))
        for dependency, ok in zip(self._dependencies, results, strict=True):
            if self._up.get(dependency.name) != ok:
                log.log(
                    20 if ok else 40,
                    "dependency changed",
                    dependency=dependency.name,
                    up=ok,
                    required=dependency.required,
                )
            self._up[dependency.name] = ok
            DEPENDENCY_UP.labels(dependency=dependency.name).set(1 if ok else 0)
            await self.servicer.set(
                DEPENDENCY_PREFIX + dependency.name, SERVING if ok else NOT_SERVING
            )
        if not self._shutting_down:
            status = SERVING if self.healthy else NOT_SERVING
            SERVING_GAUGE.set(1 if status == SERVING else 0)
            for service in self._services:
                await self.servicer.set(service, status)

    async def _check(self, dependency: Dependency) -> bool:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                await dependency.check()
        except Exception:  # a down dependency may fail in any way its client likes
            return False
        return True

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.check_all()

    async def shutdown(self) -> None:
        """Every entry NOT_SERVING from now on; stops checking."""
        self._shutting_down = True
        SERVING_GAUGE.set(0)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.servicer.enter_graceful_shutdown()
