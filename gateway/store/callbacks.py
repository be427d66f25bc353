"""SQL for status callbacks (migration 014): endpoints and their secrets, the outbox of
events (written by the `herald_status_changed` trigger), and the attempts to post them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

import orjson

from gateway.store.db import Conn


@dataclass(frozen=True)
class Endpoint:
    id: UUID
    client_id: str
    url: str
    events: str
    description: str
    created_by: str
    create_time: datetime
    failing_since: datetime | None
    consecutive_failures: int


@dataclass(frozen=True)
class Event:
    """One status change to post to one endpoint, as the trigger recorded it."""

    id: UUID
    seq: int
    endpoint_id: UUID
    notification_id: UUID
    client_id: str
    request_id: str
    status: str
    previous_status: str
    channel: int
    provider: str
    reason: str
    metadata: dict[str, Any]
    occur_time: datetime
    state: str
    attempts: int
    next_attempt_time: datetime
    last_error: str
    finish_time: datetime | None


@dataclass(frozen=True)
class Due:
    """An event leased to this dispatcher, with where it goes and what signs it."""

    event: Event
    url: str
    secrets: list[str]


@dataclass(frozen=True)
class Attempt:
    event_id: UUID
    url: str
    status_code: int | None
    duration_ms: float
    error: str
    attempt_time: datetime


_ENDPOINT = """id, client_id, url, events, description, created_by, create_time,
               failing_since, consecutive_failures"""
_EVENT = """id, seq, endpoint_id, notification_id, client_id, request_id, status,
            previous_status, channel, provider, reason, metadata, occur_time, state,
            attempts, next_attempt_time, last_error, finish_time"""


async def create_endpoint(
    conn: Conn,
    *,
    client_id: str,
    url: str,
    events: str,
    description: str,
    created_by: str,
    secret: str,
) -> Endpoint:
    cur = await conn.execute(
        f"""INSERT INTO callback_endpoints (id, client_id, url, events, description, created_by)
            VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_ENDPOINT}""",
        (uuid.uuid4(), client_id, url, events, description, created_by[:200]),
    )
    row = await cur.fetchone()
    assert row is not None
    await conn.execute(
        "INSERT INTO callback_secrets (id, endpoint_id, secret) VALUES (%s, %s, %s)",
        (uuid.uuid4(), row["id"], secret),
    )
    return Endpoint(**row)


async def count_endpoints(conn: Conn, client_id: str) -> int:
    cur = await conn.execute(
        """SELECT count(*) AS n FROM callback_endpoints
           WHERE client_id = %s AND delete_time IS NULL""",
        (client_id,),
    )
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def endpoints(conn: Conn, client_id: str | None) -> list[Endpoint]:
    """Live endpoints, oldest first: one client's, or every client's (None)."""
    cur = await conn.execute(
        f"""SELECT {_ENDPOINT} FROM callback_endpoints
            WHERE delete_time IS NULL AND (%(client)s::text IS NULL OR client_id = %(client)s)
            ORDER BY create_time, id""",
        {"client": client_id},
    )
    return [Endpoint(**row) for row in await cur.fetchall()]


async def endpoint(conn: Conn, endpoint_id: UUID, client_id: str | None) -> Endpoint | None:
    """A live endpoint, if it is `client_id`'s (None: anyone's)."""
    cur = await conn.execute(
        f"""SELECT {_ENDPOINT} FROM callback_endpoints
            WHERE id = %(id)s AND delete_time IS NULL
              AND (%(client)s::text IS NULL OR client_id = %(client)s)""",
        {"id": endpoint_id, "client": client_id},
    )
    row = await cur.fetchone()
    return Endpoint(**row) if row else None


async def delete_endpoint(conn: Conn, endpoint_id: UUID) -> int:
    """Deletes an endpoint; its callbacks not yet posted are cancelled (their count)."""
    await conn.execute(
        "UPDATE callback_endpoints SET delete_time = now() WHERE id = %s", (endpoint_id,)
    )
    cur = await conn.execute(
        """UPDATE callback_events SET state = 'cancelled', finish_time = now(),
               last_error = 'endpoint deleted'
           WHERE endpoint_id = %s AND state = 'pending'""",
        (endpoint_id,),
    )
    return cur.rowcount


async def rotate_secret(conn: Conn, endpoint_id: UUID, secret: str, overlap: timedelta) -> None:
    """Adds `secret`; the ones live until now expire after `overlap` (sooner if they
    already expire sooner)."""
    await conn.execute(
        """UPDATE callback_secrets SET expire_time = LEAST(
               COALESCE(expire_time, 'infinity'), now() + %s)
           WHERE endpoint_id = %s""",
        (overlap, endpoint_id),
    )
    await conn.execute(
        "INSERT INTO callback_secrets (id, endpoint_id, secret) VALUES (%s, %s, %s)",
        (uuid.uuid4(), endpoint_id, secret),
    )


async def take_due(
    conn: Conn, *, limit: int, per_endpoint: int, busy: Sequence[UUID], lease: timedelta
) -> list[Due]:
    """Leases up to `limit` events due now: each the earliest pending one of its
    (endpoint, notification), at most `per_endpoint` per endpoint, none of an endpoint
    backing off or in `busy` (holding all it may here). The lease is taken by a
    conditional UPDATE, so two dispatchers never take one event; the same statement
    answers where each goes and its endpoint's live secrets, newest first."""
    cur = await conn.execute(
        f"""WITH candidates AS (
                SELECT id, endpoint_id, url FROM (
                    SELECT e.id, e.endpoint_id, p.url, e.next_attempt_time, e.seq,
                        row_number() OVER (
                            PARTITION BY e.endpoint_id ORDER BY e.next_attempt_time, e.seq) AS n
                    FROM callback_events e
                    JOIN callback_endpoints p ON p.id = e.endpoint_id
                    WHERE e.state = 'pending' AND e.next_attempt_time <= now()
                      AND (e.lease_until IS NULL OR e.lease_until < now())
                      AND p.next_attempt_time <= now() AND p.delete_time IS NULL
                      AND NOT (e.endpoint_id = ANY(%(busy)s::uuid[]))
                      AND NOT EXISTS (
                          SELECT 1 FROM callback_events b
                          WHERE b.endpoint_id = e.endpoint_id
                            AND b.notification_id = e.notification_id
                            AND b.state = 'pending' AND b.seq < e.seq)
                ) ranked
                WHERE n <= %(per_endpoint)s
                ORDER BY next_attempt_time, seq
                LIMIT %(limit)s),
            live AS (
                SELECT endpoint_id, array_agg(secret ORDER BY create_time DESC) AS secrets
                FROM callback_secrets
                WHERE endpoint_id IN (SELECT endpoint_id FROM candidates)
                  AND (expire_time IS NULL OR expire_time > now())
                GROUP BY endpoint_id)
            UPDATE callback_events c SET lease_until = now() + %(lease)s
            FROM candidates JOIN live USING (endpoint_id)
            WHERE c.id = candidates.id AND c.state = 'pending'
              AND (c.lease_until IS NULL OR c.lease_until < now())
            RETURNING {", ".join(f"c.{col.strip()}" for col in _EVENT.split(","))},
                candidates.url, live.secrets""",
        {"busy": list(busy), "per_endpoint": per_endpoint, "limit": limit, "lease": lease},
    )
    taken = []
    for row in await cur.fetchall():
        url, secrets = row.pop("url"), row.pop("secrets")
        taken.append(Due(Event(**row), url, secrets))
    return sorted(taken, key=lambda due: due.event.seq)


