"""The outbox's SQL: hops due for (re)publishing, confirmed marks, postponements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from gateway.store.db import Conn


@dataclass(frozen=True)
class DueHop:
    """A hop the relay has to (re)publish."""

    notification_id: UUID
    hop: int
    job: bytes
    deliver_after: datetime | None
    # The notification failed: the hop goes to failed.queue, not to a channel.
    dead: bool = False


async def take_unpublished(conn: Conn, *, limit: int) -> list[DueHop]:
    """Locks up to `limit` due, unpublished hops (skipping rows another relay holds)."""
    cur = await conn.execute(
        """SELECT id, hop, job, deliver_after, status FROM notifications
           WHERE publish_pending AND publish_after <= now()
           ORDER BY publish_after
           LIMIT %s
           FOR UPDATE SKIP LOCKED""",
        (limit,),
    )
    return [
        DueHop(r["id"], r["hop"], r["job"], r["deliver_after"], dead=r["status"] == "failed")
        for r in await cur.fetchall()
    ]


async def mark_published(conn: Conn, hops: Sequence[tuple[UUID, int]]) -> None:
    """Clears the outbox flag of confirmed hops (a newer hop of the same row stays due)."""
    if not hops:
        return
    # Rows locked in id order, as the batched claim and delivery statements lock theirs:
    # in join order the two deadlocked now and then (seen in make bench).
    await conn.execute(
        """WITH marked AS (
               SELECT n.id FROM notifications n
               JOIN unnest(%s::uuid[], %s::integer[]) AS p (id, hop)
                 ON n.id = p.id AND n.hop = p.hop
               WHERE n.publish_pending
               ORDER BY n.id
               FOR UPDATE OF n)
           UPDATE notifications n
           SET publish_pending = false, published_at = now()
           FROM marked WHERE n.id = marked.id""",
        ([h[0] for h in hops], [h[1] for h in hops]),
    )


async def postpone(conn: Conn, ids: Sequence[UUID], *, seconds: float) -> None:
    """Leaves hops whose publish failed alone for a while."""
    if not ids:
        return
    await conn.execute(
        """UPDATE notifications
           SET publish_after = now() + make_interval(secs => %s)
           WHERE id = ANY(%s) AND publish_pending""",
        (seconds, list(ids)),
    )


async def oldest_due_seconds(conn: Conn) -> float:
    """How long the oldest due, unpublished hop has been waiting past its grace (0: none)."""
    cur = await conn.execute(
        """SELECT coalesce(extract(epoch FROM now() - min(publish_after)), 0) AS lag
           FROM notifications WHERE publish_pending AND publish_after <= now()"""
    )
    row = await cur.fetchone()
    return float(row["lag"]) if row else 0.0
