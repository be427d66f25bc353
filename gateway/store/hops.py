"""A notification's hops as the lifecycle moves them: the locked state, attempts joining
the trail (closing their hop's claim), the next hop, final states, status reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from gateway.store.claims import close_claims
from gateway.store.db import Conn
from gateway.store.notifications import AttemptRecord


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
    client_id: str

    @property
    def final(self) -> bool:
        return self.status != "pending"


_HOP_COLUMNS = """id, status, status_reason, generation, route, route_index, hop_channel,
                  attempt, hop, job, correlation_id, client_id"""


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
        client_id=row["client_id"],
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
class StatusRow:
    id: UUID
    status: str
    status_reason: str
    delivered_channel: int
    delivered_provider: str
    update_time: datetime


_CLOSE_CLAIM = close_claims(
    "recorded", "notification_id, %(close_generation)s, %(close_channel)s, %(close_attempt)s"
)

_INSERT_ATTEMPT = """
               INSERT INTO delivery_attempts (id, notification_id, channel, provider, outcome,
                   provider_message_id, error, duration_us, start_time, attempt, generation,
                   worker, detail)
               SELECT %(id)s, %(notification_id)s, %(channel)s, %(provider)s, %(outcome)s,
                      %(provider_message_id)s, %(error)s, %(duration_us)s, %(start_time)s,
                      %(attempt)s, %(generation)s, %(worker)s, %(detail)s"""


async def record_attempt(
    conn: Conn, attempt: AttemptRecord, *, close: tuple[int, int, int] | None
) -> bool:
    """Appends the attempt to the trail and, with `close` (generation, channel, attempt),
    marks that hop's claim done, claimed or not: one statement. False, writing nothing,
    when this attempt id is already in the trail."""
    closing = f", closed AS ({_CLOSE_CLAIM})" if close is not None else ""
    generation, channel, number = close or (0, 0, 0)
    cur = await conn.execute(
        f"""WITH recorded AS ({_INSERT_ATTEMPT}
               ON CONFLICT (id) DO NOTHING
               RETURNING notification_id){closing}
           SELECT count(*) AS inserted FROM recorded""",
        {
            **vars(attempt),
            "close_generation": generation,
            "close_channel": channel,
            "close_attempt": number,
        },
    )
    row = await cur.fetchone()
    return bool(row and row["inserted"])


@dataclass(frozen=True)
class Delivery:
    """A DELIVERED report: its trail row, the hop it closes, when the provider took it."""

    attempt: AttemptRecord
    close: tuple[int, int, int]  # (generation, channel, attempt)
    deliver_time: datetime


_ATTEMPT_FIELDS = (
    ("id", "uuid"),
    ("notification_id", "uuid"),
    ("channel", "smallint"),
    ("provider", "text"),
    ("outcome", "smallint"),
    ("provider_message_id", "text"),
    ("error", "text"),
    ("duration_us", "bigint"),
    ("start_time", "timestamptz"),
    ("attempt", "integer"),
    ("generation", "integer"),
    ("worker", "text"),
    ("detail", "text"),
)


_CLOSED_BY_DELIVERY = close_claims(
    "reported r JOIN recorded USING (id)",
    "r.notification_id, r.close_generation, r.close_channel, r.close_attempt",
)


async def record_deliveries(conn: Conn, deliveries: Sequence[Delivery]) -> list[str | None]:
    """DELIVERED for many notifications in one statement, as `lock` + `record_attempt` +
    `finish` do it for one: while a notification is pending (its row held FOR UPDATE
    meanwhile, rows locked in id order), its attempt joins the trail, the `close` hop's
    claim is marked done and the notification becomes delivered by the attempt. Answers
    each notification's correlation id; None, writing nothing for it, when it is not
    pending or its attempt id is already in the trail (the caller then takes the long way,
    which says which). The notifications, and the attempt ids, must be distinct."""
    names = ", ".join(name for name, _ in _ATTEMPT_FIELDS)
    arrays = ", ".join(f"%s::{kind}[]" for _, kind in _ATTEMPT_FIELDS)
    cur = await conn.execute(
        f"""WITH reported AS (
               SELECT * FROM unnest({arrays}, %s::integer[], %s::smallint[], %s::integer[],
                                    %s::timestamptz[])
                   AS r ({names}, close_generation, close_channel, close_attempt,
                         deliver_time)),
           target AS (
               SELECT id, correlation_id FROM notifications
               WHERE id IN (SELECT notification_id FROM reported) AND status = 'pending'
               ORDER BY id
               FOR UPDATE),
           recorded AS (
               INSERT INTO delivery_attempts ({names})
               SELECT {", ".join("r." + name for name, _ in _ATTEMPT_FIELDS)}
               FROM reported r JOIN target t ON t.id = r.notification_id
               ON CONFLICT (id) DO NOTHING
               RETURNING id, notification_id),
           closed AS ({_CLOSED_BY_DELIVERY}),
           moved AS (
               UPDATE notifications n
               SET status = 'delivered', status_reason = '',
                   delivered_channel = r.channel, delivered_provider = r.provider,
                   provider_message_id = r.provider_message_id,
                   deliver_time = r.deliver_time, update_time = now(),
                   publish_pending = false
               FROM reported r JOIN recorded USING (id)
               WHERE n.id = r.notification_id)
           SELECT recorded.notification_id, t.correlation_id
           FROM recorded JOIN target t ON t.id = recorded.notification_id""",
        (
            *([getattr(d.attempt, name) for d in deliveries] for name, _ in _ATTEMPT_FIELDS),
            [d.close[0] for d in deliveries],
            [d.close[1] for d in deliveries],
            [d.close[2] for d in deliveries],
            [d.deliver_time for d in deliveries],
        ),
    )
    moved = {r["notification_id"]: str(r["correlation_id"]) for r in await cur.fetchall()}
    return [moved.get(d.attempt.notification_id) for d in deliveries]


async def attempt_recorded(conn: Conn, attempt_id: UUID) -> bool:
    cur = await conn.execute("SELECT 1 FROM delivery_attempts WHERE id = %s", (attempt_id,))
    return await cur.fetchone() is not None


async def finish(
    conn: Conn,
    notification_id: UUID,
    *,
    status: str,
    reason: str,
    delivered_channel: int = 0,
    delivered_provider: str = "",
    provider_message_id: str = "",
    deliver_time: datetime | None = None,
    sent_time: datetime | None = None,
    dead_letter: bytes | None = None,
    grace: float = 0.0,
) -> int:
    """Moves the notification to a final status (or `sent`, with `sent_time`); returns its
    hop number.

    An unpublished hop is no longer due. With `dead_letter` (a failed notification's last
    job) that job becomes the due hop instead, for the outbox to put on failed.queue in the
    same durable way as any hop: the dead letter survives a crash of the reporter.
    """
    outbox = (
        # The failed job becomes the due hop, published to failed.queue (see outbox.py).
        """, hop = hop + 1, job = %(dead)s, publish_pending = true,
             publish_after = now() + make_interval(secs => %(grace)s),
             deliver_after = NULL, published_at = NULL"""
        if dead_letter is not None
        else ", publish_pending = false"
    )
    cur = await conn.execute(
        f"""UPDATE notifications
            SET status = %(status)s, status_reason = %(reason)s,
                delivered_channel = %(channel)s, delivered_provider = %(provider)s,
                provider_message_id = %(message_id)s, deliver_time = %(deliver_time)s,
                sent_time = CASE WHEN %(status)s = 'sent' THEN %(sent_time)s ELSE sent_time END,
                update_time = now() {outbox}
            WHERE id = %(id)s
            RETURNING hop""",
        {
            "status": status,
            "reason": reason,
            "channel": delivered_channel,
            "provider": delivered_provider,
            "message_id": provider_message_id,
            "deliver_time": deliver_time,
            "sent_time": sent_time,
            "dead": dead_letter,
            "grace": grace,
            "id": notification_id,
        },
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row["hop"])


async def read_status(conn: Conn, notification_id: UUID) -> StatusRow | None:
    cur = await conn.execute(
        """SELECT id, status, status_reason, delivered_channel, delivered_provider, update_time
           FROM notifications WHERE id = %s""",
        (notification_id,),
    )
    row = await cur.fetchone()
    return StatusRow(**row) if row else None


NO_RECEIPT = "no receipt within the receipt window: taken as delivered"


async def settle_unreceipted(conn: Conn, *, sent_before: datetime) -> int:
    """`sent` notifications no receipt settled since `sent_before` become delivered."""
    cur = await conn.execute(
        """UPDATE notifications
           SET status = 'delivered', status_reason = %s, deliver_time = sent_time,
               update_time = now()
           WHERE status = 'sent' AND sent_time < %s""",
        (NO_RECEIPT, sent_before),
    )
    return cur.rowcount