class Result(StrEnum):
    """What became of one leased event."""

    DELIVERED = "delivered"  # the receiver took it
    FAILED = "failed"  # never to be posted again
    RETRY = "retry"  # posted and not taken: again after a delay
    RELEASED = "released"  # not posted (its endpoint began to fail): the lease given back


@dataclass(frozen=True)
class Outcome:
    event: Event
    url: str
    result: Result
    status_code: int | None = None
    duration_ms: float = 0.0
    error: str = ""
    delay: timedelta = timedelta(0)


async def record(
    conn: Conn, outcomes: Sequence[Outcome], *, backoff_base: float, backoff_max: float
) -> None:
    """Records a batch of outcomes in one statement whatever its size: the attempts, the
    events' new states, the endpoints that failed (backed off: `backoff_base` doubling
    per consecutive failure, up to `backoff_max` seconds) and those that recovered.

    The batch goes as one JSON array (serialized by orjson, read by
    `jsonb_to_recordset`): one parameter instead of a PostgreSQL array per column, each
    of which psycopg would build element by element in Python."""
    if not outcomes:
        return
    batch = orjson.dumps(
        [
            {
                "id": o.event.id,
                "notification_id": o.event.notification_id,
                "endpoint_id": o.event.endpoint_id,
                "url": o.url,
                "result": o.result.value,
                "status_code": o.status_code,
                "duration_ms": o.duration_ms,
                "error": o.error[:1000],
                "delay": o.delay.total_seconds(),
            }
            for o in outcomes
        ]
    ).decode()
    await conn.execute(
        """WITH o AS (
               SELECT * FROM jsonb_to_recordset(%(batch)s::jsonb) AS o(id uuid,
                   notification_id uuid, endpoint_id uuid, url text, result text,
                   status_code int, duration_ms float8, error text, delay float8)),
           attempts AS (
               INSERT INTO callback_attempts (event_id, notification_id, url, status_code,
                   duration_ms, error)
               SELECT id, notification_id, url, status_code, duration_ms, error
               FROM o WHERE result <> 'released'),
           failing AS (
               UPDATE callback_endpoints SET consecutive_failures = consecutive_failures + 1,
                   failing_since = COALESCE(failing_since, now()),
                   next_attempt_time = now() + make_interval(secs => LEAST(
                       %(base)s * power(2, LEAST(consecutive_failures, 30)), %(max)s))
               WHERE id IN (SELECT endpoint_id FROM o WHERE result = 'retry')),
           recovered AS (
               UPDATE callback_endpoints SET failing_since = NULL, consecutive_failures = 0,
                   next_attempt_time = now()
               WHERE id IN (SELECT endpoint_id FROM o WHERE result = 'delivered')
                 AND id NOT IN (SELECT endpoint_id FROM o WHERE result = 'retry')
                 AND consecutive_failures > 0)
           UPDATE callback_events c SET
               state = CASE WHEN o.result IN ('delivered', 'failed') THEN o.result
                            ELSE 'pending' END,
               attempts = c.attempts + CASE WHEN o.result = 'released' THEN 0 ELSE 1 END,
               next_attempt_time = CASE WHEN o.result = 'retry'
                                        THEN now() + make_interval(secs => o.delay)
                                        ELSE c.next_attempt_time END,
               finish_time = CASE WHEN o.result IN ('delivered', 'failed') THEN now() END,
               last_error = CASE WHEN o.result = 'released' THEN c.last_error
                                 ELSE o.error END,
               lease_until = NULL
           FROM o
           WHERE c.id = o.id AND c.state = 'pending'""",
        {"batch": batch, "base": backoff_base, "max": backoff_max},
    )


