"""Scheduled notifications' SQL: releasing the due ones, what waits, and cancelling.

Trail rows written here are no attempts (attempt 0, no provider): the notification was
held, released or cancelled (herald.v1.AttemptOutcome HELD, RELEASED, CANCELLED, CAPPED).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from gateway.store.db import Conn
from gateway.wire import RELEASED

# Where a scheduled notification is announced (migration 017's trigger).
SCHEDULED_CHANNEL = "herald_scheduled"
RELEASE_NOTE = "its time came: released to delivery"


@dataclass(frozen=True)
class Released:
    """A scheduled notification whose time came: now pending, its first hop due."""

    notification_id: UUID
    hop: int
    job: bytes


@dataclass(frozen=True)
class Mark:
    """A trail row that is no attempt: why the notification was held, capped, ..."""

    notification_id: UUID
    channel: int
    outcome: int
    detail: str
    at: datetime
    who: str = ""


async def add_marks(conn: Conn, marks: Sequence[Mark]) -> None:
    """Appends the marks to their notifications' trails (one statement)."""
    if not marks:
        return
    await conn.execute(
        """INSERT INTO delivery_attempts (id, notification_id, channel, outcome, start_time,
                                          attempt, generation, worker, detail)
           SELECT m.id, m.notification_id, m.channel, m.outcome, m.at, 0, 1, m.who, m.detail
           FROM unnest(%s::uuid[], %s::uuid[], %s::smallint[], %s::smallint[],
                       %s::timestamptz[], %s::text[], %s::text[])
               AS m (id, notification_id, channel, outcome, at, who, detail)""",
        (
            [uuid.uuid4() for _ in marks],
            [m.notification_id for m in marks],
            [m.channel for m in marks],
            [m.outcome for m in marks],
            [m.at for m in marks],
            [m.who for m in marks],
            [m.detail for m in marks],
        ),
    )


async def release_due(conn: Conn, *, now: datetime, limit: int, grace: float) -> list[Released]:
    """Up to `limit` scheduled notifications due by `now` (rows another gateway holds are
    skipped: each is released once) become pending, their first hop due for publishing,
    and a RELEASED row joins each trail. Commit before publishing."""
    cur = await conn.execute(
        """WITH due AS (
               SELECT id FROM notifications
               WHERE status = 'scheduled' AND send_at <= %(now)s
               ORDER BY send_at, id
               LIMIT %(limit)s
               FOR UPDATE SKIP LOCKED),
           moved AS (
               UPDATE notifications n
               SET status = 'pending', status_reason = '', publish_pending = true,
                   publish_after = now() + make_interval(secs => %(grace)s),
                   update_time = now()
               FROM due WHERE n.id = due.id
               RETURNING n.id, n.hop, n.job, n.hop_channel, n.generation),
           trail AS (
               INSERT INTO delivery_attempts (id, notification_id, channel, outcome,
                                              start_time, attempt, generation, detail)
               SELECT gen_random_uuid(), id, hop_channel, %(released)s, %(now)s, 0,
                      generation, %(note)s
               FROM moved)
           SELECT id, hop, job FROM moved""",
        {"now": now, "limit": limit, "grace": grace, "released": RELEASED, "note": RELEASE_NOTE},
    )
    return [Released(r["id"], r["hop"], r["job"]) for r in await cur.fetchall()]


@dataclass(frozen=True)
class Waiting:
    """What the scheduler has ahead of it."""

    scheduled: int
    held_by_quiet_hours: int
    next_due: datetime | None


async def waiting(conn: Conn) -> Waiting:
    cur = await conn.execute(
        """SELECT count(*) AS scheduled,
                  count(*) FILTER (WHERE status_reason LIKE 'held by quiet hours%%') AS held,
                  min(send_at) AS next_due
           FROM notifications WHERE status = 'scheduled'"""
    )
    row = await cur.fetchone()
    assert row is not None
    return Waiting(row["scheduled"], row["held"], row["next_due"])


async def next_due(conn: Conn) -> datetime | None:
    """The earliest due time of a scheduled notification."""
    cur = await conn.execute(
        "SELECT min(send_at) AS due FROM notifications WHERE status = 'scheduled'"
    )
    row = await cur.fetchone()
    return row["due"] if row else None


async def any_claim(conn: Conn, notification_id: UUID) -> bool:
    """Whether a worker ever claimed a hop of the notification (read in a statement of
    its own, after the row is locked: it sees every claim committed before the lock)."""
    cur = await conn.execute(
        "SELECT 1 FROM claims WHERE notification_id = %s AND worker <> '' LIMIT 1",
        (notification_id,),
    )
    return await cur.fetchone() is not None


async def mark_cancelled(conn: Conn, notification_id: UUID, *, reason: str) -> None:
    """The notification becomes cancelled; any hop still due for publishing is not."""
    await conn.execute(
        """UPDATE notifications
           SET status = 'cancelled', status_reason = %s, publish_pending = false,
               update_time = now()
           WHERE id = %s""",
        (reason, notification_id),
    )
