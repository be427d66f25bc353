"""Reports: what an attempt came to, or what an external reporter saw, recorded and
decided by the lifecycle; and where a notification stands. (Claims: `claims`.)

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
statement directly: `report_many` records the deliveries of pending notifications in one
statement; every other report, or one that statement did not take, runs alone in a
transaction that decides and says why.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import structlog
from psycopg_pool import AsyncConnectionPool

from gateway import jobs, lifecycle
from gateway.outbox import Outbox, Publication
from gateway.status.reports import Report, with_note
from gateway.status.settle import DeliveredBy, settle
from gateway.store import db, hops
from gateway.wire import CHANNEL_NAMES
from mesh.errors import Conflict, DomainError, NotFound
from mesh.item_errors import domain_outcome
from mesh.logging import bind_correlation_id

log = structlog.get_logger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# Claims or reports in one batch call, and in one batched statement.
MAX_BATCH = 500


@dataclass(frozen=True)
class ReportOutcome:
    status: str
    changed: bool


class Statuses:
    """Reports and status reads over the notifications database."""

    def __init__(
        self,
        *,
        pool: AsyncConnectionPool,
        outbox: Outbox,
        policy: lifecycle.RetryPolicy,
        receipt_providers: frozenset[str] = frozenset(),
    ) -> None:
        self._pool = pool
        self._outbox = outbox
        self._policy = policy
        # Providers whose receipts Herald verifies: a message they take is `sent` until
        # their receipt settles it.
        self._receipt_providers = receipt_providers

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
            if r.delivered and r.hop is not None and not self._expects_receipt(r)
        ]
        moved = await db.together(
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
            outcomes[index] = domain_outcome(answer)
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
            if state is None or (report.owner is not None and state.client_id != report.owner):
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
            if not decision.changed:
                return ReportOutcome(state.status, changed=False)
            attempt = with_note(report.trail_row(report.hop or here.hop), decision.note)
            c = decision.close
            close = (c.generation, c.channel, c.attempt) if c else None
            if not await hops.record_attempt(conn, attempt, close=close):
                return ReportOutcome(state.status, changed=False)  # a repeated report
            by = DeliveredBy(
                attempt.channel,
                attempt.provider,
                attempt.provider_message_id,
                report.timestamp or datetime.now(UTC),
            )
            publication = await settle(conn, state, job, decision, by=by, grace=self._outbox.grace)
            status = decision.status or state.status
        if publication is not None:
            await self._outbox.dispatch([publication])
        log.info("status reported", notification_id=str(notification_id), status=status)
        return ReportOutcome(status, changed=True)

    def _expects_receipt(self, report: Report) -> bool:
        """The provider was asked for receipts and this gateway can verify them."""
        attempt = report.attempt
        return (
            report.awaits_receipt
            and attempt is not None
            and attempt.provider in self._receipt_providers
        )

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
                expects_receipt=self._expects_receipt(report),
            )
        assert report.status is not None
        return lifecycle.on_external(here, status=report.status)

    async def get(self, *, notification_id: uuid.UUID) -> hops.StatusRow:
        async with db.transaction(self._pool) as conn:
            row = await hops.read_status(conn, notification_id)
        if row is None:
            raise NotFound(f"notification {notification_id} not found")
        return row
