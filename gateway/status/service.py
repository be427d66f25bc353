"""StatusService: workers claim hops, report outcomes; clients read where things stand.

Claim(notification, generation, channel, attempt, worker, lease) answers, checked in order:
  UNKNOWN  no such notification;
  TAKEN    this exact hop's outcome is already recorded (its claim is closed);
  FINAL    the notification is delivered, failed or suppressed;
  STALE    the hop is not the notification's current hop;
  LEASED   another worker holds a live lease (lease_expire_time says until when);
  GRANTED  no claim yet, or the lease expired (takeover=True when another worker held
           it), or the caller re-claims its own lease (renewed; idempotent).
The notification row is held FOR SHARE while claiming, so a report cannot move the hop
underneath; the claim itself is one INSERT … ON CONFLICT DO UPDATE … WHERE lease expired.

ReportStatus appends the attempt to the trail and moves the state (see `transitions`):
a repeated attempt id, or an outcome already recorded, answers changed=False and writes
nothing; an illegal or stale move is FAILED_PRECONDITION and writes nothing. A report that
ends the hop closes its claim. PENDING with next_job makes that the current hop (built
from the stored job, so content and recipient stay the gateway's) and publishes it through
the outbox, to the channel's delay queue when next_delay > 0. The seed's payload
(status, error, channel, timestamp, no attempt) is accepted: it applies to the current
hop and, when it changes the state, joins the trail as an attempt without provider.

The usual cases take one statement for many calls: the Claims (and the DELIVERED reports)
made at the same moment, a batch call's or concurrent calls', are tried together
(`mesh.coalesce.Batcher`) in one statement that grants (moves) only what is plainly
grantable (a pending notification's current hop, free; a pending notification
delivered). Every other call, or one that statement did not take, runs alone in a
transaction that decides and says why.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool

from gateway import store as shared
from gateway.notifications.routing import CHANNEL_NAMES
from gateway.outbox import Outbox, Publication
from gateway.status import store
from gateway.status.reports import MAX_TEXT, attempt_record, parse_id, parse_report
from gateway.status.transitions import Decision, Hop, Report, current_hop, decide
from herald.v1 import common_pb2, delivery_pb2, status_pb2
from mesh.coalesce import Batcher
from mesh.errors import Conflict, InvalidArgument, NotFound
from mesh.logging import bind_correlation_id

log = structlog.get_logger(__name__)

T = TypeVar("T")
R = TypeVar("R")

CHANNELS = frozenset(CHANNEL_NAMES)
# Claims or reports in one batch call, and in one batched statement.
MAX_BATCH = 500


@dataclass(frozen=True)
class ClaimOutcome:
    result: int
    status: str | None = None
    takeover: bool = False
    lease_until: datetime | None = None


@dataclass(frozen=True)
class ReportOutcome:
    status: str
    changed: bool


class Statuses:
    """Claims, reports and status reads over the notifications database."""

    def __init__(
        self,
        *,
        pool: AsyncConnectionPool,
        outbox: Outbox,
        default_lease_seconds: int = 60,
        max_batch: int = MAX_BATCH,
        runs: int = 1,
    ) -> None:
        self._pool = pool
        self._outbox = outbox
        self._default_lease = default_lease_seconds
        self._claims: Batcher[store.ClaimWanted, store.ClaimRow | None] = Batcher(
            self._claim_current, max_batch=max_batch, max_running=runs
        )
        self._deliveries: Batcher[store.Delivery, str | None] = Batcher(
            self._record_deliveries, max_batch=max_batch, max_running=runs
        )

    async def _claim_current(self, wanted: list[store.ClaimWanted]) -> list[store.ClaimRow | None]:
        return await together(self._pool, wanted, store.claim_current, key=lambda w: w.key)

    async def _record_deliveries(self, deliveries: list[store.Delivery]) -> list[str | None]:
        return await together(
            self._pool,
            deliveries,
            store.record_deliveries,
            key=lambda d: d.attempt.notification_id,
            also=lambda d: d.attempt.id,
        )

    async def claim(self, *, request: status_pb2.ClaimRequest) -> ClaimOutcome:
        """Takes one hop for one worker (see the module docstring for the answers)."""
        notification_id = parse_id(request.notification_id, "notification_id")
        if not request.worker or len(request.worker) > 200:
            raise InvalidArgument.field("worker", "required, at most 200 characters")
        if not 0 <= request.lease_seconds <= 3600:
            raise InvalidArgument.field("lease_seconds", "between 1 and 3600 (0: default)")
        if request.channel not in CHANNELS:
            raise InvalidArgument.field("channel", "must be email, sms or push")
        if request.generation < 1 or request.attempt < 1:
            field = "generation" if request.generation < 1 else "attempt"
            raise InvalidArgument.field(field, "must be at least 1")
        hop = Hop(request.generation, request.channel, request.attempt)
        lease = request.lease_seconds or self._default_lease
        key = (notification_id, hop.generation, hop.channel, hop.attempt)
        # The usual case, batched: the current hop of a pending notification, free.
        granted = await self._claims(store.ClaimWanted(*key, request.worker, lease))
        if granted is not None:
            return self._granted(notification_id, granted)
        # Otherwise, look at the notification and the claim to say why (or claim after all).
        async with shared.transaction(self._pool) as conn:
            state = await shared.lock(conn, notification_id, shared=True)
            if state is None:
                return ClaimOutcome(status_pb2.CLAIM_RESULT_UNKNOWN)
            bind_correlation_id(state.correlation_id)
            if state.final or hop != current_hop(state):
                existing = await store.find_claim(conn, *key)
                if existing is not None and existing.done:
                    return ClaimOutcome(status_pb2.CLAIM_RESULT_TAKEN, state.status)
                if state.final:
                    return ClaimOutcome(status_pb2.CLAIM_RESULT_FINAL, state.status)
                return ClaimOutcome(status_pb2.CLAIM_RESULT_STALE, state.status)
            # The current hop: a done claim makes try_claim answer None, read below.
            granted = await store.try_claim(conn, *key, worker=request.worker, lease_seconds=lease)
            if granted is None:
                holder = await store.find_claim(conn, *key)
                assert holder is not None
                if holder.done:
                    return ClaimOutcome(status_pb2.CLAIM_RESULT_TAKEN, state.status)
                return ClaimOutcome(
                    status_pb2.CLAIM_RESULT_LEASED, state.status, lease_until=holder.lease_until
                )
        return self._granted(notification_id, granted)

    @staticmethod
    def _granted(notification_id: uuid.UUID, granted: store.ClaimRow) -> ClaimOutcome:
        """GRANTED: a claim is only granted on a pending notification's current hop."""
        takeover = granted.previous_worker not in (None, granted.worker)
        if takeover:
            log.warning(
                "lease taken over",
                notification_id=str(notification_id),
                worker=granted.worker,
                previous_worker=granted.previous_worker,
            )
        return ClaimOutcome(
            status_pb2.CLAIM_RESULT_GRANTED,
            "pending",
            takeover=takeover,
            lease_until=granted.lease_until,
        )

    async def report(self, *, request: status_pb2.ReportStatusRequest) -> ReportOutcome:
        """Records an outcome and moves the notification (see `transitions`)."""
        notification_id = parse_id(request.notification_id, "notification_id")
        report = parse_report(request)
        attempt_id = (
            parse_id(request.attempt.id, "attempt.id")
            if request.HasField("attempt") and request.attempt.id
            else None
        )
        if report.status == "delivered" and report.hop is not None:
            # The usual case, batched: a pending notification delivered.
            delivery = store.Delivery(
                attempt_record(request, notification_id, report.hop, report, attempt_id),
                close=(report.hop.generation, report.hop.channel, report.hop.attempt),
                deliver_time=report.timestamp or datetime.now(UTC),
            )
            correlation_id = await self._deliveries(delivery)
            if correlation_id is not None:
                bind_correlation_id(correlation_id)
                log.info(
                    "status reported", notification_id=str(notification_id), status="delivered"
                )
                return ReportOutcome("delivered", changed=True)
        # Otherwise, the notification's state decides (and says why nothing changes).
        publication: Publication | None = None
        async with shared.transaction(self._pool) as conn:
            state = await shared.lock(conn, notification_id)
            if state is None:
                raise NotFound(f"notification {notification_id} not found")
            bind_correlation_id(state.correlation_id)
            try:
                decision = decide(state, report)
            except Conflict:
                # A repeated report, overtaken since by the move it made, is no conflict.
                if attempt_id is not None and await store.attempt_recorded(conn, attempt_id):
                    return ReportOutcome(state.status, changed=False)
                raise
            has_attempt = request.HasField("attempt")
            if not decision.changed or (decision.status is None and not has_attempt):
                return ReportOutcome(state.status, changed=False)
            attempt = attempt_record(
                request, state.id, report.hop or current_hop(state), report, attempt_id
            )
            c = decision.close
            close = (c.generation, c.channel, c.attempt) if c else None
            if not await store.record_attempt(conn, attempt, close=close):
                return ReportOutcome(state.status, changed=False)  # a repeated report
            publication = await self._apply(conn, state, report, decision, attempt)
            status = decision.status or state.status
        if publication is not None:
            await self._outbox.dispatch([publication])
        log.info("status reported", notification_id=str(notification_id), status=status)
        return ReportOutcome(status, changed=True)

    async def _apply(
        self,
        conn: shared.Conn,
        state: shared.HopState,
        report: Report,
        decision: Decision,
        attempt: shared.AttemptRecord,
    ) -> Publication | None:
        """Writes the decided state; returns the hop to publish, if any."""
        error = (report.error or attempt.error)[:MAX_TEXT]
        if decision.status == "pending" and decision.next_hop is not None:
            assert report.next_job is not None and state.job is not None
            nxt = decision.next_hop
            job = delivery_pb2.DeliveryJob.FromString(state.job)
            job.channel = common_pb2.Channel.ValueType(nxt.channel)
            job.route_index, job.attempt = nxt.route_index, nxt.attempt
            job.last_error = (report.next_job.last_error or error)[:MAX_TEXT]
            if report.next_job.HasField("deadline"):
                job.deadline.CopyFrom(report.next_job.deadline)
            deliver_after = None
            if report.next_delay_seconds > 0:
                deliver_after = datetime.now(UTC) + timedelta(seconds=report.next_delay_seconds)
            hop = await shared.set_hop(
                conn,
                state.id,
                generation=state.generation,
                route_index=nxt.route_index,
                channel=nxt.channel,
                attempt=nxt.attempt,
                job=job.SerializeToString(),
                status_reason=error,
                deliver_after=deliver_after,
                grace=self._outbox.grace,
            )
            return Publication(state.id, hop, job, deliver_after)
        if decision.status == "delivered":
            await store.finish(
                conn,
                state.id,
                status="delivered",
                reason="",
                delivered_channel=attempt.channel,
                delivered_provider=attempt.provider,
                provider_message_id=attempt.provider_message_id,
                deliver_time=report.timestamp or datetime.now(UTC),
            )
        elif decision.status == "suppressed":
            await store.finish(conn, state.id, status="suppressed", reason=error or "suppressed")
        elif decision.status == "failed":
            reason = error or "delivery failed"
            dead = delivery_pb2.DeliveryJob.FromString(state.job or b"")
            dead.notification_id = dead.notification_id or str(state.id)
            dead.last_error = reason
            hop = await store.finish(
                conn,
                state.id,
                status="failed",
                reason=reason,
                dead_letter=dead.SerializeToString(),
                grace=self._outbox.grace,
            )
            return Publication(state.id, hop, dead, dead=True)
        return None

    async def get(self, *, notification_id: str) -> store.StatusRow:
        parsed = parse_id(notification_id, "notification_id")
        async with shared.transaction(self._pool) as conn:
            row = await store.read_status(conn, parsed)
        if row is None:
            raise NotFound(f"notification {parsed} not found")
        return row


async def together(
    pool: AsyncConnectionPool,
    items: Sequence[T],
    statement: Callable[[shared.Conn, Sequence[T]], Awaitable[list[R | None]]],
    *,
    key: Callable[[T], Hashable],
    also: Callable[[T], Hashable] | None = None,
) -> list[R | None]:
    """`statement` over the items, at most one per key (and per `also`): a repeated one,
    like any the statement did not take, answers None and takes the long way. So does
    every item when the statement loses a deadlock (every batched writer of
    `notifications` locks in id order, so none is expected; this is the safety net)."""
    outcomes: list[R | None] = [None] * len(items)
    seen: set[Hashable] = set()
    chosen: list[int] = []
    for index, item in enumerate(items):
        keys = {("key", key(item))} | ({("also", also(item))} if also else set())
        if not keys & seen:
            seen |= keys
            chosen.append(index)
    async with shared.connection(pool) as conn:
        try:
            answers = await statement(conn, [items[i] for i in chosen])
        except psycopg.errors.DeadlockDetected:
            log.warning("batched statement lost a deadlock; its items go one by one")
            return outcomes
    for index, answer in zip(chosen, answers, strict=True):
        outcomes[index] = answer
    return outcomes
