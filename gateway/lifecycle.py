"""The notification's lifecycle: every state, every fact that moves it, and why.

A notification asked for later (`send_at`), or held by the user's quiet hours, is
`scheduled` until its time: nothing is queued, and it can be cancelled. Then, or at once,
it is `pending` while one hop is current: (generation, route_index, channel,
attempt). It ends `delivered`, `failed`, `suppressed` or `cancelled`. When the provider that took it
sends receipts, it is `sent` in between: no worker acts on it any more, and the
provider's receipt settles it. Facts arrive from three places:
a delivery worker reports what an attempt came to, an external reporter (the seed's REST
status route, scope status:report) names a status it saw, and an operator asks for a
manual retry. Only Herald's own attempts decide a pending notification: an external
report is evidence, kept in the trail, so it can neither pre-empt a worker's claim nor
skip the route's fallback (a forged `delivered` cannot stop the real delivery). Callers
report facts; this module alone decides what follows. The caller writes the decision and
publishes the next hop (or the dead letter) through the outbox in the same transaction.

    state    fact                                          becomes
    -------  --------------------------------------------  ---------------------------------
    (new)    accepted with send_at, or inside the user's    scheduled, due at the later of
             quiet hours (a type that respects them)        the two ("held by quiet hours
                                                            until T" in the trail)
    (new)    over the user's frequency cap for its type     suppressed ("frequency cap: ...")
    scheduled its time comes (the scheduler)                pending: the first hop is queued
    scheduled cancel                                        cancelled (who, in the trail)
    pending  cancel, while no worker has claimed any hop    cancelled; a worker that takes
                                                            its queued hop finds it final
    other    cancel                                         refused (FAILED_PRECONDITION,
                                                            naming the status reached)
    pending  attempt DELIVERED (any hop of its generation)  delivered; `sent` when the
                                                            provider sends receipts
    pending  TRANSIENT, tries and time left                 pending: same channel, attempt+1,
                                                            after exponential backoff + jitter
    pending  TRANSIENT, tries or time spent                 as PERMANENT ("gave up after N")
    pending  PERMANENT or SKIPPED (no contact point,        pending: the route's next channel,
             deadline passed, nothing to send)              attempt 1, unless the deadline
                                                            passed
             ...and no channel left                         failed: dead letter, and the admin
                                                            alert when critical
    pending  SUPPRESSED (the user's current choices         next channel; none left:
             forbid the channel)                            suppressed, or failed with the
                                                            earlier real error if one channel
                                                            really failed
    pending  external report (any status)                  nothing moves: the report joins
                                                            the trail (outcome REPORTED, with
                                                            its reporter); the hop, its claim
                                                            and the route's fallback go on
    sent     receipt DELIVERED (its hop)                   delivered
    sent     receipt of a permanent failure (bounced,       as an attempt's PERMANENT: the
             dropped, undelivered, opted out) (its hop)     route's next channel, or failed
    sent     no receipt within the receipt window           delivered ("no receipt")
    any      any other receipt (accepted, deferred,         nothing moves; the receipt joins
             complained; a receipt about an older hop;      its attempt in the trail (a
             one after the notification settled)            bounce or complaint still adds
                                                            the contact to the suppressions)
    failed   manual retry                                   pending: generation+1, first
                                                            channel, attempt 1, new deadline
    final    the same final status again                    nothing (a repeat)
    final    any other fact                                 refused (FAILED_PRECONDITION)

A fact about a hop other than the current one is stale and refused, except DELIVERED: it
is the truth (a slow worker whose lease was taken over may still have delivered), and the
newer hop's message then finds the notification final at its claim and is dropped.

Channels are opaque numbers here (the route's entries); `channel_names` names them in notes.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from tenacity import RetryCallState, wait_exponential_jitter

from mesh.errors import Conflict

# Marks a carried error that is a suppression, not a failure.
SUPPRESSED_PREFIX = "suppressed: "
FINAL = frozenset({"delivered", "failed", "suppressed", "cancelled"})
STATUSES = FINAL | {"scheduled", "pending", "sent"}
# What a Cancel may stop: a scheduled notification, or a pending one no worker claimed.
CANCELLABLE = frozenset({"scheduled", "pending"})
# What each status means to a caller: the one table the README and OpenAPI show.
STATUS_MEANINGS: dict[str, str] = {
    "scheduled": "Held until its time (its `send_at`, or the end of the user's quiet "
    "hours); nothing is queued yet, and it can be cancelled.",
    "pending": "Accepted; a hop is queued, being sent, or waiting for its retry.",
    "sent": "A provider took it and will call back with receipts Herald verifies; a "
    "receipt settles it.",
    "delivered": "The provider took it (and sends no receipts Herald takes), or its receipt "
    "says delivered, or no receipt came within the receipt window.",
    "failed": "Every channel of its route failed (receipts of hard bounces, drops and "
    "undelivered SMS included); on the dead-letter queue, can be retried by hand.",
    "suppressed": "The user's own choices (preferences, deletion) forbid every channel "
    "of its route, or it was over the user's frequency cap for its message type.",
    "cancelled": "Cancelled before it went out; the trail says who cancelled it.",
}


def status_table() -> str:
    """STATUS_MEANINGS as a Markdown table."""
    rows = "".join(f"| `{name}` | {meaning} |\n" for name, meaning in STATUS_MEANINGS.items())
    return "| status | meaning |\n|---|---|\n" + rows


class Outcome(enum.StrEnum):
    """What one attempt came to, as the worker saw it."""

    DELIVERED = "delivered"
    # Timeout, refused connection, 429, 5xx: worth retrying.
    TRANSIENT = "transient"
    # This channel will not carry this message: invalid recipient, rejected content.
    PERMANENT = "permanent"
    # Not sent: no contact point, deadline passed, nothing to send.
    SKIPPED = "skipped"
    # Not sent because the user's current choices forbid it: not a failure.
    SUPPRESSED = "suppressed"


@dataclass(frozen=True)
class Hop:
    generation: int
    channel: int
    attempt: int


@dataclass(frozen=True)
class Position:
    """Where a notification stands, as deciding needs it."""

    id: UUID
    status: str
    generation: int
    route: tuple[int, ...]
    route_index: int
    channel: int
    attempt: int
    # After it no retry is scheduled and no further channel is tried.
    deadline: datetime | None
    # The last real error, carried across channels (or a suppression, prefixed).
    last_error: str

    @property
    def final(self) -> bool:
        """No worker acts on it any more: settled, or `sent` and waiting for a receipt."""
        return self.status != "pending"

    @property
    def hop(self) -> Hop:
        return Hop(self.generation, self.channel, self.attempt)

    def deadline_passed(self, at: datetime) -> bool:
        return self.deadline is not None and at >= self.deadline


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of one hop on one channel: `base * 2^(attempt-1)` plus a jitter of up to half
    the base, capped at `maximum` (tenacity's `wait_exponential_jitter`). The jitter spreads
    the retries of notifications that failed together; keeping it under the base keeps one
    notification's delays growing."""

    max_attempts: Mapping[int, int]
    base: float
    maximum: float
    _wait: wait_exponential_jitter = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        wait = wait_exponential_jitter(multiplier=self.base, max=self.maximum, jitter=self.base / 2)
        object.__setattr__(self, "_wait", wait)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after try number `attempt` (1-based) failed."""
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = attempt
        return float(self._wait(state))

    def next_delay(self, position: Position, now: datetime) -> float | None:
        """The delay before the current hop's next try, or None when the channel is used
        up: its tries made, or the next one would start after the deadline."""
        if position.attempt >= self.max_attempts.get(position.channel, 1):
            return None
        delay = self.delay(max(position.attempt, 1))
        if position.deadline_passed(now + timedelta(seconds=delay)):
            return None
        return delay


@dataclass(frozen=True)
class NextHop:
    route_index: int
    channel: int
    attempt: int
    # Seconds to hold the hop (a retry's backoff); 0 sends it at once.
    delay: float = 0.0


@dataclass(frozen=True)
class Decision:
    """What to write. `status` None: the state does not move (the trail may still grow)."""

    changed: bool
    status: str | None = None
    next_hop: NextHop | None = None
    # The hop whose claim the fact closes.
    close: Hop | None = None
    # The status reason; for a next hop, also what the job carries as its last error.
    reason: str = ""
    carried: str = ""
    # Why, for the attempt's detail in the trail.
    note: dict[str, Any] = field(default_factory=dict)

    @property
    def dead_letter(self) -> bool:
        """A failed notification goes to failed.queue (and the alert, when critical)."""
        return self.status == "failed"


def on_attempt(
    position: Position,
    *,
    hop: Hop,
    outcome: Outcome,
    error: str,
    policy: RetryPolicy,
    now: datetime,
    channel_names: Mapping[int, str],
    expects_receipt: bool = False,
) -> Decision:
    """What follows a worker's attempt on `hop` (`expects_receipt`: the provider that
    took it will report what becomes of it)."""
    if position.final:
        delivered = "sent" if expects_receipt else "delivered"
        return _repeat_or_refuse(position, delivered if outcome is Outcome.DELIVERED else "")
    if outcome is Outcome.DELIVERED:
        return Decision(changed=True, status="sent" if expects_receipt else "delivered", close=hop)
    _require_current(position, hop)

    reason = error
    if outcome is Outcome.TRANSIENT:
        delay = policy.next_delay(position, now)
        if delay is not None:
            retry = NextHop(position.route_index, position.channel, position.attempt + 1, delay)
            return Decision(
                changed=True,
                status="pending",
                next_hop=retry,
                close=hop,
                reason=error,
                carried=error,
                note={"retry_in_seconds": round(delay, 3), "next_attempt": retry.attempt},
            )
        reason = f"{error} (gave up after {position.attempt} tries)"

    carried = reason
    if outcome is Outcome.SUPPRESSED:
        earlier = position.last_error
        real_error = bool(earlier) and not earlier.startswith(SUPPRESSED_PREFIX)
        carried = earlier if real_error else SUPPRESSED_PREFIX + reason
    return _next_channel(
        position, hop, reason=reason, carried=carried, now=now, channel_names=channel_names
    )


def on_receipt(
    position: Position,
    *,
    hop: Hop,
    event: str,
    permanent_failure: bool,
    reason: str,
    now: datetime,
    channel_names: Mapping[int, str],
) -> Decision:
    """What follows a provider's receipt (`event`) about the attempt on `hop`."""
    if position.status != "sent" or hop != position.hop:
        return Decision(changed=True, note={"effect": "recorded"})
    if event == "delivered":
        return Decision(changed=True, status="delivered", note={"effect": "delivered"})
    if not permanent_failure:
        return Decision(changed=True, note={"effect": "recorded"})
    error = f"{event}: {reason}" if reason else event
    decision = _next_channel(
        position, hop, reason=error, carried=error, now=now, channel_names=channel_names
    )
    nxt = decision.next_hop
    effect = f"failed over to {channel_names.get(nxt.channel, nxt.channel)}" if nxt else "failed"
    return replace(decision, close=None, note={**decision.note, "effect": effect})


