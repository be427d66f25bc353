"""The notification state machine: what a ReportStatus does to a notification.

    pending ──(PENDING + next_job)──▶ pending, next hop (retry or next channel)
    pending ──(DELIVERED)──────────▶ delivered   (final)
    pending ──(FAILED)─────────────▶ failed      (final; NotificationService.Retry reopens)
    pending ──(SUPPRESSED)─────────▶ suppressed  (final)
    pending ──(PENDING, no next_job)▶ pending, the attempt only joins the trail

A final notification accepts only the same final status again, which changes nothing;
anything else out of a final state (e.g. delivered → pending) is FAILED_PRECONDITION.
A hop is (generation, channel, attempt). Moving on (next hop, failed, suppressed) must come
from the current hop: a report about an older hop is refused as stale. DELIVERED is
accepted from any hop of a pending notification, because it is the truth: a slow worker
whose lease was taken over may still have delivered, and then the newer hop's message
finds the notification final at its Claim and is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.store import HopState
from herald.v1 import delivery_pb2
from mesh.errors import Conflict, InvalidArgument


@dataclass(frozen=True)
class Hop:
    generation: int
    channel: int
    attempt: int


@dataclass(frozen=True)
class Report:
    """A validated ReportStatus request."""

    status: str
    hop: Hop | None
    error: str
    channel: int
    timestamp: datetime | None
    next_job: delivery_pb2.DeliveryJob | None
    next_delay_seconds: float


@dataclass(frozen=True)
class NextHop:
    route_index: int
    channel: int
    attempt: int


@dataclass(frozen=True)
class Decision:
    """What to write: `status` None means the state does not move."""

    changed: bool
    status: str | None = None
    next_hop: NextHop | None = None
    close: Hop | None = None


def current_hop(state: HopState) -> Hop:
    return Hop(state.generation, state.hop_channel, state.attempt)


def decide(state: HopState, report: Report) -> Decision:
    """The transition `report` asks for, or Conflict when it is illegal or stale."""
    if state.final:
        if report.status == state.status:
            return Decision(changed=False)
        raise Conflict(
            f"notification {state.id} is {state.status}: it cannot become {report.status}"
        )
    current = current_hop(state)
    reported = report.hop or current
    if report.status == "pending":
        if report.next_job is None:
            return Decision(changed=True)
        next_hop = _next_hop(state, report.next_job)
        if Hop(report.next_job.generation, next_hop.channel, next_hop.attempt) == current:
            return Decision(changed=False)
        _require_current(state, reported, current)
        _check_successor(state, next_hop)
        return Decision(changed=True, status="pending", next_hop=next_hop, close=reported)
    if report.status == "delivered":
        return Decision(changed=True, status="delivered", close=reported)
    _require_current(state, reported, current)
    return Decision(changed=True, status=report.status, close=reported)


def _require_current(state: HopState, reported: Hop, current: Hop) -> None:
    if reported != current:
        raise Conflict(
            f"stale report for notification {state.id}: it is about generation "
            f"{reported.generation} attempt {reported.attempt} on channel {reported.channel}, "
            f"the current hop is generation {current.generation} attempt {current.attempt} "
            f"on channel {current.channel}"
        )


def _next_hop(state: HopState, job: delivery_pb2.DeliveryJob) -> NextHop:
    if job.notification_id and job.notification_id != str(state.id):
        raise InvalidArgument.field("next_job.notification_id", "is another notification")
    if job.generation != state.generation:
        raise Conflict(
            f"next_job is for generation {job.generation}; "
            f"notification {state.id} is at generation {state.generation}"
        )
    return NextHop(job.route_index, job.channel, job.attempt)


def _check_successor(state: HopState, nxt: NextHop) -> None:
    """A retry on the same channel (attempt + 1) or the next channel (attempt 1)."""
    retry = (
        nxt.route_index == state.route_index
        and nxt.channel == state.hop_channel
        and nxt.attempt == state.attempt + 1
    )
    fallback = (
        nxt.route_index == state.route_index + 1
        and nxt.route_index < len(state.route)
        and nxt.channel == state.route[nxt.route_index]
        and nxt.attempt == 1
    )
    if not (retry or fallback):
        raise Conflict(
            f"next_job (route_index {nxt.route_index}, channel {nxt.channel}, attempt "
            f"{nxt.attempt}) does not follow the current hop (route_index "
            f"{state.route_index}, channel {state.hop_channel}, attempt {state.attempt}) "
            "as a retry or the next channel of the route"
        )
