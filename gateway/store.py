"""The `notifications` database: connections, outages, and the outbox's SQL.

Both gRPC services of the gateway write the same rows (NotificationService creates them,
StatusService moves them); their own SQL lives in `notifications/store.py` and
`status/store.py`. What they share is here: a transaction helper that turns a database
outage into UNAVAILABLE, and the outbox queries the relay and the publishers use.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from uuid import UUID

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from herald.v1 import common_pb2
from mesh.errors import Unavailable

Conn = AsyncConnection[dict[str, Any]]
# A caller waits this long for a connection before the database counts as unavailable.
ACQUIRE_TIMEOUT = 5.0


@asynccontextmanager
async def connection(pool: AsyncConnectionPool) -> AsyncIterator[Conn]:
    """An autocommit connection (each statement its own transaction); an unreachable
    database raises Unavailable."""
    try:
        async with pool.connection(timeout=ACQUIRE_TIMEOUT) as conn:
            yield cast(Conn, conn)
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise Unavailable("the notifications database is unavailable") from exc


@asynccontextmanager
async def transaction(pool: AsyncConnectionPool) -> AsyncIterator[Conn]:
    """A connection inside a transaction; an unreachable database raises Unavailable."""
    async with connection(pool) as conn, conn.transaction():
        yield conn


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


@dataclass(frozen=True)
class HopState:
    """Where a notification stands, as a state change needs it (row locked)."""

    id: UUID
    status: str
    status_reason: str
    generation: int
    route: tuple[int, ...]
    route_index: int
    hop_channel: int
    attempt: int
    hop: int
    job: bytes | None
    correlation_id: str

    @property
    def final(self) -> bool:
        return self.status != "pending"


_HOP_COLUMNS = """id, status, status_reason, generation, route, route_index, hop_channel,
                  attempt, hop, job, correlation_id"""


def _hop_state(row: dict[str, Any]) -> HopState:
    return HopState(
        id=row["id"],
        status=row["status"],
        status_reason=row["status_reason"],
        generation=row["generation"],
        route=tuple(row["route"]),
        route_index=row["route_index"],
        hop_channel=row["hop_channel"],
        attempt=row["attempt"],
        hop=row["hop"],
        job=row["job"],
        correlation_id=row["correlation_id"],
    )


async def lock(conn: Conn, notification_id: UUID, *, shared: bool = False) -> HopState | None:
    """The notification's hop state, locked until the transaction ends.

    FOR SHARE (claims) lets claims run side by side while keeping state changes, which
    take FOR UPDATE, out until the claim is recorded.
    """
    mode = "FOR SHARE" if shared else "FOR UPDATE"
    cur = await conn.execute(
        f"SELECT {_HOP_COLUMNS} FROM notifications WHERE id = %s {mode}",
        (notification_id,),
    )
    row = await cur.fetchone()
    return _hop_state(row) if row else None


async def set_hop(
    conn: Conn,
    notification_id: UUID,
    *,
    generation: int,
    route_index: int,
    channel: int,
    attempt: int,
    job: bytes,
    status_reason: str,
    deliver_after: datetime | None,
    grace: float,
) -> int:
    """Makes `job` the current hop, pending and due for publishing; returns its hop number."""
    cur = await conn.execute(
        """UPDATE notifications
           SET status = 'pending', status_reason = %s, generation = %s, route_index = %s,
               hop_channel = %s, attempt = %s, hop = hop + 1, job = %s,
               publish_pending = true, publish_after = now() + make_interval(secs => %s),
               deliver_after = %s, published_at = NULL, update_time = now()
           WHERE id = %s
           RETURNING hop""",
        (
            status_reason,
            generation,
            route_index,
            channel,
            attempt,
            job,
            grace,
            deliver_after,
            notification_id,
        ),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row["hop"])


@dataclass(frozen=True)
class AttemptRecord:
    """One row of the delivery trail."""

    id: UUID
    notification_id: UUID
    channel: int
    provider: str
    outcome: int
    provider_message_id: str
    error: str
    duration_us: int
    start_time: datetime
    attempt: int
    generation: int
    worker: str
    detail: str


async def trail(conn: Conn, notification_id: UUID) -> list[AttemptRecord]:
    """Every attempt of a notification, oldest first."""
    cur = await conn.execute(
        """SELECT id, notification_id, channel, provider, outcome, provider_message_id, error,
                  duration_us, start_time, attempt, generation, worker, detail
           FROM delivery_attempts WHERE notification_id = %s
           ORDER BY start_time, record_time, id""",
        (notification_id,),
    )
    return [AttemptRecord(**row) for row in await cur.fetchall()]


# Statuses as stored (text) and as herald.v1.NotificationStatus numbers.
STATUS_NUMBERS: dict[str, int] = {
    "pending": common_pb2.NOTIFICATION_STATUS_PENDING,
    "delivered": common_pb2.NOTIFICATION_STATUS_DELIVERED,
    "failed": common_pb2.NOTIFICATION_STATUS_FAILED,
    "suppressed": common_pb2.NOTIFICATION_STATUS_SUPPRESSED,
}
STATUS_NAMES: dict[int, str] = {number: name for name, number in STATUS_NUMBERS.items()}