def _next_channel(
    position: Position,
    hop: Hop,
    *,
    reason: str,
    carried: str,
    now: datetime,
    channel_names: Mapping[int, str],
) -> Decision:
    """After the hop's channel failed for good: the route's next channel, or the end."""
    index = position.route_index + 1
    if index < len(position.route) and not position.deadline_passed(now):
        channel = position.route[index]
        return Decision(
            changed=True,
            status="pending",
            next_hop=NextHop(index, channel, 1),
            close=hop,
            reason=reason,
            carried=carried,
            note={"next_channel": channel_names.get(channel, str(channel))},
        )
    if carried.startswith(SUPPRESSED_PREFIX):
        suppressed = carried.removeprefix(SUPPRESSED_PREFIX)
        return Decision(
            changed=True,
            status="suppressed",
            close=hop,
            reason=suppressed or "suppressed",
            note={"final": "suppressed"},
        )
    return Decision(
        changed=True,
        status="failed",
        close=hop,
        reason=carried or "delivery failed",
        note={"final": "failed"},
    )


def on_external(position: Position, *, status: str) -> Decision:
    """What follows an external report that the notification is in `status`: on a final
    notification, a repeat or a conflict; on a pending one, a trail entry and no move."""
    if position.final:
        return _repeat_or_refuse(position, status)
    return Decision(
        changed=True,
        note={"reported_status": status, "acted_on": False, "current_status": "pending"},
    )


