"""SQL for the `suppressions` table (see migration 013)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from gateway.store.db import Conn


def normalized(channel_name: str, contact: str) -> str:
    """The form a contact point is kept and looked up in: emails lower-cased."""
    contact = contact.strip()
    return contact.lower() if channel_name == "email" else contact


@dataclass(frozen=True)
class Suppression:
    id: UUID
    channel: int
    contact: str
    reason: str
    detail: str
    provider: str
    receipt_id: UUID | None
    notification_id: UUID | None
    create_time: datetime
    remove_time: datetime | None
    removed_by: str
    remove_reason: str


_COLUMNS = """id, channel, contact, reason, detail, provider, receipt_id, notification_id,
              create_time, remove_time, removed_by, remove_reason"""


async def add(
    conn: Conn,
    *,
    channel: int,
    contact: str,
    reason: str,
    detail: str,
    provider: str,
    receipt_id: UUID | None,
    notification_id: UUID | None,
) -> bool:
    """Suppresses a contact point; False when it already is."""
    cur = await conn.execute(
        """INSERT INTO suppressions (id, channel, contact, reason, detail, provider,
               receipt_id, notification_id)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (channel, contact) WHERE remove_time IS NULL DO NOTHING
           RETURNING id""",
        (
            uuid.uuid4(),
            channel,
            contact,
            reason,
            detail[:2000],
            provider,
            receipt_id,
            notification_id,
        ),
    )
    return await cur.fetchone() is not None


async def active(conn: Conn, wanted: Sequence[tuple[int, str]]) -> dict[tuple[int, str], str]:
    """Of these (channel, contact) pairs, the suppressed ones and why, in one query."""
    if not wanted:
        return {}
    cur = await conn.execute(
        """SELECT s.channel, s.contact, s.reason, s.detail FROM suppressions s
           JOIN unnest(%s::smallint[], %s::text[]) AS w (channel, contact)
             ON s.channel = w.channel AND s.contact = w.contact
           WHERE s.remove_time IS NULL""",
        ([c for c, _ in wanted], [t for _, t in wanted]),
    )
    return {
        (row["channel"], row["contact"]): f"{row['reason']}: {row['detail']}".rstrip(": ")
        for row in await cur.fetchall()
    }


async def page(
    conn: Conn,
    *,
    channel: int | None,
    contact: str | None,
    include_removed: bool,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[Suppression]:
    """Newest first, filtered by channel and contact."""
    cur = await conn.execute(
        f"""SELECT {_COLUMNS} FROM suppressions
            WHERE (%(channel)s::smallint IS NULL OR channel = %(channel)s)
              AND (%(contact)s::text IS NULL OR contact = %(contact)s)
              AND (%(removed)s OR remove_time IS NULL)
              AND (%(after_time)s::timestamptz IS NULL
                   OR (create_time, id) < (%(after_time)s, %(after_id)s::uuid))
            ORDER BY create_time DESC, id DESC LIMIT %(limit)s""",
        {
            "channel": channel,
            "contact": contact,
            "removed": include_removed,
            "after_time": after[0] if after else None,
            "after_id": after[1] if after else None,
            "limit": limit,
        },
    )
    return [Suppression(**row) for row in await cur.fetchall()]


async def get(conn: Conn, suppression_id: UUID) -> Suppression | None:
    """One entry, active or lifted; None when there is none with that id."""
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM suppressions WHERE id = %s", (suppression_id,)
    )
    row = await cur.fetchone()
    return Suppression(**row) if row else None


async def remove(
    conn: Conn, suppression_id: UUID, *, removed_by: str, reason: str
) -> Suppression | None:
    """Lifts an active suppression, recording who and why; None when there is none."""
    cur = await conn.execute(
        f"""UPDATE suppressions SET remove_time = now(), removed_by = %s, remove_reason = %s
            WHERE id = %s AND remove_time IS NULL RETURNING {_COLUMNS}""",
        (removed_by[:200], reason[:2000], suppression_id),
    )
    row = await cur.fetchone()
    return Suppression(**row) if row else None
