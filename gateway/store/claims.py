"""Claims: a worker's lease on one hop, taken atomically, and closed once the hop's
outcome is recorded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from gateway.store.db import Conn


@dataclass(frozen=True)
class ClaimRow:
    worker: str
    previous_worker: str | None
    lease_until: datetime
    done: bool


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


def close_claims(source: str, hop: str) -> str:
    """SQL marking done the claims of the hops `source` yields (`hop`: its notification id,
    generation, channel and attempt), claimed or not: a closed hop is nobody's to take."""
    return f"""
               INSERT INTO claims (notification_id, generation, channel, attempt, worker,
                                   lease_until, done)
               SELECT {hop}, '', now(), true
               FROM {source}
               ON CONFLICT (notification_id, generation, channel, attempt) DO UPDATE
               SET done = true"""
