"""SQL of the `users` database. Callers own transactions; every change locks the user row
first (then its push targets), so concurrent changes of one user queue up, never deadlock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, cast
from uuid import UUID, uuid4

from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool

from userd.models import NewPushTarget, NewUser, Page, Platform, Preferences, PushTarget, User

Conn = AsyncConnection[dict[str, Any]]

EMAIL_CONSTRAINT = "users_email_key"
UPDATABLE_COLUMNS = frozenset(
    {
        "name",
        "email",
        "phone",
        "locale",
        "time_zone",
        "pref_email",
        "pref_sms",
        "pref_push",
        "password_hash",
        "quiet_start",
        "quiet_end",
    }
)
_USER_COLUMNS = sql.SQL(
    "id, name, email, phone, locale, time_zone, pref_email, pref_sms, pref_push, version,"
    " create_time, update_time, quiet_start, quiet_end"
)
_TARGET_COLUMNS = sql.SQL("id, user_id, platform, address, p256dh, auth, label, create_time")


@asynccontextmanager
async def connect(pool: AsyncConnectionPool) -> AsyncIterator[Conn]:
    """A pooled connection; its rows are dicts (mesh.db opens pools with dict_row)."""
    async with pool.connection() as conn:
        yield cast(Conn, conn)


def _target(row: dict[str, Any]) -> PushTarget:
    return PushTarget(
        id=row["id"],
        platform=Platform(row["platform"]),
        address=row["address"],
        p256dh=row["p256dh"],
        auth=row["auth"],
        label=row["label"],
        create_time=row["create_time"],
    )


def _user(row: dict[str, Any], targets: Iterable[PushTarget]) -> User:
    return User(
        id=row["id"],
        name=row["name"],
        email=row["email"],
        phone=row["phone"],
        locale=row["locale"],
        time_zone=row["time_zone"],
        preferences=Preferences(row["pref_email"], row["pref_sms"], row["pref_push"]),
        push_targets=tuple(targets),
        version=row["version"],
        create_time=row["create_time"],
        update_time=row["update_time"],
        quiet_hours=(row["quiet_start"], row["quiet_end"])
        if row.get("quiet_start") is not None
        else None,
    )


async def insert_user(conn: Conn, *, user_id: UUID, user: NewUser, password_hash: str) -> None:
    """Raises psycopg.errors.UniqueViolation (constraint EMAIL_CONSTRAINT) for a taken email."""
    await conn.execute(
        """INSERT INTO users (id, name, email, phone, locale, time_zone,
                              pref_email, pref_sms, pref_push, password_hash,
                              quiet_start, quiet_end)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            user_id,
            user.name,
            user.email,
            user.phone,
            user.locale,
            user.time_zone,
            user.preferences.email,
            user.preferences.sms,
            user.preferences.push,
            password_hash,
            user.quiet_hours[0] if user.quiet_hours else None,
            user.quiet_hours[1] if user.quiet_hours else None,
        ),
    )


async def update_user(conn: Conn, *, user_id: UUID, columns: dict[str, object]) -> bool:
    """Sets `columns` (none is fine), bumps the version and locks the row; False if no user."""
    unknown = set(columns) - UPDATABLE_COLUMNS
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    assignments: list[sql.Composable] = [
        sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder()) for column in columns
    ]
    assignments.append(sql.SQL("version = version + 1, update_time = now()"))
    query = sql.SQL("UPDATE users SET {} WHERE id = %s").format(sql.SQL(", ").join(assignments))
    cur = await conn.execute(query, (*columns.values(), user_id))
    return cur.rowcount == 1


async def lock_user(conn: Conn, *, user_id: UUID) -> bool:
    """Locks the user row for this transaction; False if there is no such user."""
    cur = await conn.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (user_id,))
    return await cur.fetchone() is not None


async def delete_user(conn: Conn, *, user_id: UUID) -> bool:
    """Deletes the user and (cascade) its push targets; False if there was none."""
    cur = await conn.execute("DELETE FROM users WHERE id = %s", (user_id,))
    return cur.rowcount == 1


async def _targets_of(conn: Conn, user_ids: Sequence[UUID]) -> dict[UUID, list[PushTarget]]:
    cur = await conn.execute(
        sql.SQL("SELECT {} FROM push_targets WHERE user_id = ANY(%s) ORDER BY seq").format(
            _TARGET_COLUMNS
        ),
        (list(user_ids),),
    )
    found: dict[UUID, list[PushTarget]] = {user_id: [] for user_id in user_ids}
    for row in await cur.fetchall():
        found[row["user_id"]].append(_target(row))
    return found


async def fetch_user(conn: Conn, *, user_id: UUID) -> User | None:
    """The user with its push targets, or None.

    Outside a transaction the two reads see two snapshots; the user row is read first, so
    the version returned is never newer than the push targets (the cache relies on it).
    """
    cur = await conn.execute(
        sql.SQL("SELECT {} FROM users WHERE id = %s").format(_USER_COLUMNS), (user_id,)
    )
    row = await cur.fetchone()
    if row is None:
        return None
    targets = await _targets_of(conn, [user_id])
    return _user(row, targets[user_id])


