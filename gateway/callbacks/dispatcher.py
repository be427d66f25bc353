"""Posting status callbacks: the outbox's events, signed, to each client's endpoints.

Every gateway runs one dispatcher; they share the work through leases on the events
(`store.callbacks.take_due`). The dispatcher never holds a database connection while it
posts, and the notifications never wait for it: the trigger wrote the event when the
status changed, and this loop only reads the outbox.

- **Order.** An event is taken only when it is the earliest pending one of its
  (endpoint, notification), so a receiver sees `sent` before `delivered`.
- **Retries.** A timeout, a refused connection, 408, 425, 429 or 5xx is tried again after
  a backoff with jitter (tenacity's, as the lifecycle's retries), until the event is
  `HERALD_CALLBACK_RETRY_SECONDS` old (24 h); then it is `failed`. Any other answer
  (3xx, 4xx: redirects are not followed) fails it at once. Each attempt is recorded.
- **A dead endpoint.** Each failure also backs the endpoint off as a whole (doubling, up
  to `HERALD_CALLBACK_BACKOFF_MAX_SECONDS`): none of its events is tried meanwhile, so it
  costs one request per backoff. At most `HERALD_CALLBACK_PER_ENDPOINT` of one endpoint's
  posts run at once here, out of `HERALD_CALLBACK_CONCURRENCY`, so a receiver that never
  answers takes a few slots for the timeout, never all of them.
- **Duplicates.** Delivery is at least once (a gateway dying after the post and before
  recording it posts again after the lease); the `webhook-id` header, the event's id,
  lets a receiver drop the copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter as Tally
from datetime import UTC, datetime, timedelta
from uuid import UUID

import aiohttp
import structlog
from prometheus_client import Counter, Gauge, Histogram
from psycopg_pool import AsyncConnectionPool

from gateway.callbacks import model
from gateway.lifecycle import RetryPolicy
from gateway.store import callbacks, db
from gateway.store.callbacks import Due
from mesh.outbound import OutboundRefused, OutboundRule
from mesh.public_http import public_session
from mesh.signing import signed_headers

log = structlog.get_logger(__name__)

CALLBACKS = Counter(
    "herald_callbacks_total",
    "Status callback attempts, by result (delivered, retried, failed).",
    ["result"],
)
CALLBACK_SECONDS = Histogram(
    "herald_callback_seconds", "How long a callback's receiver took to answer."
)
PENDING = Gauge("herald_callbacks_pending", "Status callbacks not posted yet.")
FAILING = Gauge(
    "herald_callback_endpoints_failing", "Callback endpoints whose last attempt failed."
)
OLDEST_FAILING = Gauge(
    "herald_callback_endpoint_failing_seconds",
    "How long the longest-failing callback endpoint has been failing (0: none is).",
)

RETRYABLE_STATUSES = frozenset({408, 425, 429})
USER_AGENT = "Herald-Callbacks/1"
BACKLOG_SECONDS = 5.0


class Dispatcher:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        rule: OutboundRule,
        timeout: float,
        retry_for: float,
        backoff_base: float,
        backoff_max: float,
        interval: float,
        concurrency: int,
        per_endpoint: int,
    ) -> None:
        self._pool = pool
        self._rule = rule
        self._timeout = timeout
        self._retry_for = timedelta(seconds=retry_for)
        self._backoff = RetryPolicy(max_attempts={}, base=backoff_base, maximum=backoff_max)
        self._endpoint_backoff = (backoff_base, backoff_max)
        self._interval = interval
        self._concurrency = concurrency
        self._per_endpoint = per_endpoint
        self._in_flight: Tally[UUID] = Tally()
        self._tasks: set[asyncio.Task[None]] = set()
        self._room = asyncio.Event()

    async def run(self) -> None:
        """Takes and posts due callbacks until cancelled."""
        session = public_session(self._rule)
        last_backlog = 0.0
        try:
            while True:
                taken = await self._take()
                if time.monotonic() - last_backlog > BACKLOG_SECONDS:
                    last_backlog = time.monotonic()
                    await self._report_backlog()
                if not taken:
                    self._room.clear()
                    # Wake early when a post ends and frees a slot.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._room.wait(), self._interval)
                    continue
                for due in taken:
                    self._start(session, due)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await session.close()

    async def _take(self) -> list[Due]:
        free = self._concurrency - len(self._tasks)
        if free <= 0:
            return []
        busy = [e for e, n in self._in_flight.items() if n >= self._per_endpoint]
        try:
            async with db.transaction(self._pool) as conn:
                return await callbacks.take_due(
                    conn,
                    limit=free,
                    per_endpoint=self._per_endpoint,
                    busy=busy,
                    lease=timedelta(seconds=2 * self._timeout + 5),
                )
        except Exception:  # the database is away: try again on the next round
            log.exception("callbacks: taking due events failed")
            return []

    def _start(self, session: aiohttp.ClientSession, due: Due) -> None:
        endpoint = due.event.endpoint_id
        self._in_flight[endpoint] += 1
        task = asyncio.create_task(self._deliver(session, due))
        self._tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            self._in_flight[endpoint] -= 1
            if self._in_flight[endpoint] <= 0:
                del self._in_flight[endpoint]
            self._room.set()

        task.add_done_callback(done)

    async def _deliver(self, session: aiohttp.ClientSession, due: Due) -> None:
        event = due.event
        body = model.body(event)
        headers = signed_headers(body, due.secrets, webhook_id=str(event.id), at=datetime.now(UTC))
        headers |= {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        status: int | None = None
        error = ""
        began = time.monotonic()
        try:
            async with session.post(
                due.url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                allow_redirects=False,
            ) as response:
                status = response.status
                if not 200 <= status < 300:
                    error = f"answered {status}"
        except TimeoutError:
            error = f"no answer within {self._timeout}s"
        except OutboundRefused as exc:
            error = f"refused by the outbound rule: {exc}"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        duration = time.monotonic() - began
        CALLBACK_SECONDS.observe(duration)
        try:
            await self._record(due, status, error, duration)
        except Exception:  # the lease runs out and the event is posted again
            log.exception("callbacks: recording an attempt failed", event_id=str(event.id))

    async def _record(self, due: Due, status: int | None, error: str, duration: float) -> None:
        event = due.event
        async with db.transaction(self._pool) as conn:
            await callbacks.record_attempt(
                conn,
                event,
                url=due.url,
                status_code=status,
                duration_ms=round(duration * 1000, 2),
                error=error,
            )
            if not error:
                await callbacks.delivered(conn, event)
                result = "delivered"
            elif status is not None and status < 500 and status not in RETRYABLE_STATUSES:
                await callbacks.failed(conn, event, f"the receiver answered {status}")
                result = "failed"
            else:
                base, maximum = self._endpoint_backoff
                await callbacks.endpoint_failed(conn, event.endpoint_id, base=base, maximum=maximum)
                if datetime.now(UTC) - event.occur_time > self._retry_for:
                    await callbacks.failed(conn, event, f"gave up: {error}")
                    result = "failed"
                else:
                    delay = timedelta(seconds=self._backoff.delay(event.attempts))
                    await callbacks.retry_later(conn, event, error, delay)
                    result = "retried"
        CALLBACKS.labels(result).inc()
        if result != "delivered":
            log.warning(
                "callback not delivered",
                event_id=str(event.id),
                endpoint_id=str(event.endpoint_id),
                result=result,
                error=error,
            )

    async def _report_backlog(self) -> None:
        try:
            async with db.transaction(self._pool) as conn:
                backlog = await callbacks.backlog(conn)
        except Exception:
            log.exception("callbacks: reading the backlog failed")
            return
        PENDING.set(backlog.pending)
        FAILING.set(backlog.failing_endpoints)
        OLDEST_FAILING.set(backlog.oldest_failing_seconds)
