"""A notification as accepted and read: insert (idempotently), get with its trail, list,
retry records."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from psycopg import sql
from psycopg.types.json import Jsonb

from gateway.store import receipts
from gateway.store.db import Conn
from gateway.store.receipts import ReceiptRecord
from mesh.errors import InvalidArgument


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


@dataclass(frozen=True)
class NewNotification:
    """A notification ready to insert: pending with its first hop, or suppressed."""

    id: UUID
    client_id: str
    request_id: str
    payload_hash: bytes
    correlation_id: str
    user_id: UUID
    channel: int
    route: tuple[int, ...]
    template_code: str
    template_version: int
    language: str
    priority: int
    message_type: int
    metadata: dict[str, Any]
    status: str
    status_reason: str
    job: bytes | None
    # When it is due (scheduled, or held by quiet hours); None: at once.
    send_at: datetime | None = None
    # Trail rows that are no attempts, inserted with it (held, capped).
    marks: tuple[Any, ...] = ()

    @property
    def hop_channel(self) -> int:
        return self.route[0] if self.route else 0

    @property
    def key(self) -> tuple[str, str]:
        """The idempotency key (client_id, request_id)."""
        return (self.client_id, self.request_id)


@dataclass(frozen=True)
class KnownKey:
    """An earlier notification holding an idempotency key."""

    id: UUID
    client_id: str
    request_id: str
    payload_hash: bytes
    status: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.client_id, self.request_id)


@dataclass(frozen=True)
class RetryRecord:
    requested_by: str
    reason: str
    generation: int
    request_time: datetime


@dataclass(frozen=True)
class NotificationRecord:
    """A notification as GetNotification and ListNotifications answer it."""

    id: UUID
    client_id: str
    request_id: str
    user_id: UUID
    channel: int
    route: tuple[int, ...]
    template_code: str
    template_version: int
    language: str
    priority: int
    message_type: int
    metadata: dict[str, Any]
    status: str
    status_reason: str
    delivered_channel: int
    delivered_provider: str
    provider_message_id: str
    create_time: datetime
    update_time: datetime
    deliver_time: datetime | None
    send_at: datetime | None = None
    # The id that ties its log lines, trail and callbacks together.
    correlation_id: str = ""
    attempts: tuple[AttemptRecord, ...] = ()
    retries: tuple[RetryRecord, ...] = ()
    # The providers' receipts about its attempts (see `receipts_of`).
    receipts: tuple[ReceiptRecord, ...] = ()

    def receipts_of(self, attempt_id: UUID) -> list[ReceiptRecord]:
        """The receipts about one attempt, oldest first."""
        return [r for r in self.receipts if r.attempt_id == attempt_id]


_INSERT = """
INSERT INTO notifications (id, client_id, request_id, payload_hash, correlation_id, user_id,
    channel, route, template_code, template_version, language, priority, message_type,
    metadata, status, status_reason, hop_channel, job, send_at, publish_pending, publish_after)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
    now() + make_interval(secs => %s))
ON CONFLICT (client_id, request_id) WHERE request_id <> '' DO NOTHING
RETURNING id"""

_RECORD_COLUMNS = """id, client_id, request_id, user_id, channel, route, template_code,
    template_version, language, priority, message_type, metadata, status, status_reason,
    delivered_channel, delivered_provider, provider_message_id, create_time, update_time,
    deliver_time, send_at, correlation_id"""


def _params(row: NewNotification, grace: float) -> tuple[Any, ...]:
    return (
        row.id,
        row.client_id,
        row.request_id,
        row.payload_hash,
        row.correlation_id,
        row.user_id,
        row.channel,
        list(row.route),
        row.template_code,
        row.template_version,
        row.language,
        row.priority,
        row.message_type,
        Jsonb(row.metadata),
        row.status,
        row.status_reason,
        row.hop_channel,
        row.job,
        row.send_at,
        row.job is not None and row.status == "pending",
        grace,
    )


async def find_keys(conn: Conn, keys: Sequence[tuple[str, str]]) -> list[KnownKey]:
    """The notifications already holding some of these (client_id, request_id) keys."""
    if not keys:
        return []
    cur = await conn.execute(
        """SELECT n.id, n.client_id, n.request_id, n.payload_hash, n.status
           FROM unnest(%s::text[], %s::text[]) AS k (client_id, request_id)
           JOIN notifications n USING (client_id, request_id)
           WHERE n.request_id <> ''""",
        ([c for c, _ in keys], [r for _, r in keys]),
    )
    return [KnownKey(**row) for row in await cur.fetchall()]


async def insert(conn: Conn, rows: Sequence[NewNotification], *, grace: float) -> list[bool]:
    """Inserts the rows, all or none; False for a row whose key a concurrent call took.

    One row is one autocommit statement; several are pipelined in one transaction.
    """
    if not rows:
        return []
    if len(rows) == 1:
        cur = await conn.execute(_INSERT, _params(rows[0], grace))
        return [await cur.fetchone() is not None]
    async with conn.transaction(), conn.cursor() as cur:
        await cur.executemany(_INSERT, [_params(r, grace) for r in rows], returning=True)
        inserted: list[bool] = []
        while True:
            inserted.append(await cur.fetchone() is not None)
            if not cur.nextset():
                break
    return inserted


def _record(row: dict[str, Any]) -> NotificationRecord:
    return NotificationRecord(**{**row, "route": tuple(row["route"])})


async def get(
    conn: Conn, notification_id: UUID, *, client_id: str | None = None
) -> NotificationRecord | None:
    """One notification with its trail and retries; None when it does not exist or, with
    `client_id`, belongs to another client."""
    cur = await conn.execute(
        f"""SELECT {_RECORD_COLUMNS} FROM notifications
            WHERE id = %s AND (%s::text IS NULL OR client_id = %s)""",
        (notification_id, client_id, client_id),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    attempts = await trail(conn, notification_id)
    cur = await conn.execute(
        """SELECT requested_by, reason, generation, request_time FROM retries
           WHERE notification_id = %s ORDER BY generation""",
        (notification_id,),
    )
    retries = [RetryRecord(**r) for r in await cur.fetchall()]
    kept = await receipts.for_notification(conn, notification_id)
    return dataclasses.replace(
        _record(row), attempts=tuple(attempts), retries=tuple(retries), receipts=tuple(kept)
    )


async def get_many(
    conn: Conn, notification_ids: Sequence[UUID], *, client_id: str
) -> list[NotificationRecord]:
    """Those of these notifications that are the client's, without their trails, least
    recently updated first."""
    cur = await conn.execute(
        f"""SELECT {_RECORD_COLUMNS} FROM notifications
            WHERE id = ANY(%s) AND client_id = %s ORDER BY update_time, id""",
        (list(notification_ids), client_id),
    )
    return [_record(row) for row in await cur.fetchall()]


class Paged(Protocol):
    """A row of a list paged newest first."""

    @property
    def create_time(self) -> datetime: ...

    @property
    def id(self) -> UUID: ...


def encode_page_token(record: Paged) -> str:
    raw = f"{record.create_time.isoformat()}|{record.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str) -> tuple[datetime, UUID]:
    """The (create_time, id) a page token continues after; INVALID_ARGUMENT if forged."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        time_text, _, id_text = raw.partition("|")
        return datetime.fromisoformat(time_text), UUID(id_text)
    except ValueError:
        raise InvalidArgument.field("page_token", "not a token this service issued") from None


