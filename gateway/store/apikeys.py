"""SQL for the `api_keys` table (gateway's `notifications` database)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

from psycopg import AsyncConnection

# Each revocation is announced here (payload: the key id), at commit, to every gateway.
REVOKED_CHANNEL = "herald_api_keys_revoked"


class ApiKeyRow(TypedDict):
    id: str
    name: str
    client_id: str
    scopes: list[str]
    key_hash: bytes
    create_time: datetime
    revoke_time: datetime | None


Conn = AsyncConnection[Any]

_COLUMNS = "id, name, client_id, scopes, key_hash, create_time, revoke_time"


async def insert(
    conn: Conn, *, key_id: str, name: str, client_id: str, scopes: list[str], key_hash: bytes
) -> ApiKeyRow:
    cur = await conn.execute(
        f"""INSERT INTO api_keys (id, name, client_id, scopes, key_hash)
            VALUES (%s, %s, %s, %s, %s) RETURNING {_COLUMNS}""",
        (key_id, name, client_id, scopes, key_hash),
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


async def all_ids(conn: Conn) -> list[str]:
    """Every key's id, revoked ones included (their rows say they are revoked)."""
    cur = await conn.execute("SELECT id FROM api_keys")
    return [row["id"] for row in await cur.fetchall()]
