"""Receipts in: each kept once, matched to its attempt, and decided by the lifecycle.

`ingest` takes receipts whose signature a webhook route has verified. Each is kept once
per provider event (a duplicate has no effect) and, when the attempt it is about is in
the trail, applied in the same transaction: `lifecycle.on_receipt` decides (a `sent`
notification becomes delivered, or its hop failed and the route goes on), `settle`
writes it and the next hop or dead letter goes out through the outbox. A receipt whose
attempt is not recorded yet (its callback raced the worker's report) waits; the sweeper
applies it once the attempt is there, and gives up on it after `wait_seconds`. A receipt
naming nothing Herald sent is kept, counted and logged as unknown.

The sweeper also settles `sent` notifications no receipt settled within the receipt
window: they become delivered, with that as their reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import structlog
from prometheus_client import Counter
from psycopg_pool import AsyncConnectionPool

from gateway import jobs, lifecycle
from gateway.outbox import Outbox, Publication
from gateway.receipts.model import Receipt
from gateway.status.settle import DeliveredBy, settle
from gateway.store import db, hops, receipts, suppressions
from gateway.store.receipts import AttemptRef
from gateway.wire import CHANNEL_NAMES

log = structlog.get_logger(__name__)

RECEIPTS = Counter(
    "herald_receipts_total",
    "Provider receipts received, by provider, event and what became of them.",
    ["provider", "event", "result"],
)
SIGNATURE_FAILURES = Counter(
    "herald_receipt_signature_failures_total",
    "Webhook calls refused: a missing, wrong or stale signature, by provider and reason.",
    ["provider", "reason"],
)
SUPPRESSIONS = Counter(
    "herald_suppressions_total",
    "Suppression list changes, by channel, reason and change (added, removed).",
    ["channel", "reason", "change"],
)
RECEIPT_FAILOVERS = Counter(
    "herald_receipt_failovers_total",
    "Notifications a receipt of a permanent failure moved to the route's next channel.",
    ["provider"],
)


@dataclass(frozen=True)
class Ingested:
    """What became of a batch of receipts."""

    applied: int = 0
    waiting: int = 0
    duplicate: int = 0
    unknown: int = 0


class Receipts:
    def __init__(
        self,
        *,
        pool: AsyncConnectionPool,
        outbox: Outbox,
        window_seconds: float,
        nonce_seconds: float,
        wait_seconds: float = 3600.0,
    ) -> None:
        self._pool = pool
        self._outbox = outbox
        self._window = timedelta(seconds=window_seconds)
        self._nonces = timedelta(seconds=nonce_seconds)
        self._wait = timedelta(seconds=wait_seconds)

    async def first_use(self, provider: str, nonce: str) -> bool:
        """False when a signature's single-use value was seen before (a replay)."""
        async with db.transaction(self._pool) as conn:
            return await receipts.first_use(conn, provider, nonce)

    async def ingest(self, batch: Sequence[Receipt]) -> Ingested:
        """Keeps and applies verified receipts, each on its own."""
        counts = {"applied": 0, "waiting": 0, "duplicate": 0, "unknown": 0}
        for receipt in batch:
            result = await self._ingest_one(receipt)
            counts[result] += 1
            RECEIPTS.labels(receipt.provider, receipt.event.value, result).inc()
        return Ingested(**counts)

    async def _ingest_one(self, receipt: Receipt) -> str:
        publication: Publication | None = None
        async with db.transaction(self._pool) as conn:
            row_id = await receipts.insert(conn, receipt)
            if row_id is None:
                return "duplicate"
            attempt = await receipts.find_attempt(conn, receipt)
            if attempt is None:
                if receipt.attempt_id or receipt.notification_id:
                    return "waiting"  # its attempt is not recorded yet: the sweeper retries
                await receipts.mark_applied(conn, row_id, effect="unknown", attempt=None)
                log.warning(
                    "receipt for no known message",
                    provider=receipt.provider,
                    receipt=receipt.event.value,
                    provider_message_id=receipt.provider_message_id,
                )
                return "unknown"
            publication = await self._apply(conn, row_id, receipt, attempt)
        if publication is not None:
            await self._outbox.dispatch([publication])
        return "applied"

    async def _apply(
        self, conn: db.Conn, row_id: UUID, receipt: Receipt, attempt: AttemptRef
    ) -> Publication | None:
        """Decides and writes what the receipt does to its notification."""
        state = await hops.lock(conn, attempt.notification_id)
        assert state is not None  # an attempt's notification is never deleted
        job = jobs.stored_job(state)
        decision = lifecycle.on_receipt(
            jobs.position(state, job),
            hop=lifecycle.Hop(attempt.generation, attempt.channel, attempt.attempt),
            event=receipt.event.value,
            permanent_failure=receipt.event.permanent_failure,
            reason=" ".join(p for p in (receipt.code, receipt.reason) if p),
            now=datetime.now(UTC),
            channel_names=CHANNEL_NAMES,
        )
        by = DeliveredBy(
            attempt.channel, attempt.provider, attempt.provider_message_id, receipt.occurred_at
        )
        publication = await settle(conn, state, job, decision, by=by, grace=self._outbox.grace)
        effect = str(decision.note.get("effect", "recorded"))
        if receipt.event.suppresses:
            await self._suppress(conn, row_id, receipt, attempt, job)
        await receipts.mark_applied(conn, row_id, effect=effect, attempt=attempt)
        if effect.startswith("failed over"):
            RECEIPT_FAILOVERS.labels(receipt.provider).inc()
        log.info(
            "receipt applied",
            notification_id=str(attempt.notification_id),
            provider=receipt.provider,
            receipt=receipt.event.value,
            effect=effect,
        )
        return publication

    async def _suppress(
        self, conn: db.Conn, row_id: UUID, receipt: Receipt, attempt: AttemptRef, job: jobs.Job
    ) -> None:
        """A hard bounce, a complaint or an opt-out puts the contact point on the list."""
        channel = CHANNEL_NAMES.get(attempt.channel, "")
        contact = receipt.contact or jobs.contact_of(job, attempt.channel)
        if not contact:
            return
        added = await suppressions.add(
            conn,
            channel=attempt.channel,
            contact=suppressions.normalized(channel, contact),
            reason=receipt.event.value,
            detail=" ".join(p for p in (receipt.code, receipt.reason) if p),
            provider=receipt.provider,
            receipt_id=row_id,
            notification_id=attempt.notification_id,
        )
        if added:
            SUPPRESSIONS.labels(channel, receipt.event.value, "added").inc()
            log.info(
                "contact point suppressed",
                notification_id=str(attempt.notification_id),
                channel=channel,
                receipt=receipt.event.value,
            )

    async def sweep(self, *, limit: int = 200) -> int:
        """Applies waiting receipts whose attempt is recorded now, gives up on those older
        than the wait, settles `sent` notifications past the receipt window. Returns how
        many receipts it applied or gave up on."""
        done = 0
        publications: list[Publication] = []
        async with db.transaction(self._pool) as conn:
            for waiting in await receipts.waiting(conn, limit=limit):
                attempt = await receipts.find_attempt(conn, waiting.receipt)
                if attempt is not None:
                    publication = await self._apply(conn, waiting.row_id, waiting.receipt, attempt)
                    if publication is not None:
                        publications.append(publication)
                    done += 1
                elif waiting.receive_time < datetime.now(UTC) - self._wait:
                    await receipts.mark_applied(
                        conn, waiting.row_id, effect="unmatched", attempt=None
                    )
                    done += 1
            now = datetime.now(UTC)
            await hops.settle_unreceipted(conn, sent_before=now - self._window)
            await receipts.forget_nonces(conn, seen_before=now - self._nonces)
        if publications:
            await self._outbox.dispatch(publications)
        return done

    async def sweep_forever(self, interval: float) -> None:
        """Sweeps every `interval` seconds until cancelled."""
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("receipt sweep failed")
            await asyncio.sleep(interval)
