"""PostgreSQL: one async connection pool per service database."""

from __future__ import annotations

import psycopg
from psycopg import sql
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


async def open_pool(
    url: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 10.0
) -> AsyncConnectionPool:
    """Opens a pool of dict-row connections, waiting until PostgreSQL answers."""
    pool: AsyncConnectionPool = AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        open=False,
        kwargs={"row_factory": dict_row, "connect_timeout": 3},
        check=AsyncConnectionPool.check_connection,
        timeout=timeout,
        name=url.rsplit("/", 1)[-1],
    )
    await pool.open(wait=True, timeout=timeout)
    return pool


async def ping(pool: AsyncConnectionPool) -> None:
    """Raises when PostgreSQL does not answer a trivial query."""
    async with pool.connection(timeout=1.0) as conn:
        await conn.execute("SELECT 1")
