"""Keeps userd from ever serving a cached user older than its last successful change.

Every change is written through after its transaction commits. When that write fails
(Redis down, paused, or too slow), the change still succeeds: the user is recorded in the
`cache_repairs` table and userd stops *trusting* the cache, i.e. reads go to PostgreSQL.
A background pass (every REPAIR_SECONDS) refreshes the recorded
users once Redis takes writes, and trusts the cache again only when none is left and
nothing failed meanwhile. The table outlives a crash; every userd process of the database
works it off, and stops trusting the cache while it finds entries there, so a failure seen
by another process is honoured within one pass.

A Redis that restarted (its run id changed) may have come back from an older snapshot or
AOF, with entries older than writes it had acknowledged: the next pass notices (so such an
entry can be served for at most one repair interval after the restart, and only if no
read or write met the restart's broken connection first), drops every user entry, and
trusts the cache again only after that.

Readers going to Redis directly (`UserCacheReader`) can meet an old entry only while Redis
serves reads but not userd's writes (a pause, a partition, a restart from its AOF or
snapshot), and only until the first repair pass after it takes userd's writes again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TypeVar
from uuid import UUID

import psycopg
import structlog
from prometheus_client import Counter
from psycopg_pool import AsyncConnectionPool
from redis.exceptions import RedisError

from userd import store
from userd.cache import UserCache
from userd.convert import user_from_proto, user_to_proto
from userd.models import User

T = TypeVar("T")
REPAIR_BATCH = 100
# Seconds between repair passes: how long a change userd could not write through waits once
# Redis is back (docs/guarantees.md).
REPAIR_SECONDS = 1.0
# What a Redis outage looks like to us: redis-py errors, or our own deadline (TimeoutError
# is an OSError).
CACHE_ERRORS = (RedisError, OSError)

CACHE_LOOKUPS = Counter(
    "herald_userd_cache_lookups_total",
    "User cache reads: hit, miss, bypass (cache not trusted) or error.",
    ["result"],
)
CACHE_WRITE_FAILURES = Counter(
    "herald_userd_cache_write_failures_total",
    "Write-throughs not done (Redis failed, or was not trusted) and left to repair.",
)
CACHE_REPAIRS = Counter("herald_userd_cache_repairs_total", "Cache entries refreshed by repair.")

log = structlog.get_logger(__name__)


class CacheSync:
    """The user cache as userd uses it: reads, fills, write-through, repair."""

    def __init__(
        self,
        *,
        cache: UserCache,
        pool: AsyncConnectionPool,
        timeout: float,
        repair_interval: float = REPAIR_SECONDS,
    ) -> None:
        self._cache = cache
        self._pool = pool
        self._timeout = timeout
        self._interval = repair_interval
        # Untrusted until a first repair pass has run: a crash may have left stale entries.
        self._trusted = False
        self._failures = 0
        self._task: asyncio.Task[None] | None = None
        self._repair_error: str | None = None
        self._server_run: str | None = None

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        # redis-py retries a dead connection ten times; a cache must rather fail fast.
        async with asyncio.timeout(self._timeout):
            return await operation()

    def _distrust(self, reason: str) -> None:
        self._failures += 1
        if self._trusted:
            log.warning("user cache not trusted until repaired", reason=reason)
        self._trusted = False

    async def read(self, user_id: UUID) -> User | None:
        """The cached user, or None when it is not cached or the cache is not trusted."""
        if not self._trusted:
            CACHE_LOOKUPS.labels(result="bypass").inc()
            return None
        try:
            found = await self._call(lambda: self._cache.entry(user_id))
        except CACHE_ERRORS as exc:
            CACHE_LOOKUPS.labels(result="error").inc()
            self._distrust(type(exc).__name__)
            return None
        CACHE_LOOKUPS.labels(result="hit" if found else "miss").inc()
        return user_from_proto(found[1], found[0]) if found else None

    async def read_many(self, user_ids: Sequence[UUID]) -> dict[UUID, User]:
        """`read` for many users in one round trip: the ones the cache holds."""
        if not self._trusted:
            CACHE_LOOKUPS.labels(result="bypass").inc(len(user_ids))
            return {}
        try:
            found = await self._call(lambda: self._cache.entries(user_ids))
        except CACHE_ERRORS as exc:
            CACHE_LOOKUPS.labels(result="error").inc(len(user_ids))
            self._distrust(type(exc).__name__)
            return {}
        hits = {
            user_id: user_from_proto(entry[1], entry[0])
            for user_id, entry in zip(user_ids, found, strict=True)
            if entry is not None
        }
        CACHE_LOOKUPS.labels(result="hit").inc(len(hits))
        CACHE_LOOKUPS.labels(result="miss").inc(len(user_ids) - len(hits))
        return hits

    async def fill(self, user: User) -> None:
        """Caches a user read from PostgreSQL after a miss (best effort)."""
        if not self._trusted:
            return
        try:
            await self._call(
                lambda: self._cache.put(user_to_proto(user), user.version, announce=False)
            )
        except CACHE_ERRORS as exc:
            self._distrust(type(exc).__name__)

    async def fill_many(self, users: Sequence[User]) -> None:
        """`fill` for many users, in one round trip."""
        if not self._trusted or not users:
            return
        try:
            await self._call(
                lambda: self._cache.put_many([(user_to_proto(u), u.version) for u in users])
            )
        except CACHE_ERRORS as exc:
            self._distrust(type(exc).__name__)

    async def write(self, user: User) -> None:
        """Writes a changed user through; on failure records it for repair."""
        await self._write_through(
            user.id, lambda: self._cache.put(user_to_proto(user), user.version, announce=True)
        )

    async def remove(self, user_id: UUID) -> None:
        """Evicts a deleted user (a tombstone); on failure records it for repair."""
        await self._write_through(user_id, lambda: self._cache.tombstone(user_id))

    async def _write_through(
        self, user_id: UUID, operation: Callable[[], Awaitable[object]]
    ) -> None:
        # While untrusted, Redis is known to be behind: skip it (no waiting on a dead
        # server) and let the repair pass bring this user up to date with the others.
        if self._trusted:
            try:
                await self._call(operation)
                return
            except CACHE_ERRORS as exc:
                self._distrust(type(exc).__name__)
        else:
            self._failures += 1
        CACHE_WRITE_FAILURES.inc()
        async with store.connect(self._pool) as conn:
            await store.mark_cache_repair(conn, user_id=user_id)

    async def repair(self) -> None:
        """One pass: if Redis answers, refresh every recorded user, then trust the cache
        unless a write-through failed meanwhile. Raises what Redis or PostgreSQL raise."""
        failures = self._failures
        await self._call(self._cache.ping)
        await self._forget_a_restarted_server()
        async with store.connect(self._pool) as conn:
            while True:
                async with conn.transaction():
                    pending = await store.cache_repairs(conn, limit=REPAIR_BATCH)
                if not pending:
                    break
                if self._trusted:
                    # Another process failed a write-through: its users may be stale here.
                    self._trusted = False
                    log.info("user cache not trusted until repaired", reason="repairs pending")
                for user_id, marked_at in pending:
                    await self._refresh(conn, user_id, marked_at)
        if failures == self._failures and not self._trusted:
            self._trusted = True
            log.info("user cache trusted")

    async def _forget_a_restarted_server(self) -> None:
        server_run = await self._call(self._cache.server_run)
        if self._server_run is not None and server_run != self._server_run:
            self._distrust("redis restarted")
            # A fill begun while trusted lands within the timeout: let it, then clear.
            await asyncio.sleep(self._timeout)
            removed = await self._call(self._cache.clear)
            log.warning("redis restarted: user cache cleared", entries=removed)
        self._server_run = server_run

    async def _refresh(self, conn: store.Conn, user_id: UUID, marked_at: datetime) -> None:
        async with conn.transaction():
            user = await store.fetch_user(conn, user_id=user_id)
            if user is None:
                await self._call(lambda: self._cache.tombstone(user_id))
            else:
                await self._call(
                    lambda: self._cache.put(user_to_proto(user), user.version, announce=True)
                )
            await store.clear_cache_repair(conn, user_id=user_id, marked_at=marked_at)
        CACHE_REPAIRS.inc()

    async def _pass(self) -> None:
        """One repair pass; failures are logged when they change, never raised."""
        error = None
        try:
            await self.repair()
        except CACHE_ERRORS as exc:
            error = f"redis: {type(exc).__name__}"
            self._distrust(error)
        except psycopg.Error as exc:
            error = f"postgres: {type(exc).__name__}"
        except Exception as exc:  # a bug must not end the repairs for good
            error = f"unexpected: {type(exc).__name__}"
            if error != self._repair_error:
                log.exception("user cache repair failed")
        if error != self._repair_error:
            log.log(30 if error else 20, "user cache repair", error=error or "none")
            self._repair_error = error

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self._pass()

    async def start(self) -> None:
        """Runs a first pass (so a healthy cache is trusted from the first request), then
        keeps repairing in the background."""
        await self._pass()
        self._task = asyncio.create_task(self._run(), name="user-cache-repair")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
