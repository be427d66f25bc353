"""GetNotification, ListNotifications, Retry and Cancel (Send and SendBatch live in
`accept`).

Retry reopens a FAILED notification only: generation + 1, first channel of the route,
attempt 1, a fresh deadline, the same recipient and content (the route is not planned
again: the notification is the one that was accepted). The trail keeps every earlier
attempt; the retry is recorded with who asked and why, and its first hop goes out
through the outbox like a Send's.

Cancel stops a notification that has not gone out: a scheduled one, or a pending one no
worker has claimed. It races the scheduler and the workers' claims, and exactly one wins:
it locks the row (FOR UPDATE), then reads the claims in a statement of its own, which
sees every claim committed before the lock was granted; a claim that comes later waits
for the lock and then finds the notification cancelled (its Claim answers FINAL, and the
worker drops the hop unsent). Who cancelled, and why, join the trail and the reason.

Every call names its `Principal`: reads need notifications:read and see only the
caller's client's notifications (operator:read and admin see every client's); a retry
needs notifications:send and touches only its own client's (admin: any). Another client's
notification is NOT_FOUND, exactly as one that does not exist.
"""

from __future__ import annotations

import builtins
import uuid
from datetime import datetime, timedelta
from typing import Any

import structlog
from psycopg_pool import AsyncConnectionPool

from gateway import jobs, lifecycle, wire
from gateway.apikeys.scopes import Principal, Scope
from gateway.notifications.model import Page
from gateway.outbox import Outbox, Publication
from gateway.store import notifications, scheduling
from gateway.store.db import transaction
from gateway.store.hops import lock, set_hop
from gateway.timing.scheduler import Clock, utc_now
from gateway.wire import CHANNELS_BY_NAME, MESSAGE_TYPES_BY_NAME
from mesh import rules
from mesh.errors import Conflict, InvalidArgument, NotFound
from mesh.logging import bind_correlation_id
from mesh.rules import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

log = structlog.get_logger(__name__)


