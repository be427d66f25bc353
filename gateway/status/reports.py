"""ReportStatus requests as the domain sees them: the checked report, and its trail row.

Kept apart from `service` (which decides what a report does) so the rules for what a
worker may send, and how a seed-style report without an attempt becomes a trail entry,
read in one place.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from gateway import store as shared
from gateway.status.transitions import Hop, Report
from herald.v1 import delivery_pb2, status_pb2
from mesh.errors import InvalidArgument

MAX_TEXT = 4000
MAX_DELAY_SECONDS = 7 * 86400
OUTCOME_OF_STATUS = {
    "pending": delivery_pb2.ATTEMPT_OUTCOME_TRANSIENT_FAILURE,
    "delivered": delivery_pb2.ATTEMPT_OUTCOME_DELIVERED,
    "failed": delivery_pb2.ATTEMPT_OUTCOME_PERMANENT_FAILURE,
    "suppressed": delivery_pb2.ATTEMPT_OUTCOME_SKIPPED,
}


def parse_id(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument.field(field, "not a UUID") from None


def parse_report(request: status_pb2.ReportStatusRequest) -> Report:
    """The report a ReportStatus request makes, its fields checked (INVALID_ARGUMENT)."""
    status = shared.STATUS_NAMES.get(request.status)
    if status is None:
        raise InvalidArgument.field("status", "must be pending, delivered, failed or suppressed")
    if request.HasField("next_job") and status != "pending":
        raise InvalidArgument.field("next_job", "only with status PENDING")
    delay = request.next_delay.ToTimedelta().total_seconds()
    if not 0 <= delay <= MAX_DELAY_SECONDS:
        raise InvalidArgument.field("next_delay", f"between 0 and {MAX_DELAY_SECONDS} seconds")
    attempt = request.attempt
    channel = attempt.channel or request.channel
    hop = None
    if request.HasField("attempt") and attempt.attempt > 0 and attempt.generation > 0 and channel:
        hop = Hop(attempt.generation, channel, attempt.attempt)
    if attempt.notification_id and attempt.notification_id != request.notification_id:
        raise InvalidArgument.field("attempt.notification_id", "differs from notification_id")
    return Report(
        status=status,
        hop=hop,
        error=request.error,
        channel=request.channel,
        timestamp=request.timestamp.ToDatetime(UTC) if request.HasField("timestamp") else None,
        next_job=request.next_job if request.HasField("next_job") else None,
        next_delay_seconds=delay,
    )


def attempt_record(
    request: status_pb2.ReportStatusRequest,
    notification_id: uuid.UUID,
    hop: Hop,
    report: Report,
    attempt_id: uuid.UUID | None,
) -> shared.AttemptRecord:
    """The trail row: the worker's attempt, or one made from the seed's payload; `hop` is
    the reported one, or the current one when the report names none."""
    now = datetime.now(UTC)
    attempt_id = attempt_id or uuid.uuid4()
    if not request.HasField("attempt"):
        return shared.AttemptRecord(
            id=attempt_id,
            notification_id=notification_id,
            channel=report.channel or hop.channel,
            provider="",
            outcome=OUTCOME_OF_STATUS[report.status],
            provider_message_id="",
            error=report.error[:MAX_TEXT],
            duration_us=0,
            start_time=report.timestamp or now,
            attempt=hop.attempt,
            generation=hop.generation,
            worker="",
            detail="reported without an attempt",
        )
    a = request.attempt
    return shared.AttemptRecord(
        id=attempt_id,
        notification_id=notification_id,
        channel=a.channel or report.channel or hop.channel,
        provider=a.provider[:200],
        outcome=a.outcome or OUTCOME_OF_STATUS[report.status],
        provider_message_id=a.provider_message_id[:500],
        error=(a.error or report.error)[:MAX_TEXT],
        duration_us=a.duration.ToMicroseconds(),
        start_time=a.start_time.ToDatetime(UTC) if a.HasField("start_time") else now,
        attempt=a.attempt or hop.attempt,
        generation=a.generation or hop.generation,
        worker=a.worker[:200],
        detail=a.detail[:MAX_TEXT],
    )
