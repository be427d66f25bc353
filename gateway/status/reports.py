"""ReportStatus requests as the lifecycle sees them: protobuf in, a checked `Report` out.

A worker's report leaves `status` UNSPECIFIED and carries the attempt, whose outcome is the
fact (`lifecycle.Outcome`). An external report (the seed's REST route) names the status it
saw, with or without an attempt; it joins the trail as a REPORTED attempt naming its
reporter, and never moves a pending notification (`lifecycle.on_external`). Either way
the fields are checked here (INVALID_ARGUMENT naming the field), so `service` only
decides.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.lifecycle import Hop, Outcome
from gateway.store.notifications import AttemptRecord
from gateway.wire import STATUS_NAMES
from herald.v1 import delivery_pb2, status_pb2
from mesh.errors import InvalidArgument

MAX_TEXT = 4000
# The trail outcome (the stored number) of every external report.
REPORTED = delivery_pb2.ATTEMPT_OUTCOME_REPORTED
# Who reported, when a mesh service reports over gRPC without naming itself.
MESH_REPORTER = "service"
OUTCOMES = {
    delivery_pb2.ATTEMPT_OUTCOME_DELIVERED: Outcome.DELIVERED,
    delivery_pb2.ATTEMPT_OUTCOME_TRANSIENT_FAILURE: Outcome.TRANSIENT,
    delivery_pb2.ATTEMPT_OUTCOME_PERMANENT_FAILURE: Outcome.PERMANENT,
    delivery_pb2.ATTEMPT_OUTCOME_SKIPPED: Outcome.SKIPPED,
}


@dataclass(frozen=True)
class Report:
    """One checked report: a worker's `outcome`, or an external reporter's `status`."""

    notification_id: uuid.UUID
    outcome: Outcome | None
    status: str | None
    # The hop the report is about; None: the notification's current hop.
    hop: Hop | None
    error: str
    channel: int
    timestamp: datetime | None
    # The trail row as reported; its hop fields are filled in from `hop` or the current one.
    attempt: AttemptRecord | None
    attempt_id: uuid.UUID | None
    # Who reported (an API key's label, or the mesh) and, for an API client's report, the
    # client whose notifications it may report on (None: any).
    reporter: str = MESH_REPORTER
    owner: str | None = None
    # A worker's delivery to a provider asked to call back with receipts.
    awaits_receipt: bool = False

    @classmethod
    def external(
        cls,
        *,
        notification_id: uuid.UUID,
        status: str,
        error: str,
        channel: int,
        timestamp: datetime | None,
        reporter: str,
        owner: str | None,
    ) -> Report:
        """An external reporter's word that the notification is in `status` (the seed's
        REST route), about its current hop."""
        return cls(
            reporter=reporter,
            owner=owner,
            notification_id=notification_id,
            outcome=None,
            status=status,
            hop=None,
            error=error[:MAX_TEXT],
            channel=channel,
            timestamp=timestamp,
            attempt=None,
            attempt_id=None,
        )

    @property
    def delivered(self) -> bool:
        """A worker's delivery (an external report is never one)."""
        return self.outcome is Outcome.DELIVERED

    def trail_row(self, hop: Hop) -> AttemptRecord:
        """The attempt to append: the reported one, or one made from an external report."""
        if self.status is not None:
            return self._external_row(hop)
        assert self.attempt is not None  # a worker's report carries its attempt
        a = self.attempt
        return replace(
            a,
            channel=a.channel or hop.channel,
            attempt=a.attempt or hop.attempt,
            generation=a.generation or hop.generation,
        )

    def _external_row(self, hop: Hop) -> AttemptRecord:
        """An external report as the trail keeps it: outcome REPORTED, the reporter as its
        worker, the status it named in its detail."""
        given = self.attempt
        detail: dict[str, Any] = {"reported_status": self.status, "reporter": self.reporter}
        if given is not None:
            detail["reported_outcome"] = given.outcome
        return AttemptRecord(
            id=self.attempt_id or uuid.uuid4(),
            notification_id=self.notification_id,
            channel=self.channel or hop.channel,
            provider=given.provider if given else "",
            outcome=REPORTED,
            provider_message_id=given.provider_message_id if given else "",
            error=self.error,
            duration_us=given.duration_us if given else 0,
            start_time=given.start_time if given else self.timestamp or datetime.now(UTC),
            attempt=hop.attempt,
            generation=hop.generation,
            worker=self.reporter[:200],
            detail=orjson.dumps(detail).decode(),
        )


