"""PostgreSQL: one async connection pool per service database."""

from __future__ import annotations

from time import monotonic
from weakref import WeakKeyDictionary

import psycopg
from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool


async def ensure_database(server_url: str, name: str) -> bool:
    """Creates database `name` on the server if it is missing; True when it was created."""
    async with await psycopg.AsyncConnection.connect(
        f"{server_url.rstrip('/')}/postgres", autocommit=True
    ) as conn:
        found = await conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if await found.fetchone():
            return False
        try:
            await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:
            return False
        return True


async def drop_database(server_url: str, name: str) -> None:
    """Drops database `name` (tests), closing its connections first."""
    async with await psycopg.AsyncConnection.connect(
        f"{server_url.rstrip('/')}/postgres", autocommit=True
    ) as conn:
        await conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


# A connection back in the pool for less than this is handed out again unchecked.
FRESH_SECONDS = 1.0


class IdleCheck:
    """Checks a connection on checkout only when it sat in the pool long enough to have
    gone stale (a server restart, an idle timeout): under load, no extra round trip.

    A connection that breaks while in use is discarded when it comes back (the pool sees
    its state), so only a connection that broke while idle needs the check.
    """

    def __init__(self, fresh_seconds: float = FRESH_SECONDS) -> None:
        self._fresh = fresh_seconds
        self._returned: WeakKeyDictionary[AsyncConnection[object], float] = WeakKeyDictionary()

    async def returned(self, conn: AsyncConnection[object]) -> None:
        self._returned[conn] = monotonic()

    async def check(self, conn: AsyncConnection[object]) -> None:
        returned = self._returned.get(conn)
        if returned is None or monotonic() - returned >= self._fresh:
            await AsyncConnectionPool.check_connection(conn)


async def open_pool(
    url: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 10.0
) -> AsyncConnectionPool:
    """Opens a pool of dict-row, autocommit connections, waiting until PostgreSQL answers.

    Autocommit: a single statement is one round trip; several that must hold together
    run in `conn.transaction()` (BEGIN … COMMIT).

    Custom plans only (`plan_cache_mode`): psycopg prepares a statement run often, and
    PostgreSQL would then keep a generic plan made when the table was small for as long
    as the connection lives. Measured: a table that grew from empty kept seq-scan plans
    (the idempotency lookup, the batched DELIVERED statement) and PostgreSQL burned 1.5-6 ms
    of CPU per notification. A custom plan sees the table's size at every execution.
    """
    idle = IdleCheck()
    pool: AsyncConnectionPool = AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        open=False,
        kwargs={
            "row_factory": dict_row,
            "connect_timeout": 3,
            "autocommit": True,
            "options": "-c plan_cache_mode=force_custom_plan",
        },
        check=idle.check,
        reset=idle.returned,
        timeout=timeout,
        name=url.rsplit("/", 1)[-1],
    )
    await pool.open(wait=True, timeout=timeout)
    return pool


async def ping(pool: AsyncConnectionPool) -> None:
    """Raises when PostgreSQL does not answer a trivial query."""
    async with pool.connection(timeout=1.0) as conn:
        await conn.execute("SELECT 1")
