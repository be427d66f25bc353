"""The `status_watches` rows behind gRPC's watches (migration 014), and the statuses
the watches check.

A row makes the status trigger NOTIFY `herald_status` for its notification (or, with
no notification, for every notification of its client); it lives until its
`expire_time`, which the gateway holding it renews while the stream is open.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from uuid import UUID

from gateway.store.db import Conn

CHANNEL = "herald_status"


def parse_payload(payload: str) -> tuple[UUID, str] | None:
    """The (notification id, client id) a NOTIFY on CHANNEL names; None if malformed."""
    notification_id, _, client_id = payload.partition(" ")
    try:
        return UUID(notification_id), client_id
    except ValueError:
        return None


async def watch_notification(
    conn: Conn, watch_id: UUID, notification_id: UUID, *, owner: str | None, lease: timedelta
) -> str | None:
    """Registers a watch of one notification; returns its client, or None when it does
    not exist or (with `owner`) is another client's.

    FOR SHARE waits for a status change in flight, one whose trigger looked for watches
    before this row existed, so that a read after this returns sees it: none is missed.
    """
    cur = await conn.execute(
        """INSERT INTO status_watches (id, client_id, notification_id, expire_time)
           SELECT %s, client_id, id, now() + %s FROM notifications
           WHERE id = %s AND (%s::text IS NULL OR client_id = %s)
           FOR SHARE
           RETURNING client_id""",
        (watch_id, lease, notification_id, owner, owner),
    )
    row = await cur.fetchone()
    return None if row is None else str(row["client_id"])


async def watch_client(conn: Conn, watch_id: UUID, client_id: str, *, lease: timedelta) -> None:
    """Registers a watch of every notification of a client."""
    await conn.execute(
        """INSERT INTO status_watches (id, client_id, notification_id, expire_time)
           VALUES (%s, %s, NULL, now() + %s)""",
        (watch_id, client_id, lease),
    )


async def unwatch(conn: Conn, watch_id: UUID) -> None:
    await conn.execute("DELETE FROM status_watches WHERE id = %s", (watch_id,))


async def renew(conn: Conn, watch_ids: Sequence[UUID], *, lease: timedelta) -> set[UUID]:
    """Extends the leases of the watches still open here; returns those it found."""
    cur = await conn.execute(
        "UPDATE status_watches SET expire_time = now() + %s WHERE id = ANY(%s) RETURNING id",
        (lease, list(watch_ids)),
    )
    return {row["id"] for row in await cur.fetchall()}


async def sweep(conn: Conn) -> int:
    """Removes the watches whose lease ran out (their gateway died); returns how many."""
    cur = await conn.execute("DELETE FROM status_watches WHERE expire_time < now()")
    return cur.rowcount


async def statuses(conn: Conn, notification_ids: Sequence[UUID]) -> dict[UUID, str]:
    """The current status of each of these notifications."""
    cur = await conn.execute(
        "SELECT id, status FROM notifications WHERE id = ANY(%s)", (list(notification_ids),)
    )
    return {row["id"]: row["status"] for row in await cur.fetchall()}