def on_retry(position: Position) -> NextHop:
    """A manual retry reopens a failed notification at its route's first channel."""
    if position.status != "failed":
        raise Conflict(
            f"notification {position.id} is {position.status}: only a failed notification "
            "can be retried"
        )
    return NextHop(0, position.route[0], 1)


def held_by_quiet_hours(until: datetime) -> str:
    """The trail's and the status reason's words for a notification quiet hours hold."""
    return f"held by quiet hours until {until.astimezone(UTC).isoformat()}"


def scheduled_for(at: datetime) -> str:
    """The reason of a notification held for its send_at."""
    return f"scheduled for {at.astimezone(UTC).isoformat()}"


def capped(message_type: str, limit: str) -> str:
    """The reason of a notification over the user's frequency cap."""
    return f"frequency cap: at most {limit} {message_type} notifications per user"


def cancelled_by(label: str, reason: str) -> str:
    """The status reason of a cancelled notification: who, and why when they said."""
    return f"cancelled by {label}" + (f": {reason}" if reason else "")


def on_cancel(status: str, *, claimed: bool, notification_id: UUID) -> None:
    """Whether a cancel may stop a notification in `status` (`claimed`: a worker took
    one of its hops); raises the conflict that names the status it reached."""
    if status == "pending" and claimed:
        raise Conflict(
            f"notification {notification_id} is pending and a worker has taken it: "
            "it can no longer be cancelled"
        )
    if status not in CANCELLABLE:
        raise Conflict(
            f"notification {notification_id} is {status}: only a scheduled notification, "
            "or a pending one no worker has taken, can be cancelled"
        )


def _repeat_or_refuse(position: Position, status: str) -> Decision:
    if status == position.status:
        return Decision(changed=False)
    wanted = f"it cannot become {status}" if status else "a later attempt cannot move it"
    raise Conflict(f"notification {position.id} is {position.status}: {wanted}")


def _require_current(position: Position, reported: Hop) -> None:
    current = position.hop
    if reported != current:
        raise Conflict(
            f"stale report for notification {position.id}: it is about generation "
            f"{reported.generation} attempt {reported.attempt} on channel {reported.channel}, "
            f"the current hop is generation {current.generation} attempt {current.attempt} "
            f"on channel {current.channel}"
        )