async def for_notification(conn: Conn, notification_id: UUID) -> list[Event]:
    cur = await conn.execute(
        f"SELECT {_EVENT} FROM callback_events WHERE notification_id = %s ORDER BY seq",
        (notification_id,),
    )
    return [Event(**row) for row in await cur.fetchall()]


async def attempts_for_notification(conn: Conn, notification_id: UUID) -> list[Attempt]:
    cur = await conn.execute(
        """SELECT event_id, url, status_code, duration_ms, error, attempt_time
           FROM callback_attempts WHERE notification_id = %s ORDER BY attempt_time""",
        (notification_id,),
    )
    return [Attempt(**row) for row in await cur.fetchall()]


@dataclass(frozen=True)
class Backlog:
    pending: int
    failing_endpoints: int
    oldest_failing_seconds: float


async def backlog(conn: Conn) -> Backlog:
    """What the metrics show: callbacks waiting, endpoints failing and for how long."""
    cur = await conn.execute(
        """SELECT (SELECT count(*) FROM callback_events WHERE state = 'pending') AS pending,
                  count(*) AS failing,
                  COALESCE(EXTRACT(EPOCH FROM now() - min(failing_since)), 0) AS oldest
           FROM callback_endpoints WHERE failing_since IS NOT NULL AND delete_time IS NULL"""
    )
    row = await cur.fetchone()
    assert row is not None
    return Backlog(int(row["pending"]), int(row["failing"]), float(row["oldest"]))


async def notification_owner(conn: Conn, notification_id: UUID) -> str | None:
    cur = await conn.execute(
        "SELECT client_id FROM notifications WHERE id = %s", (notification_id,)
    )
    row = await cur.fetchone()
    return str(row["client_id"]) if row else None
