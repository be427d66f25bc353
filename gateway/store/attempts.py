"""SQL over the delivery trail as a whole (not one notification's): providers' sends,
failures and latency per time bucket, their last errors, what the sandbox "sent"."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from gateway.store.db import Conn
from gateway.wire import OUTCOME_NUMBERS

FAILED_OUTCOMES = [OUTCOME_NUMBERS["transient"], OUTCOME_NUMBERS["permanent"]]
# A worker's own attempts; an external reporter's word (REPORTED) is nobody's send.
SENT_OUTCOMES = [OUTCOME_NUMBERS["delivered"], *FAILED_OUTCOMES]


@dataclass(frozen=True)
class Bucket:
    """One provider's attempts that started in one time bucket."""

    provider: str
    # None: the provider's whole window (every bucket together).
    start: datetime | None
    sends: int
    failures: int
    # Mean and 95th percentile of how long the provider took, in milliseconds.
    mean_ms: float
    p95_ms: float


async def buckets(conn: Conn, *, since: datetime, seconds: int) -> list[Bucket]:
    """Per provider and per `seconds`-wide bucket since `since`: sends, failures, latency;
    and per provider over the whole window (`start` None)."""
    cur = await conn.execute(
        """SELECT provider,
                  date_bin(make_interval(secs => %(seconds)s), start_time,
                           TIMESTAMPTZ '2000-01-01') AS start,
                  count(*) AS sends,
                  count(*) FILTER (WHERE outcome = ANY(%(failed)s)) AS failures,
                  avg(duration_us) / 1000.0 AS mean_ms,
                  percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_us) / 1000.0 AS p95_ms
           FROM delivery_attempts
           WHERE start_time >= %(since)s AND provider <> '' AND outcome = ANY(%(sent)s)
           GROUP BY GROUPING SETS ((1, 2), (1)) ORDER BY 1, 2""",
        {"seconds": seconds, "since": since, "failed": FAILED_OUTCOMES, "sent": SENT_OUTCOMES},
    )
    return [
        Bucket(
            provider=row["provider"],
            start=row["start"],
            sends=row["sends"],
            failures=row["failures"],
            mean_ms=float(row["mean_ms"] or 0),
            p95_ms=float(row["p95_ms"] or 0),
        )
        for row in await cur.fetchall()
    ]


@dataclass(frozen=True)
class Failure:
    provider: str
    notification_id: UUID
    channel: int
    error: str
    start_time: datetime


async def last_errors(conn: Conn, *, since: datetime, limit: int) -> list[Failure]:
    """The newest `limit` failed attempts since `since`, every provider's, newest first."""
    cur = await conn.execute(
        """SELECT provider, notification_id, channel, error, start_time
           FROM delivery_attempts
           WHERE start_time >= %s AND provider <> '' AND outcome = ANY(%s)
           ORDER BY start_time DESC LIMIT %s""",
        (since, FAILED_OUTCOMES, limit),
    )
    return [Failure(**row) for row in await cur.fetchall()]


@dataclass(frozen=True)
class SandboxSend:
    """An attempt the sandbox provider took, with its notification's stored job."""

    attempt_id: UUID
    notification_id: UUID
    channel: int
    start_time: datetime
    detail: str
    template_code: str
    job: bytes | None


async def sandbox_sends(
    conn: Conn, *, client_id: str | None, before: datetime | None, limit: int
) -> list[SandboxSend]:
    """What the sandbox provider took, newest first (of `client_id`'s notifications; None:
    every client's), started before `before`."""
    cur = await conn.execute(
        """SELECT a.id AS attempt_id, a.notification_id, a.channel, a.start_time, a.detail,
                  n.template_code, n.job
           FROM delivery_attempts a JOIN notifications n ON n.id = a.notification_id
           WHERE a.provider = 'sandbox' AND a.outcome = %s
             AND (%s::timestamptz IS NULL OR a.start_time < %s)
             AND (%s::text IS NULL OR n.client_id = %s)
           ORDER BY a.start_time DESC LIMIT %s""",
        (OUTCOME_NUMBERS["delivered"], before, before, client_id, client_id, limit),
    )
    rows: list[dict[str, Any]] = await cur.fetchall()
    return [
        SandboxSend(**{**row, "job": bytes(row["job"]) if row["job"] else None}) for row in rows
    ]
