"""Claims: a worker takes one hop of a notification, exactly once, for a lease.

Claim(notification, generation, channel, attempt, worker, lease) answers, checked in order:
  UNKNOWN  no such notification;
  TAKEN    this exact hop's outcome is already recorded (its claim is closed);
  FINAL    the notification is delivered, failed or suppressed;
  STALE    the hop is not the notification's current hop;
  LEASED   another worker holds a live lease (lease_expire_time says until when);
  GRANTED  no claim yet, or the lease expired (takeover=True when another worker held
           it), or the caller re-claims its own lease (renewed; idempotent). A granted
           claim that names its contact point says whether that is suppressed
           (`suppressed`: why); the worker then reports the hop skipped, unsent.
The notification row is held FOR SHARE while claiming, so a report cannot move the hop
underneath; the claim itself is one INSERT … ON CONFLICT DO UPDATE … WHERE lease expired.

A batch of claims (`claim_many`, what BatchClaim runs) grants what is plainly grantable (a
pending notification's current hop, free) in one statement; every other claim, or one
that statement did not take, runs alone in a transaction that decides and says why.
"""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import structlog
from psycopg_pool import AsyncConnectionPool

from gateway.lifecycle import Hop
from gateway.store import claims, db, hops, suppressions
from gateway.wire import CHANNEL_NAMES
from mesh.errors import DomainError, InvalidArgument
from mesh.item_errors import domain_outcome
from mesh.logging import bind_correlation_id

log = structlog.get_logger(__name__)

CHANNELS = frozenset(CHANNEL_NAMES)


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
    # The contact point the hop would send to ("" unknown): checked against suppressions.
    contact: str = ""


@dataclass(frozen=True)
class ClaimOutcome:
    result: ClaimResult
    status: str | None = None
    takeover: bool = False
    lease_until: datetime | None = None
    # Granted, but the contact point is on the suppression list: why.
    suppressed: str = ""


def _contact(ask: ClaimAsk) -> str:
    return suppressions.normalized(CHANNEL_NAMES[ask.hop.channel], ask.contact)


class Claims:
    """Claims of hops over the notifications database."""

    def __init__(self, *, pool: AsyncConnectionPool, default_lease_seconds: int = 60) -> None:
        self._pool = pool
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
        granted = await db.together(
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
            outcomes[index] = domain_outcome(answer)
        done = [o for o in outcomes if o is not None]
        return await self._with_suppressions(asks, done)

    async def _with_suppressions(
        self, asks: Sequence[ClaimAsk], outcomes: list[ClaimOutcome | DomainError]
    ) -> list[ClaimOutcome | DomainError]:
        """Granted claims whose contact point is suppressed say so (one query a batch)."""
        wanted = {
            index: (
                ask.hop.channel,
                suppressions.normalized(CHANNEL_NAMES[ask.hop.channel], ask.contact),
            )
            for index, (ask, outcome) in enumerate(zip(asks, outcomes, strict=True))
            if ask.contact
            and isinstance(outcome, ClaimOutcome)
            and outcome.result is ClaimResult.GRANTED
        }
        if not wanted:
            return outcomes
        async with db.transaction(self._pool) as conn:
            found = await suppressions.active(conn, list(set(wanted.values())))
        for index, key in wanted.items():
            outcome = outcomes[index]
            if key in found and isinstance(outcome, ClaimOutcome):
                outcomes[index] = replace(outcome, suppressed=found[key])
        return outcomes

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
