"""SQL for the `api_keys` table (gateway's `notifications` database)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

from psycopg import AsyncConnection

# Each revocation (and each change of a key's rate) is announced here (payload: the key
# id), at commit, to every gateway, which then forgets what it cached of the key.
REVOKED_CHANNEL = "herald_api_keys_revoked"


class ApiKeyRow(TypedDict):
    id: str
    name: str
    client_id: str
    scopes: list[str]
    key_hash: bytes
    create_time: datetime
    revoke_time: datetime | None
    rate_per_second: int | None
    rate_burst: int | None


Conn = AsyncConnection[Any]

_COLUMNS = (
    "id, name, client_id, scopes, key_hash, create_time, revoke_time, rate_per_second, rate_burst"
)


async def insert(
    conn: Conn,
    *,
    key_id: str,
    name: str,
    client_id: str,
    scopes: list[str],
    key_hash: bytes,
    rate: tuple[int, int] | None = None,
) -> ApiKeyRow:
    per_second, burst = rate or (None, None)
    cur = await conn.execute(
        f"""INSERT INTO api_keys (id, name, client_id, scopes, key_hash, rate_per_second,
                                  rate_burst)
            VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}""",
        (key_id, name, client_id, scopes, key_hash, per_second, burst),
    )
    row: ApiKeyRow | None = await cur.fetchone()
    assert row is not None  # INSERT ... RETURNING always returns the row
    return row


async def get(conn: Conn, *, key_id: str) -> ApiKeyRow | None:
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE id = %s", (key_id,))
    row: ApiKeyRow | None = await cur.fetchone()
    return row


async def list_all(conn: Conn) -> list[ApiKeyRow]:
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY create_time, id")
    rows: list[ApiKeyRow] = await cur.fetchall()
    return rows


async def revoke(conn: Conn, *, key_id: str) -> bool:
    """Marks a key revoked and announces it on REVOKED_CHANNEL (at commit); False when no
    live key has that id."""
    cur = await conn.execute(
        """WITH revoked AS (
               UPDATE api_keys SET revoke_time = now()
               WHERE id = %(id)s AND revoke_time IS NULL RETURNING id)
           SELECT pg_notify(%(channel)s, id) FROM revoked""",
        {"id": key_id, "channel": REVOKED_CHANNEL},
    )
    return cur.rowcount == 1


async def set_rate(conn: Conn, *, key_id: str, rate: tuple[int, int] | None) -> bool:
    """Sets a live key's send rate (None: back to the default) and announces the change
    on REVOKED_CHANNEL, which makes every gateway read the key again; False when no live
    key has that id."""
    per_second, burst = rate or (None, None)
    cur = await conn.execute(
        """WITH changed AS (
               UPDATE api_keys SET rate_per_second = %(rate)s, rate_burst = %(burst)s
               WHERE id = %(id)s AND revoke_time IS NULL RETURNING id)
           SELECT pg_notify(%(channel)s, id) FROM changed""",
        {"id": key_id, "rate": per_second, "burst": burst, "channel": REVOKED_CHANNEL},
    )
    return cur.rowcount == 1


async def all_ids(conn: Conn) -> list[str]:
    """Every key's id, revoked ones included (their rows say they are revoked)."""
    cur = await conn.execute("SELECT id FROM api_keys")
    return [row["id"] for row in await cur.fetchall()]