@dataclass(frozen=True, kw_only=True)
class ListFilter:
    """What a list keeps (every field optional): the owner, the user, the status, the
    requested channel, the message type (herald.v1 numbers), the template, creation time."""

    client_id: str | None = None
    user_id: UUID | None = None
    status: str | None = None
    channel: int | None = None
    message_type: int | None = None
    template_code: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None

    def conditions(self) -> tuple[list[sql.Composable], list[Any]]:
        """The WHERE terms and their parameters."""
        where: list[sql.Composable] = []
        params: list[Any] = []
        for column, value in (
            ("client_id", self.client_id),
            ("user_id", self.user_id),
            ("status", self.status),
            ("channel", self.channel),
            ("message_type", self.message_type),
            ("template_code", self.template_code),
        ):
            if value is not None:
                where.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
                params.append(value)
        if self.start_time is not None:
            where.append(sql.SQL("create_time >= %s"))
            params.append(self.start_time)
        if self.end_time is not None:
            where.append(sql.SQL("create_time < %s"))
            params.append(self.end_time)
        return where, params


def _where(where: list[sql.Composable]) -> sql.Composable:
    return sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL("")


async def list_page(
    conn: Conn,
    *,
    kept: ListFilter,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[NotificationRecord]:
    """Up to `limit` notifications that `kept` keeps, newest first, after the page cursor
    (keyset paging: each page is an index range scan, however deep)."""
    where, params = kept.conditions()
    if after is not None:
        where.append(sql.SQL("(create_time, id) < (%s, %s)"))
        params.extend(after)
    query = sql.SQL("SELECT {} FROM notifications {} ORDER BY create_time DESC, id DESC LIMIT %s")
    cur = await conn.execute(
        query.format(sql.SQL(_RECORD_COLUMNS), _where(where)), [*params, limit]
    )
    return [_record(row) for row in await cur.fetchall()]


async def count_up_to(conn: Conn, *, kept: ListFilter, limit: int) -> int:
    """How many notifications `kept` keeps, counted up to `limit` (a bound, not a scan)."""
    where, params = kept.conditions()
    query = sql.SQL("SELECT count(*) AS n FROM (SELECT 1 FROM notifications {} LIMIT %s) AS kept")
    cur = await conn.execute(query.format(_where(where)), [*params, limit])
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def ids_of(conn: Conn, *, kept: ListFilter, limit: int) -> list[UUID]:
    """The ids of up to `limit` notifications `kept` keeps, newest first."""
    where, params = kept.conditions()
    query = sql.SQL("SELECT id FROM notifications {} ORDER BY create_time DESC, id DESC LIMIT %s")
    cur = await conn.execute(query.format(_where(where)), [*params, limit])
    return [row["id"] for row in await cur.fetchall()]


async def job_of(conn: Conn, notification_id: UUID, *, client_id: str | None) -> bytes | None:
    """The stored delivery job of the notification's current hop (recipient and rendered
    content as accepted), if it is `client_id`'s (None: any client's)."""
    cur = await conn.execute(
        """SELECT job FROM notifications
           WHERE id = %s AND (%s::text IS NULL OR client_id = %s)""",
        (notification_id, client_id, client_id),
    )
    row = await cur.fetchone()
    return bytes(row["job"]) if row and row["job"] is not None else None


async def record_retry(
    conn: Conn, notification_id: UUID, *, generation: int, requested_by: str, reason: str
) -> None:
    await conn.execute(
        """INSERT INTO retries (notification_id, generation, requested_by, reason)
           VALUES (%s, %s, %s, %s)""",
        (notification_id, generation, requested_by, reason),
    )
