"""`together`: the batched claim/delivery statements take each key once, and an item the
statement does not take (a repeat, a lost deadlock) answers None: the long way."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from gateway.store.db import Conn, together
from mesh.db import open_pool
from tests.support.infra import POSTGRES_URL
from tests.support.processes import ServiceProcess


@pytest.fixture
async def pool(gateway: ServiceProcess, core_database: str) -> AsyncIterator[AsyncConnectionPool]:
    """A pool on the gateway's database (the gateway process created it)."""
    pool = await open_pool(f"{POSTGRES_URL}/{core_database}", max_size=2)
    yield pool
    await pool.close()


class Statement:
    """Answers each item it is given from the database (so the connection is real)."""

    def __init__(self, *, deadlock: bool = False) -> None:
        self.seen: list[list[tuple[str, str]]] = []
        self.deadlock = deadlock

    async def __call__(self, conn: Conn, items: Sequence[tuple[str, str]]) -> list[str | None]:
        self.seen.append(list(items))
        if self.deadlock:
            await conn.execute("SELECT 1")
            raise psycopg.errors.DeadlockDetected("deadlock detected")
        cur = await conn.execute(
            "SELECT upper(x) AS y FROM unnest(%s::text[]) AS x", ([b for _, b in items],)
        )
        return [row["y"] for row in await cur.fetchall()]


async def test_each_key_and_each_also_go_once_and_repeats_take_the_long_way(pool) -> None:
    statement = Statement()
    items = [("n1", "a1"), ("n2", "a2"), ("n1", "a3"), ("n3", "a2"), ("n4", "a4")]

    answers = await together(pool, items, statement, key=lambda i: i[0], also=lambda i: i[1])

    assert statement.seen == [[("n1", "a1"), ("n2", "a2"), ("n4", "a4")]]
    assert answers == ["A1", "A2", None, None, "A4"]


async def test_a_lost_deadlock_sends_every_item_the_long_way(pool) -> None:
    statement = Statement(deadlock=True)
    answers = await together(pool, [("n1", "a1"), ("n2", "a2")], statement, key=lambda i: i[0])
    assert answers == [None, None]
    assert statement.seen == [[("n1", "a1"), ("n2", "a2")]]
    async with pool.connection() as conn:  # the connection went back usable
        assert (await (await conn.execute("SELECT 2 AS two")).fetchone()) == {"two": 2}
