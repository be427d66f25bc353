"""SQL for the console's sessions (`console_sessions`, migration 016)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.store.apikeys import ApiKeyRow
from gateway.store.db import Conn


@dataclass(frozen=True)
class SessionRow:
    csrf_token: str
    expire_time: datetime
    key: ApiKeyRow


async def insert(
    conn: Conn, *, token_hash: bytes, key_id: str, csrf_token: str, seconds: int
) -> datetime:
    """Stores a session of `key_id` lasting `seconds`; answers when it expires. Expired
    sessions go at the same time (sign-ins are rare; no sweeper needed)."""
    await conn.execute("DELETE FROM console_sessions WHERE expire_time < now()")
    cur = await conn.execute(
        """INSERT INTO console_sessions (token_hash, key_id, csrf_token, expire_time)
           VALUES (%s, %s, %s, now() + make_interval(secs => %s)) RETURNING expire_time""",
        (token_hash, key_id, csrf_token, seconds),
    )
    row = await cur.fetchone()
    assert row is not None  # INSERT ... RETURNING always returns the row
    expire_time: datetime = row["expire_time"]
    return expire_time


async def live(conn: Conn, *, token_hash: bytes) -> SessionRow | None:
    """The unexpired session with this token, if its key is not revoked."""
    cur = await conn.execute(
        """SELECT s.csrf_token, s.expire_time, k.id, k.name, k.client_id, k.scopes,
                  k.key_hash, k.create_time, k.revoke_time, k.rate_per_second, k.rate_burst
           FROM console_sessions s JOIN api_keys k ON k.id = s.key_id
           WHERE s.token_hash = %s AND s.expire_time > now() AND k.revoke_time IS NULL""",
        (token_hash,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    key = ApiKeyRow(
        id=row["id"],
        name=row["name"],
        client_id=row["client_id"],
        scopes=row["scopes"],
        key_hash=row["key_hash"],
        create_time=row["create_time"],
        revoke_time=row["revoke_time"],
        rate_per_second=row["rate_per_second"],
        rate_burst=row["rate_burst"],
    )
    return SessionRow(csrf_token=row["csrf_token"], expire_time=row["expire_time"], key=key)


async def delete(conn: Conn, *, token_hash: bytes) -> None:
    await conn.execute("DELETE FROM console_sessions WHERE token_hash = %s", (token_hash,))
