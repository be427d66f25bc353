"""The notifications database: connections, and outages turned into UNAVAILABLE."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from mesh.errors import Unavailable

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