class Notifications:
    """Reads and manual retries of accepted notifications."""

    def __init__(
        self,
        *,
        pool: AsyncConnectionPool,
        outbox: Outbox,
        deadline_seconds: int,
        clock: Clock = utc_now,
    ) -> None:
        self._pool = pool
        self._outbox = outbox
        self._deadline = timedelta(seconds=deadline_seconds)
        self._clock = clock

    async def get(
        self, *, notification_id: uuid.UUID, principal: Principal
    ) -> notifications.NotificationRecord:
        """One notification with its full delivery trail and retries."""
        principal.require(Scope.NOTIFICATIONS_READ)
        return await self._get(notification_id, principal.reading_owner)

    async def _get(
        self, notification_id: uuid.UUID, owner: str | None
    ) -> notifications.NotificationRecord:
        async with transaction(self._pool) as conn:
            record = await notifications.get(conn, notification_id, client_id=owner)
        if record is None:
            raise not_found(notification_id)
        return record

    async def list(
        self,
        *,
        principal: Principal,
        user_id: uuid.UUID | None = None,
        status: str | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        channel: str | None = None,
        message_type: str | None = None,
        template_code: str | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> Page:
        """Newest first; filters are optional (`status` a name: pending, delivered, ...;
        `channel` the requested one's name, `message_type` a name); page_size 0 means the
        default; `next_page_token` is empty on the last page."""
        principal.require(Scope.NOTIFICATIONS_READ)
        kept = self._filter(
            principal.reading_owner,
            user_id=user_id,
            status=status,
            start_time=start_time,
            end_time=end_time,
            channel=channel,
            message_type=message_type,
            template_code=template_code,
        )
        if page_size < 0:
            raise InvalidArgument.field("page_size", "must not be negative")
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = notifications.decode_page_token(page_token) if page_token else None
        async with transaction(self._pool) as conn:
            rows = await notifications.list_page(conn, kept=kept, after=after, limit=size + 1)
        more = len(rows) > size
        rows = rows[:size]
        return Page(rows, notifications.encode_page_token(rows[-1]) if more else "")

    @staticmethod
    def _filter(
        owner: str | None,
        *,
        user_id: uuid.UUID | None,
        status: str | None,
        start_time: datetime | None,
        end_time: datetime | None,
        channel: str | None,
        message_type: str | None,
        template_code: str | None,
    ) -> notifications.ListFilter:
        """The filter, each value checked (INVALID_ARGUMENT names the first bad one)."""
        if status is not None and status not in lifecycle.STATUSES:
            raise InvalidArgument.field("status", "unknown status")
        if channel is not None and channel not in CHANNELS_BY_NAME:
            raise InvalidArgument.field("channel", "unknown channel")
        if message_type is not None and message_type not in MESSAGE_TYPES_BY_NAME:
            raise InvalidArgument.field("message_type", "unknown message type")
        if template_code is not None and not rules.matches(
            rules.TEMPLATE_CODE, template_code, rules.MAX_TEMPLATE_CODE
        ):
            raise InvalidArgument.field("template_code", "not a template code")
        if start_time and end_time and end_time <= start_time:
            raise InvalidArgument.field("end_time", "must be after start_time")
        return notifications.ListFilter(
            client_id=owner,
            user_id=user_id,
            status=status,
            channel=CHANNELS_BY_NAME[channel] if channel is not None else None,
            message_type=MESSAGE_TYPES_BY_NAME[message_type] if message_type else None,
            template_code=template_code,
            start_time=start_time,
            end_time=end_time,
        )

    async def count_failed(self, *, principal: Principal, limit: int, **filters: Any) -> int:
        """How many failed notifications the caller could retry match `filters` (the
        keywords of `list` but status), counted up to `limit`."""
        principal.require(Scope.NOTIFICATIONS_SEND)
        kept = self._filter(principal.acting_owner, status="failed", **filters)
        async with transaction(self._pool) as conn:
            return await notifications.count_up_to(conn, kept=kept, limit=limit)

    async def retry_failed(
        self, *, principal: Principal, limit: int, requested_by: str, reason: str, **filters: Any
    ) -> builtins.list[uuid.UUID]:
        """Retries up to `limit` failed notifications matching `filters` (newest first),
        each as `retry` does, recorded with the caller's label; answers those retried.

        One that stopped being failed meanwhile (another operator retried it) is skipped.
        """
        principal.require(Scope.NOTIFICATIONS_SEND)
        kept = self._filter(principal.acting_owner, status="failed", **filters)
        async with transaction(self._pool) as conn:
            ids = await notifications.ids_of(conn, kept=kept, limit=limit)
        retried: builtins.list[uuid.UUID] = []
        for notification_id in ids:
            try:
                await self.retry(
                    notification_id=notification_id,
                    requested_by=requested_by,
                    reason=reason,
                    principal=principal,
                )
            except (Conflict, NotFound):
                continue
            retried.append(notification_id)
        return retried

    async def content(
        self, *, notification_id: uuid.UUID, principal: Principal
    ) -> jobs.SentContent | None:
        """What went out (or goes out) for the notification: recipient and rendered parts
        as accepted; None for one that never had any (suppressed at once)."""
        principal.require(Scope.NOTIFICATIONS_READ)
        async with transaction(self._pool) as conn:
            job = await notifications.job_of(
                conn, notification_id, client_id=principal.reading_owner
            )
        return jobs.sent_content(job) if job is not None else None

    async def retry(
        self, *, notification_id: uuid.UUID, requested_by: str, reason: str, principal: Principal
    ) -> notifications.NotificationRecord:
        """Re-queues a failed notification as a new generation (`requested_by` empty: the
        caller's label)."""
        principal.require(Scope.NOTIFICATIONS_SEND)
        owner = principal.acting_owner
        parsed = notification_id
        if len(requested_by) > 200:
            raise InvalidArgument.field("requested_by", "at most 200 characters")
        if len(reason) > 2000:
            raise InvalidArgument.field("reason", "at most 2000 characters")
        async with transaction(self._pool) as conn:
            state = await lock(conn, parsed)
            if state is None or (owner is not None and state.client_id != owner):
                raise not_found(parsed)
            bind_correlation_id(state.correlation_id)
            job = jobs.stored_job(state)
            nxt = lifecycle.on_retry(jobs.position(state, job))
            generation = state.generation + 1
            job = jobs.next_job(
                job, nxt, generation=generation, last_error="", deadline=self._deadline
            )
            hop = await set_hop(
                conn,
                parsed,
                generation=generation,
                route_index=nxt.route_index,
                channel=nxt.channel,
                attempt=nxt.attempt,
                job=job.SerializeToString(),
                status_reason="",
                deliver_after=None,
                grace=self._outbox.grace,
            )
            await notifications.record_retry(
                conn,
                parsed,
                generation=generation,
                requested_by=requested_by or principal.label,
                reason=reason,
            )
        await self._outbox.dispatch([Publication(parsed, hop, job)])
        log.info("notification retried", notification_id=str(parsed), generation=generation)
        return await self._get(notification_id, owner)

    async def cancel(
        self, *, notification_id: uuid.UUID, principal: Principal, reason: str = ""
    ) -> notifications.NotificationRecord:
        """Cancels the caller's client's notification (admin: any) if it has not gone out;
        FAILED_PRECONDITION naming the status it reached otherwise."""
        principal.require(Scope.NOTIFICATIONS_SEND)
        owner = principal.acting_owner
        if len(reason) > 500:
            raise InvalidArgument.field("reason", "at most 500 characters")
        async with transaction(self._pool) as conn:
            state = await lock(conn, notification_id)
            if state is None or (owner is not None and state.client_id != owner):
                raise not_found(notification_id)
            bind_correlation_id(state.correlation_id)
            claimed = state.status == "pending" and await scheduling.any_claim(
                conn, notification_id
            )
            lifecycle.on_cancel(state.status, claimed=claimed, notification_id=notification_id)
            why = lifecycle.cancelled_by(principal.label, reason)
            await scheduling.mark_cancelled(conn, notification_id, reason=why)
            mark = scheduling.Mark(
                notification_id,
                state.hop_channel,
                wire.CANCELLED,
                why,
                self._clock(),
                who=principal.label,
            )
            await scheduling.add_marks(conn, [mark])
        log.info("notification cancelled", notification_id=str(notification_id))
        return await self._get(notification_id, owner)


def not_found(notification_id: uuid.UUID) -> NotFound:
    """The one answer for a notification that does not exist and for another client's."""
    return NotFound(f"notification {notification_id} not found")
