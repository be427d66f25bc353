"""SQL of StatusService: claims (leases on hops), final states, status reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from gateway.store import AttemptRecord, Conn


@dataclass(frozen=True)
class ClaimRow:
    worker: str
    previous_worker: str | None
    lease_until: datetime
    done: bool


@dataclass(frozen=True)
class StatusRow:
    id: UUID
    status: str
    status_reason: str
    delivered_channel: int
    delivered_provider: str
    update_time: datetime


_KEY = "notification_id = %s AND generation = %s AND channel = %s AND attempt = %s"


# How an INSERT of a claim takes the hop when a claim row is already there: only when that
# claim is not done and its lease expired or is this worker's (renewed).
_TAKE = """
           ON CONFLICT (notification_id, generation, channel, attempt) DO UPDATE
           SET worker = EXCLUDED.worker, lease_until = EXCLUDED.lease_until,
               previous_worker = claims.worker, claim_time = now()
           WHERE NOT claims.done
             AND (claims.lease_until <= now() OR claims.worker = EXCLUDED.worker)
           RETURNING worker, previous_worker, lease_until, done"""


async def find_claim(
    conn: Conn, notification_id: UUID, generation: int, channel: int, attempt: int
) -> ClaimRow | None:
    cur = await conn.execute(
        f"SELECT worker, previous_worker, lease_until, done FROM claims WHERE {_KEY}",
        (notification_id, generation, channel, attempt),
    )
    row = await cur.fetchone()
    return ClaimRow(**row) if row else None


async def try_claim(
    conn: Conn,
    notification_id: UUID,
    generation: int,
    channel: int,
    attempt: int,
    *,
    worker: str,
    lease_seconds: float,
) -> ClaimRow | None:
    """Takes the hop: new, expired, or already this worker's; None when someone else's
    live lease holds it or it is done. Atomic: the row's conflict check does it all."""
    cur = await conn.execute(
        """INSERT INTO claims (notification_id, generation, channel, attempt, worker,
                               lease_until)
           VALUES (%s, %s, %s, %s, %s, now() + make_interval(secs => %s))"""
        + _TAKE,
        (notification_id, generation, channel, attempt, worker, lease_seconds),
    )
    row = await cur.fetchone()
    return ClaimRow(**row) if row else None


@dataclass(frozen=True)
class ClaimWanted:
    """One Claim's hop and claimant."""

    notification_id: UUID
    generation: int
    channel: int
    attempt: int
    worker: str
    lease_seconds: float

    @property
    def key(self) -> tuple[UUID, int, int, int]:
        return (self.notification_id, self.generation, self.channel, self.attempt)


async def claim_current(conn: Conn, wanted: Sequence[ClaimWanted]) -> list[ClaimRow | None]:
    """`try_claim` for many hops in one statement, each granted only while it is its
    pending notification's current hop (the rows held FOR SHARE meanwhile, in id order, as
    `lock` would); None for a hop that is not, or when `try_claim` would answer None: the
    caller then finds out why. The hops must be distinct."""
    cur = await conn.execute(
        """WITH wanted AS (
               SELECT * FROM unnest(%s::uuid[], %s::integer[], %s::smallint[], %s::integer[],
                                    %s::text[], %s::float8[])
                   AS w (id, generation, channel, attempt, worker, lease)),
           current_hop AS (
               SELECT w.* FROM wanted w JOIN notifications n ON n.id = w.id
               WHERE n.status = 'pending' AND n.generation = w.generation
                 AND n.hop_channel = w.channel AND n.attempt = w.attempt
               ORDER BY n.id
               FOR SHARE OF n)
           INSERT INTO claims (notification_id, generation, channel, attempt, worker,
                               lease_until)
           SELECT id, generation, channel, attempt, worker,
                  now() + make_interval(secs => lease)
           FROM current_hop"""
        + _TAKE
        + ", notification_id, generation, channel, attempt",
        (
            [w.notification_id for w in wanted],
            [w.generation for w in wanted],
            [w.channel for w in wanted],
            [w.attempt for w in wanted],
            [w.worker for w in wanted],
            [float(w.lease_seconds) for w in wanted],
        ),
    )
    granted = {
        (r["notification_id"], r["generation"], r["channel"], r["attempt"]): ClaimRow(
            worker=r["worker"],
            previous_worker=r["previous_worker"],
            lease_until=r["lease_until"],
            done=r["done"],
        )
        for r in await cur.fetchall()
    }
    return [granted.get(w.key) for w in wanted]


def _close_claims(source: str, hop: str) -> str:
    """SQL marking done the claims of the hops `source` yields (`hop`: its notification id,
    generation, channel and attempt), claimed or not: a closed hop is nobody's to take."""
    return f"""
               INSERT INTO claims (notification_id, generation, channel, attempt, worker,
                                   lease_until, done)
               SELECT {hop}, '', now(), true
               FROM {source}
               ON CONFLICT (notification_id, generation, channel, attempt) DO UPDATE
               SET done = true"""


_CLOSE_CLAIM = _close_claims(
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


_CLOSED_BY_DELIVERY = _close_claims(
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
    dead_letter: bytes | None = None,
    grace: float = 0.0,
) -> int:
    """Moves the notification to a final status; returns its hop number.

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
