"""The notifications database: connections, outages turned into UNAVAILABLE, and one
batched statement over many items (`together`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

import psycopg
import structlog
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from mesh.errors import Unavailable

log = structlog.get_logger(__name__)

T = TypeVar("T")
R = TypeVar("R")
Conn = AsyncConnection[dict[str, Any]]
# A caller waits this long for a connection before the database counts as unavailable.
ACQUIRE_TIMEOUT = 5.0


@asynccontextmanager
async def connection(pool: AsyncConnectionPool) -> AsyncIterator[Conn]:
    """An autocommit connection (each statement its own transaction); an unreachable
    database raises Unavailable."""
    try:
        async with pool.connection(timeout=ACQUIRE_TIMEOUT) as conn:
            yield cast(Conn, conn)
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise Unavailable("the notifications database is unavailable") from exc


@asynccontextmanager
async def transaction(pool: AsyncConnectionPool) -> AsyncIterator[Conn]:
    """A connection inside a transaction; an unreachable database raises Unavailable."""
    async with connection(pool) as conn, conn.transaction():
        yield conn


async def together(
    pool: AsyncConnectionPool,
    items: Sequence[T],
    statement: Callable[[Conn, Sequence[T]], Awaitable[list[R | None]]],
    *,
    key: Callable[[T], Hashable],
    also: Callable[[T], Hashable] | None = None,
) -> list[R | None]:
    """`statement` over the items, at most one per key (and per `also`): a repeated one,
    like any the statement did not take, answers None and takes the long way. So does
    every item when the statement loses a deadlock (every batched writer of
    `notifications` locks in id order, so none is expected; this is the safety net)."""
    outcomes: list[R | None] = [None] * len(items)
    if not items:
        return outcomes
    seen: set[Hashable] = set()
    chosen: list[int] = []
    for index, item in enumerate(items):
        keys = {("key", key(item))} | ({("also", also(item))} if also else set())
        if not keys & seen:
            seen |= keys
            chosen.append(index)
    async with connection(pool) as conn:
        try:
            answers = await statement(conn, [items[i] for i in chosen])
        except psycopg.errors.DeadlockDetected:
            log.warning("batched statement lost a deadlock; its items go one by one")
            return outcomes
    for index, answer in zip(chosen, answers, strict=True):
        outcomes[index] = answer
    return outcomes
