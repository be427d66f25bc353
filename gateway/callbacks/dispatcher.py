"""Posting status callbacks: the outbox's events, signed, to each client's endpoints.

Each callbacks process (`gateway.callbacks.process`, never the gateway) runs one
dispatcher; several share the work through leases on the events
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
  to `HERALD_CALLBACK_BACKOFF_MAX_SECONDS`): none of its events is tried meanwhile (what
  this dispatcher had taken for it is given back), so it costs one request per backoff.
  At most `HERALD_CALLBACK_PER_ENDPOINT` of one endpoint's posts run at once here, out of
  `HERALD_CALLBACK_CONCURRENCY`, so a receiver that never answers takes a few slots for
  the timeout, never all of them.
- **Duplicates.** Delivery is at least once (an event whose process died after the post
  and before recording it is posted again after the lease); the `webhook-id` header, the
  event's id, lets a receiver drop the copy.
- **Cost.** The database work is per batch, not per callback: a round leases several
  posts' worth of events per endpoint (`QUEUED_PER_POST`) in one statement, queued here
  and posted in order, and the outcomes are written a batch per statement (`Recorder`). An idle
  dispatcher looks every `HERALD_CALLBACK_INTERVAL_SECONDS`; a busy one takes again when an
  endpoint it left events behind for has posted half of what it holds.
- **Stopping.** Cancelled, it gives back what it had queued (another dispatcher may take
  it at once), lets the posts under way finish for up to `grace` seconds, records them
  and closes: a stop in the middle of a post neither loses nor repeats it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter as Tally
from collections import deque
from datetime import UTC, datetime, timedelta
from uuid import UUID

import aiohttp
import structlog
from prometheus_client import Counter, Gauge, Histogram
from psycopg_pool import AsyncConnectionPool

from gateway.callbacks import model
from gateway.lifecycle import RetryPolicy
from gateway.store import callbacks, db
from gateway.store.callbacks import Due, Outcome, Result
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
# Events leased per endpoint for each post it may have running: a round of the outbox
# then feeds a busy endpoint for several posts, so a steady flow costs one lease query
# per this many callbacks rather than one per callback.
QUEUED_PER_POST = 8
# How long the outcomes of posts gather before they are written together. An event's
# successor (the same notification's next status) is taken once the event is recorded,
# so this is added to its wait; the lease keeps an unrecorded event from a second post.
RECORD_GATHER_SECONDS = 0.1


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
        grace: float,
    ) -> None:
        self._pool = pool
        self._grace = grace
        self._rule = rule
        self._timeout = timeout
        self._retry_for = timedelta(seconds=retry_for)
        self._backoff = RetryPolicy(max_attempts={}, base=backoff_base, maximum=backoff_max)
        self._interval = interval
        self._concurrency = concurrency
        self._per_endpoint = per_endpoint
        self._per_endpoint_held = per_endpoint * QUEUED_PER_POST
        # Time for what one endpoint may hold (one and a half shares) to be posted, each
        # post timing out.
        self._lease = timedelta(seconds=(QUEUED_PER_POST * 3 // 2 + 1) * timeout + 5)
        self._queued: dict[UUID, deque[Due]] = {}
        self._running: Tally[UUID] = Tally()
        self._tasks: set[asyncio.Task[None]] = set()
        self._room = asyncio.Event()
        # Endpoints the last round left events behind for (they held all they may).
        self._short: set[UUID] = set()
        self._recorder = Recorder(pool, backoff_base=backoff_base, backoff_max=backoff_max)

    async def run(self) -> None:
        """Takes and posts due callbacks until cancelled."""
        session = public_session(self._rule, timeout=self._timeout)
        recording = asyncio.create_task(self._recorder.run())
        last_backlog = 0.0
        try:
            while True:
                taken = await self._take()
                if time.monotonic() - last_backlog > BACKLOG_SECONDS:
                    last_backlog = time.monotonic()
                    await self._report_backlog()
                for due in taken:
                    self._queued.setdefault(due.event.endpoint_id, deque()).append(due)
                self._short = {
                    e
                    for e in self._queued
                    if self._held(e) >= self._per_endpoint_held or self._free() <= 0
                }
                self._pump(session)
                self._room.clear()
                # More may be due at once when this round was cut short by a limit: take
                # again when posts have made room. Otherwise look again after the interval.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._room.wait(), self._interval)
        finally:
            for queue in self._queued.values():  # another dispatcher may take them at once
                for due in queue:
                    self._recorder.add(Outcome(due.event, due.url, Result.RELEASED))
            self._queued.clear()  # so a post that ends starts no other
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=self._grace)
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            recording.cancel()
            await asyncio.gather(recording, return_exceptions=True)
            await self._recorder.flush()
            await session.close()

    def _held(self, endpoint: UUID) -> int:
        return self._running[endpoint] + len(self._queued.get(endpoint, ()))

    def _free(self) -> int:
        """How many more events this dispatcher may lease."""
        held = sum(self._running.values()) + sum(len(q) for q in self._queued.values())
        return self._concurrency * QUEUED_PER_POST - held

    async def _take(self) -> list[Due]:
        free = self._free()
        if free <= 0:
            return []
        # An endpoint still holding more than half its share takes none this round (so it
        # never holds more than one and a half shares).
        half = self._per_endpoint_held // 2
        busy = [e for e in {*self._running, *self._queued} if self._held(e) > half]
        try:
            async with db.connection(self._pool) as conn:
                return await callbacks.take_due(
                    conn,
                    limit=free,
                    per_endpoint=self._per_endpoint_held,
                    busy=busy,
                    lease=self._lease,
                )
        except Exception:  # the database is away: try again on the next round
            log.exception("callbacks: taking due events failed")
            return []

    def _pump(self, session: aiohttp.ClientSession) -> None:
        """Starts queued posts while there is room: `per_endpoint` per endpoint, in
        order, `concurrency` in all."""
        for endpoint, queue in list(self._queued.items()):
            while queue and len(self._tasks) < self._concurrency:
                if self._running[endpoint] >= self._per_endpoint:
                    break
                self._start(session, queue.popleft())
            if not queue:
                del self._queued[endpoint]

    def _start(self, session: aiohttp.ClientSession, due: Due) -> None:
        endpoint = due.event.endpoint_id
        self._running[endpoint] += 1
        task = asyncio.create_task(self._deliver(session, due))
        self._tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            self._running[endpoint] -= 1
            if self._running[endpoint] <= 0:
                del self._running[endpoint]
            self._pump(session)
            if endpoint in self._short and self._held(endpoint) <= self._per_endpoint_held // 2:
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
                due.url, data=body, headers=headers, allow_redirects=False
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
        outcome = self._judge(due, status, error, round(duration * 1000, 2))
        CALLBACKS.labels(outcome.result.value.replace("retry", "retried")).inc()
        self._recorder.add(outcome)
        if outcome.result is Result.RETRY:
            # The endpoint backs off as a whole: what is queued for it waits too.
            for queued in self._queued.pop(event.endpoint_id, ()):
                self._recorder.add(Outcome(queued.event, queued.url, Result.RELEASED))
        if outcome.result is not Result.DELIVERED:
            log.warning(
                "callback not delivered",
                event_id=str(event.id),
                endpoint_id=str(event.endpoint_id),
                result=outcome.result.value,
                error=error,
            )

    def _judge(self, due: Due, status: int | None, error: str, duration_ms: float) -> Outcome:
        event = due.event
        result, delay = Result.RETRY, timedelta(0)
        if not error:
            result = Result.DELIVERED
        elif status is not None and status < 500 and status not in RETRYABLE_STATUSES:
            result, error = Result.FAILED, f"the receiver answered {status}"
        elif datetime.now(UTC) - event.occur_time > self._retry_for:
            result, error = Result.FAILED, f"gave up: {error}"
        else:
            delay = timedelta(seconds=self._backoff.delay(event.attempts + 1))
        return Outcome(event, due.url, result, status, duration_ms, error, delay)

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


class Recorder:
    """Writes what became of posted events, a batch per statement: it gathers for
    `RECORD_GATHER_SECONDS` after the first outcome, and while one batch is written the
    next gathers, so a steady flow of callbacks costs a few statements a second, not one
    per callback. An outcome not written (the database away) is lost only as a record:
    its lease runs out and the event is posted again."""

    def __init__(self, pool: AsyncConnectionPool, *, backoff_base: float, backoff_max: float):
        self._pool = pool
        self._backoff = {"backoff_base": backoff_base, "backoff_max": backoff_max}
        self._outcomes: list[Outcome] = []
        self._ready = asyncio.Event()

    def add(self, outcome: Outcome) -> None:
        self._outcomes.append(outcome)
        self._ready.set()

    async def run(self) -> None:
        while True:
            await self._ready.wait()
            await asyncio.sleep(RECORD_GATHER_SECONDS)
            self._ready.clear()
            await self.flush()

    async def flush(self) -> None:
        batch, self._outcomes = self._outcomes, []
        if not batch:
            return
        try:
            async with db.connection(self._pool) as conn:
                await callbacks.record(conn, batch, **self._backoff)
        except Exception:  # the leases run out and the events are posted again
            log.exception("callbacks: recording attempts failed", outcomes=len(batch))