async def user_id_by_email(conn: Conn, *, email: str) -> UUID | None:
    """The id of the user with this email address, whatever its case (as unique), or None."""
    cur = await conn.execute("SELECT id FROM users WHERE lower(email) = lower(%s)", (email,))
    row = await cur.fetchone()
    return row["id"] if row else None


async def fetch_users(conn: Conn, *, user_ids: Sequence[UUID]) -> list[User]:
    """The users among `user_ids` that exist, with their push targets (two queries)."""
    cur = await conn.execute(
        sql.SQL("SELECT {} FROM users WHERE id = ANY(%s)").format(_USER_COLUMNS),
        (list(user_ids),),
    )
    rows = await cur.fetchall()
    if not rows:
        return []
    targets = await _targets_of(conn, [row["id"] for row in rows])
    return [_user(row, targets[row["id"]]) for row in rows]


async def list_users(conn: Conn, *, page: Page) -> list[User]:
    """Up to `page.size + 1` users after the page's cursor, in (create_time, id) order."""
    after = sql.SQL("WHERE (create_time, id) > (%s, %s)") if page.after else sql.SQL("")
    cur = await conn.execute(
        sql.SQL("SELECT {} FROM users {} ORDER BY create_time, id LIMIT %s").format(
            _USER_COLUMNS, after
        ),
        (*(page.after or ()), page.size + 1),
    )
    rows = await cur.fetchall()
    targets = await _targets_of(conn, [row["id"] for row in rows])
    return [_user(row, targets[row["id"]]) for row in rows]


async def upsert_push_target(conn: Conn, *, user_id: UUID, target: NewPushTarget) -> PushTarget:
    """Adds a device; the same token (or endpoint) again updates it and keeps its id."""
    cur = await conn.execute(
        sql.SQL(
            """INSERT INTO push_targets (id, user_id, platform, address, p256dh, auth, label)
               VALUES (%s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (user_id, address) DO UPDATE
               SET platform = EXCLUDED.platform, p256dh = EXCLUDED.p256dh,
                   auth = EXCLUDED.auth, label = EXCLUDED.label
               RETURNING {}"""
        ).format(_TARGET_COLUMNS),
        (
            uuid4(),
            user_id,
            target.platform.value,
            target.address,
            target.p256dh,
            target.auth,
            target.label,
        ),
    )
    row = await cur.fetchone()
    assert row is not None
    return _target(row)


async def replace_push_targets(
    conn: Conn, *, user_id: UUID, targets: Sequence[NewPushTarget]
) -> None:
    """Makes `targets` the user's whole set; devices kept keep their ids."""
    await conn.execute(
        "DELETE FROM push_targets WHERE user_id = %s AND NOT (address = ANY(%s))",
        (user_id, [t.address for t in targets]),
    )
    for target in targets:
        await upsert_push_target(conn, user_id=user_id, target=target)


async def count_other_push_targets(conn: Conn, *, user_id: UUID, address: str) -> int:
    """How many devices the user has besides the one at `address`."""
    cur = await conn.execute(
        "SELECT count(*) AS n FROM push_targets WHERE user_id = %s AND address <> %s",
        (user_id, address),
    )
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def remove_push_target(
    conn: Conn, *, user_id: UUID, target_id: UUID | None, address: str | None
) -> bool:
    """Removes the device with that id or token/endpoint; False when none matched."""
    cur = await conn.execute(
        """DELETE FROM push_targets
           WHERE user_id = %s AND (id = %s OR address = %s)""",
        (user_id, target_id, address),
    )
    return cur.rowcount > 0


async def mark_cache_repair(conn: Conn, *, user_id: UUID) -> None:
    """Records that the cached entry of this user may be stale."""
    await conn.execute(
        """INSERT INTO cache_repairs (user_id) VALUES (%s)
           ON CONFLICT (user_id) DO UPDATE SET marked_at = clock_timestamp()""",
        (user_id,),
    )


async def cache_repairs(conn: Conn, *, limit: int) -> list[tuple[UUID, datetime]]:
    """Users whose cache entry must be refreshed, oldest first."""
    cur = await conn.execute(
        "SELECT user_id, marked_at FROM cache_repairs ORDER BY marked_at LIMIT %s", (limit,)
    )
    return [(row["user_id"], row["marked_at"]) for row in await cur.fetchall()]


async def clear_cache_repair(conn: Conn, *, user_id: UUID, marked_at: datetime) -> None:
    """Forgets a repair done, unless the user was marked again since `marked_at`."""
    await conn.execute(
        "DELETE FROM cache_repairs WHERE user_id = %s AND marked_at = %s", (user_id, marked_at)
    )
