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

A report appends its attempt to the trail and `gateway.lifecycle` decides what follows:
a worker reports only what its attempt came to, and the retry, the next channel, failed
(with its dead letter) or suppressed is decided here and written in the same transaction,
the next hop (rebuilt from the stored job, so content and recipient stay the gateway's)
published through the outbox, to the channel's delay queue after a backoff. A repeated
attempt id, or an outcome already recorded, answers changed=False and writes nothing; an
illegal or stale move is FAILED_PRECONDITION and writes nothing. A report that ends the
hop closes its claim. The seed's payload (status, error, channel, timestamp, no attempt)
is accepted as an external report: it applies to the current hop and, when it changes
the state, joins the trail as an attempt without provider.

Batching lives in one place: a worker's client coalesces its concurrent calls into
BatchClaim and BatchReportStatus (`deliveryd.clients`), and a batch call runs its batched
statement directly: `claim_many` grants what is plainly grantable (a pending notification's
current hop, free) in one statement, `report_many` records the deliveries of pending
notifications in one statement. Every other item, or one that statement did not take,
runs alone in a transaction that decides and says why.
"""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool

from gateway import jobs, lifecycle
from gateway.lifecycle import Hop
from gateway.outbox import Outbox, Publication
from gateway.status.reports import MAX_TEXT, Report, with_note
from gateway.store import claims, db, hops
from gateway.store.notifications import AttemptRecord
from gateway.wire import CHANNEL_NAMES
from mesh.errors import Conflict, DomainError, InvalidArgument, NotFound
from mesh.logging import bind_correlation_id

log = structlog.get_logger(__name__)

T = TypeVar("T")
R = TypeVar("R")

CHANNELS = frozenset(CHANNEL_NAMES)
# Claims or reports in one batch call, and in one batched statement.
MAX_BATCH = 500


class ClaimResult(enum.StrEnum):
    """The answers to a claim (see the module docstring)."""

    GRANTED = "granted"
    TAKEN = "taken"
    FINAL = "final"
    UNKNOWN = "unknown"
    LEASED = "leased"
    STALE = "stale"


@dataclass(frozen=True)
class ClaimAsk:
    """One worker's claim of one hop for `lease_seconds` (0: the default lease)."""

    notification_id: uuid.UUID
    hop: Hop
    worker: str
    lease_seconds: int


@dataclass(frozen=True)
class ClaimOutcome:
    result: ClaimResult
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
        policy: lifecycle.RetryPolicy,
        default_lease_seconds: int = 60,
    ) -> None:
        self._pool = pool
        self._outbox = outbox
        self._policy = policy
        self._default_lease = default_lease_seconds

    async def claim(self, ask: ClaimAsk) -> ClaimOutcome:
        """Takes one hop for one worker (see the module docstring for the answers)."""
        [outcome] = await self.claim_many([ask])
        if isinstance(outcome, DomainError):
            raise outcome
        return outcome

    async def claim_many(self, asks: Sequence[ClaimAsk]) -> list[ClaimOutcome | DomainError]:
        """Claims, each answered as alone: what is plainly grantable (a pending
        notification's current hop, free) in one statement, the rest one by one."""
        outcomes: list[ClaimOutcome | DomainError | None] = [None] * len(asks)
        wanted: list[tuple[int, claims.ClaimWanted]] = []
        for index, ask in enumerate(asks):
            try:
                wanted.append((index, self._wanted(ask)))
            except DomainError as exc:
                outcomes[index] = exc
        granted = await together(
            self._pool, [w for _, w in wanted], claims.claim_current, key=lambda w: w.key
        )
        alone: list[tuple[int, claims.ClaimWanted]] = []
        for (index, w), row in zip(wanted, granted, strict=True):
            if row is not None:
                outcomes[index] = self._granted(w.notification_id, row)
            else:
                alone.append((index, w))
        answers = await asyncio.gather(
            *(self._claim_alone(w) for _, w in alone), return_exceptions=True
        )
        for (index, _), answer in zip(alone, answers, strict=True):
            outcomes[index] = _outcome(answer)
        return [o for o in outcomes if o is not None]

    def _wanted(self, ask: ClaimAsk) -> claims.ClaimWanted:
        hop = ask.hop
        if not ask.worker or len(ask.worker) > 200:
            raise InvalidArgument.field("worker", "required, at most 200 characters")
        if not 0 <= ask.lease_seconds <= 3600:
            raise InvalidArgument.field("lease_seconds", "between 1 and 3600 (0: default)")
        if hop.channel not in CHANNELS:
            raise InvalidArgument.field("channel", "must be email, sms or push")
        if hop.generation < 1 or hop.attempt < 1:
            field = "generation" if hop.generation < 1 else "attempt"
            raise InvalidArgument.field(field, "must be at least 1")
        lease = ask.lease_seconds or self._default_lease
        return claims.ClaimWanted(
            ask.notification_id, hop.generation, hop.channel, hop.attempt, ask.worker, lease
        )

    async def _claim_alone(self, wanted: claims.ClaimWanted) -> ClaimOutcome:
        """Looks at the notification and the claim to say why (or claims after all)."""
        key = wanted.key
        notification_id = wanted.notification_id
        async with db.transaction(self._pool) as conn:
            state = await hops.lock(conn, notification_id, shared=True)
            if state is None:
                return ClaimOutcome(ClaimResult.UNKNOWN)
            bind_correlation_id(state.correlation_id)
            current = (state.generation, state.hop_channel, state.attempt)
            if state.final or key[1:] != current:
                existing = await claims.find_claim(conn, *key)
                if existing is not None and existing.done:
                    return ClaimOutcome(ClaimResult.TAKEN, state.status)
                if state.final:
                    return ClaimOutcome(ClaimResult.FINAL, state.status)
                return ClaimOutcome(ClaimResult.STALE, state.status)
            # The current hop: a done claim makes try_claim answer None, read below.
            granted = await claims.try_claim(
                conn, *key, worker=wanted.worker, lease_seconds=wanted.lease_seconds
            )
            if granted is None:
                holder = await claims.find_claim(conn, *key)
                assert holder is not None
                if holder.done:
                    return ClaimOutcome(ClaimResult.TAKEN, state.status)
                return ClaimOutcome(
                    ClaimResult.LEASED, state.status, lease_until=holder.lease_until
                )
        return self._granted(notification_id, granted)

    @staticmethod
    def _granted(notification_id: uuid.UUID, granted: claims.ClaimRow) -> ClaimOutcome:
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
            ClaimResult.GRANTED, "pending", takeover=takeover, lease_until=granted.lease_until
        )

    async def report(self, report: Report) -> ReportOutcome:
        """Records a fact and moves the notification as `lifecycle` decides."""
        [outcome] = await self.report_many([report])
        if isinstance(outcome, DomainError):
            raise outcome
        return outcome

    async def report_many(self, reports: Sequence[Report]) -> list[ReportOutcome | DomainError]:
        """Reports, each answered as alone: the deliveries of pending notifications in one
        statement, every other report (or one that statement did not take) one by one."""
        outcomes: list[ReportOutcome | DomainError | None] = [None] * len(reports)
        deliveries = [
            (index, self._delivery(r))
            for index, r in enumerate(reports)
            if r.delivered and r.hop is not None
        ]
        moved = await together(
            self._pool,
            [d for _, d in deliveries],
            hops.record_deliveries,
            key=lambda d: d.attempt.notification_id,
            also=lambda d: d.attempt.id,
        )
        for (index, delivery), correlation_id in zip(deliveries, moved, strict=True):
            if correlation_id is not None:
                with structlog.contextvars.bound_contextvars(correlation_id=correlation_id):
                    log.info(
                        "status reported",
                        notification_id=str(delivery.attempt.notification_id),
                        status="delivered",
                    )
                outcomes[index] = ReportOutcome("delivered", changed=True)
        alone = [i for i, o in enumerate(outcomes) if o is None]
        answers = await asyncio.gather(
            *(self._report_alone(reports[i]) for i in alone), return_exceptions=True
        )
        for index, answer in zip(alone, answers, strict=True):
            outcomes[index] = _outcome(answer)
        return [o for o in outcomes if o is not None]

    @staticmethod
    def _delivery(report: Report) -> hops.Delivery:
        assert report.hop is not None
        return hops.Delivery(
            report.trail_row(report.hop),
            close=(report.hop.generation, report.hop.channel, report.hop.attempt),
            deliver_time=report.timestamp or datetime.now(UTC),
        )

    async def _report_alone(self, report: Report) -> ReportOutcome:
        notification_id = report.notification_id
        # Otherwise, the notification's state decides (and says why nothing changes).
        publication: Publication | None = None
        async with db.transaction(self._pool) as conn:
            state = await hops.lock(conn, notification_id)
            if state is None:
                raise NotFound(f"notification {notification_id} not found")
            bind_correlation_id(state.correlation_id)
            job = jobs.stored_job(state)
            here = jobs.position(state, job)
            try:
                decision = self._decide(here, report)
            except Conflict:
                # A repeated report, overtaken since by the move it made, is no conflict.
                if report.attempt_id is not None and await hops.attempt_recorded(
                    conn, report.attempt_id
                ):
                    return ReportOutcome(state.status, changed=False)
                raise
            if not decision.changed or (decision.status is None and report.attempt is None):
                return ReportOutcome(state.status, changed=False)
            attempt = with_note(report.trail_row(report.hop or here.hop), decision.note)
            c = decision.close
            close = (c.generation, c.channel, c.attempt) if c else None
            if not await hops.record_attempt(conn, attempt, close=close):
                return ReportOutcome(state.status, changed=False)  # a repeated report
            publication = await self._apply(
                conn, state, job, report=report, decision=decision, attempt=attempt
            )
            status = decision.status or state.status
        if publication is not None:
            await self._outbox.dispatch([publication])
        log.info("status reported", notification_id=str(notification_id), status=status)
        return ReportOutcome(status, changed=True)

    def _decide(self, here: lifecycle.Position, report: Report) -> lifecycle.Decision:
        if report.outcome is not None:
            assert report.hop is not None
            return lifecycle.on_attempt(
                here,
                hop=report.hop,
                outcome=report.outcome,
                error=report.error,
                policy=self._policy,
                now=datetime.now(UTC),
                channel_names=CHANNEL_NAMES,
            )
        assert report.status is not None
        return lifecycle.on_external(here, status=report.status, hop=report.hop, error=report.error)

    async def _apply(
        self,
        conn: db.Conn,
        state: hops.HopState,
        job: jobs.Job,
        *,
        report: Report,
        decision: lifecycle.Decision,
        attempt: AttemptRecord,
    ) -> Publication | None:
        """Writes the decided state; returns the hop (or dead letter) to publish, if any."""
        if decision.status == "pending" and decision.next_hop is not None:
            nxt = decision.next_hop
            moved = jobs.next_job(
                job, nxt, generation=state.generation, last_error=decision.carried[:MAX_TEXT]
            )
            deliver_after = None
            if nxt.delay > 0:
                deliver_after = datetime.now(UTC) + timedelta(seconds=nxt.delay)
            hop = await hops.set_hop(
                conn,
                state.id,
                generation=state.generation,
                route_index=nxt.route_index,
                channel=nxt.channel,
                attempt=nxt.attempt,
                job=moved.SerializeToString(),
                status_reason=decision.reason[:MAX_TEXT],
                deliver_after=deliver_after,
                grace=self._outbox.grace,
            )
            return Publication(state.id, hop, moved, deliver_after)
        if decision.status == "delivered":
            await hops.finish(
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
            await hops.finish(conn, state.id, status="suppressed", reason=decision.reason)
        elif decision.dead_letter:
            reason = decision.reason[:MAX_TEXT]
            dead = jobs.dead_letter(job, str(state.id), reason)
            hop = await hops.finish(
                conn,
                state.id,
                status="failed",
                reason=reason,
                dead_letter=dead.SerializeToString(),
                grace=self._outbox.grace,
            )
            return Publication(state.id, hop, dead, dead=True)
        return None

    async def get(self, *, notification_id: uuid.UUID) -> hops.StatusRow:
        async with db.transaction(self._pool) as conn:
            row = await hops.read_status(conn, notification_id)
        if row is None:
            raise NotFound(f"notification {notification_id} not found")
        return row


def _outcome(answer: T | BaseException) -> T | DomainError:
    """A gathered answer: the value, or the domain error it raised (others propagate)."""
    if isinstance(answer, DomainError):
        return answer
    if isinstance(answer, BaseException):
        raise answer
    return answer


async def together(
    pool: AsyncConnectionPool,
    items: Sequence[T],
    statement: Callable[[db.Conn, Sequence[T]], Awaitable[list[R | None]]],
    *,
    key: Callable[[T], Hashable],
    also: Callable[[T], Hashable] | None = None,
) -> list[R | None]:
    """`statement` over the items, at most one per key (and per `also`): a repeated one,
    like any the statement did not take, answers None and takes the long way. So does
    every item when the statement loses a deadlock (every batched writer of
    `notifications` locks in id order, so none is expected; this is the safety net)."""
    outcomes: list[R | None] = [None] * len(items)
    if not items:
        return outcomes
    seen: set[Hashable] = set()
    chosen: list[int] = []
    for index, item in enumerate(items):
        keys = {("key", key(item))} | ({("also", also(item))} if also else set())
        if not keys & seen:
            seen |= keys
            chosen.append(index)
    async with db.connection(pool) as conn:
        try:
            answers = await statement(conn, [items[i] for i in chosen])
        except psycopg.errors.DeadlockDetected:
            log.warning("batched statement lost a deadlock; its items go one by one")
            return outcomes
    for index, answer in zip(chosen, answers, strict=True):
        outcomes[index] = answer
    return outcomes
