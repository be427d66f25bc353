"""The scheduler: releases scheduled notifications when their time comes, on every gateway.

Each gateway runs one. It sleeps until the earliest due time it knows of (or `idle`
seconds at most), then releases every due row in batches: one transaction marks them
pending with their first hop due (`FOR UPDATE SKIP LOCKED`: with several gateways, each
row is released by exactly one), then the hops are published like a Send's, through the
outbox (the relay republishes any the broker did not confirm). A notification accepted
with an earlier time wakes it at once: in this process directly (`wake`), in the others
through PostgreSQL's NOTIFY on `herald_scheduled` (migration 017).

Never early: a row is released only once `send_at <= now` by the scheduler's clock.
On time: it wakes at the due instant, so a release is milliseconds late, plus the
publish and a worker's claim. Nothing is held in memory that a restart could lose: the
rows are the schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from prometheus_client import Gauge
from psycopg_pool import AsyncConnectionPool

from gateway import jobs
from gateway.outbox import Outbox, Publication
from gateway.store import db, scheduling
from mesh.listen import Listener

log = structlog.get_logger(__name__)

SCHEDULED_WAITING = Gauge(
    "herald_scheduled_waiting",
    "Notifications scheduled and not yet due (status scheduled), as the last pass saw them.",
)
HELD_BY_QUIET_HOURS = Gauge(
    "herald_scheduled_quiet_window",
    "Of those, the ones held by their user's quiet hours.",
)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    """Releases due scheduled notifications; `run()` until cancelled."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        outbox: Outbox,
        *,
        idle: float,
        batch_size: int,
        clock: Clock = utc_now,
    ) -> None:
        self._pool = pool
        self._outbox = outbox
        self._idle = idle
        self._batch_size = batch_size
        self._clock = clock
        self._wake = asyncio.Event()
        self._next: datetime | None = None

    def wake(self, due: datetime | None = None) -> None:
        """A notification is due at `due` (None: look again now)."""
        if due is None or self._next is None or due < self._next:
            self._wake.set()

    def listener(self, url: str) -> Listener:
        """Wakes this scheduler when another gateway schedules a notification."""

        def notified(payload: str) -> None:
            try:
                due = datetime.fromtimestamp(float(payload), UTC)
            except ValueError:
                due = None
            self.wake(due)

        return Listener(
            url=url,
            channel=scheduling.SCHEDULED_CHANNEL,
            on_notify=notified,
            # Announcements may have been missed while not listening: look again.
            on_listening=lambda _: self.wake(),
        )

    async def release_once(self) -> int:
        """Releases one batch of due notifications and publishes their first hops."""
        now = self._clock()
        async with db.transaction(self._pool) as conn:
            released = await scheduling.release_due(
                conn, now=now, limit=self._batch_size, grace=self._outbox.grace
            )
        if released:
            await self._outbox.dispatch(
                [Publication(r.notification_id, r.hop, jobs.read(r.job)) for r in released]
            )
            log.info("scheduled notifications released", count=len(released))
        return len(released)

    async def pass_once(self) -> datetime | None:
        """Releases everything due, then answers when the next one is due."""
        while await self.release_once() >= self._batch_size:
            pass
        async with db.connection(self._pool) as conn:
            ahead = await scheduling.waiting(conn)
        SCHEDULED_WAITING.set(ahead.scheduled)
        HELD_BY_QUIET_HOURS.set(ahead.held_by_quiet_hours)
        return ahead.next_due

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                self._next = await self.pass_once()
            except Exception as exc:  # the database is down: try again after the idle wait
                log.warning("scheduler pass failed", error=repr(exc))
                self._next = None
            wait = self._idle
            if self._next is not None:
                wait = min(wait, max((self._next - self._clock()).total_seconds(), 0.0))
            # Due already but not released (another gateway holds it, or a clock a hair
            # behind the database's): a short breath instead of a busy loop.
            wait = max(wait, 0.005)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