def parse_id(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument.field(field, "not a UUID") from None


def parse_report(request: status_pb2.ReportStatusRequest) -> Report:
    """The report a ReportStatus request makes, its fields checked (INVALID_ARGUMENT)."""
    notification_id = parse_id(request.notification_id, "notification_id")
    if request.HasField("next_job") or request.HasField("next_delay"):
        field = "next_job" if request.HasField("next_job") else "next_delay"
        raise InvalidArgument.field(
            field,
            "no longer accepted: report the attempt's outcome; the gateway decides the next hop",
        )
    given = request.HasField("attempt")
    a = request.attempt
    if a.notification_id and a.notification_id != request.notification_id:
        raise InvalidArgument.field("attempt.notification_id", "differs from notification_id")
    status: str | None = None
    outcome: Outcome | None = None
    if request.status:
        status = STATUS_NAMES.get(request.status)
        if status is None:
            raise InvalidArgument.field(
                "status", "must be pending, delivered, failed or suppressed"
            )
    else:
        if not given:
            raise InvalidArgument.field("status", "required unless an attempt is reported")
        outcome = OUTCOMES.get(a.outcome)
        if outcome is None:
            raise InvalidArgument.field("attempt.outcome", "required when status is unspecified")
        if request.suppressed:
            if outcome is not Outcome.SKIPPED:
                raise InvalidArgument.field("suppressed", "only with an attempt that skipped")
            outcome = Outcome.SUPPRESSED
    if request.awaits_receipt and outcome is not Outcome.DELIVERED:
        raise InvalidArgument.field("awaits_receipt", "only with an attempt that was delivered")
    channel = a.channel or request.channel
    hop = None
    if given and a.attempt > 0 and a.generation > 0 and channel:
        hop = Hop(a.generation, channel, a.attempt)
    if outcome is not None and hop is None:
        raise InvalidArgument.field(
            "attempt", "a worker's attempt names its generation, channel and attempt"
        )
    attempt_id = parse_id(a.id, "attempt.id") if given and a.id else None
    timestamp = request.timestamp.ToDatetime(UTC) if request.HasField("timestamp") else None
    return Report(
        notification_id=notification_id,
        outcome=outcome,
        status=status,
        hop=hop,
        error=(request.error or a.error)[:MAX_TEXT],
        channel=request.channel,
        timestamp=timestamp,
        attempt=_attempt(request, notification_id, attempt_id) if given else None,
        attempt_id=attempt_id,
        awaits_receipt=request.awaits_receipt,
    )


def _attempt(
    request: status_pb2.ReportStatusRequest,
    notification_id: uuid.UUID,
    attempt_id: uuid.UUID | None,
) -> AttemptRecord:
    a = request.attempt
    outcome: int = a.outcome
    return AttemptRecord(
        id=attempt_id or uuid.uuid4(),
        notification_id=notification_id,
        channel=a.channel or request.channel,
        provider=a.provider[:200],
        outcome=outcome,
        provider_message_id=a.provider_message_id[:500],
        error=(a.error or request.error)[:MAX_TEXT],
        duration_us=a.duration.ToMicroseconds(),
        start_time=a.start_time.ToDatetime(UTC) if a.HasField("start_time") else datetime.now(UTC),
        attempt=a.attempt,
        generation=a.generation,
        worker=a.worker[:200],
        detail=a.detail[:MAX_TEXT],
    )


def with_note(attempt: AttemptRecord, note: Mapping[str, Any]) -> AttemptRecord:
    """The attempt with the lifecycle's reason (retry in, next channel, final) added to its
    detail, when the detail is a JSON object or empty."""
    if not note:
        return attempt
    detail: Any = {}
    if attempt.detail:
        try:
            detail = orjson.loads(attempt.detail)
        except orjson.JSONDecodeError:
            return attempt
    if not isinstance(detail, dict):
        return attempt
    text = orjson.dumps({**detail, **note}).decode()
    if len(text) > MAX_TEXT:
        return attempt
    return replace(attempt, detail=text)
