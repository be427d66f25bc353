"""Notifications and status reports: JSON ⇄ the gateway's notification and status domain."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.http.convert.common import (
    CHANNEL_NAMES,
    CHANNELS,
    MESSAGE_TYPE_NAMES,
    PRIORITY_NUMBERS,
    plain_numbers,
    text,
)
from gateway.http.errors import ApiError
from gateway.http.schemas.common import ErrorDetail, FieldErrorOut
from gateway.http.schemas.notifications import (
    BatchItem,
    BatchResult,
    DeliveryAttemptOut,
    NotificationAccepted,
    NotificationCreate,
    NotificationOut,
    ReceiptOut,
    RetryOut,
    StatusReport,
    StatusReported,
)
from gateway.notifications.model import (
    Accepted,
    NewSend,
    NotificationRecord,
    Outcome,
    Priority,
)
from gateway.status.reports import Report
from gateway.status.service import ReportOutcome
from gateway.store.notifications import AttemptRecord
from gateway.store.receipts import ReceiptRecord
from herald.v1 import delivery_pb2

# Domain field names that the JSON spells differently, for error paths.
RENAMES = {"channel": "notification_type", "requests": "notifications"}

_OUTCOMES: dict[int, Any] = {
    delivery_pb2.ATTEMPT_OUTCOME_DELIVERED: "delivered",
    delivery_pb2.ATTEMPT_OUTCOME_TRANSIENT_FAILURE: "transient_failure",
    delivery_pb2.ATTEMPT_OUTCOME_PERMANENT_FAILURE: "permanent_failure",
    delivery_pb2.ATTEMPT_OUTCOME_SKIPPED: "skipped",
    delivery_pb2.ATTEMPT_OUTCOME_REPORTED: "reported",
    delivery_pb2.ATTEMPT_OUTCOME_HELD: "held",
    delivery_pb2.ATTEMPT_OUTCOME_RELEASED: "released",
    delivery_pb2.ATTEMPT_OUTCOME_CANCELLED: "cancelled",
    delivery_pb2.ATTEMPT_OUTCOME_CAPPED: "capped",
}


def new_send(body: NotificationCreate) -> NewSend:
    return NewSend(
        user_id=body.user_id,
        channel=body.notification_type,
        template_code=body.template_code,
        variables=body.variables,
        request_id=body.request_id or "",
        priority=Priority(body.priority),
        message_type=body.message_type or "transactional",
        metadata=body.metadata,
        language=body.language or "",
        template_version=body.template_version or 0,
        send_at=body.send_at,
        quiet_hours=body.quiet_hours or "",
    )


def accepted(answer: Accepted) -> NotificationAccepted:
    return NotificationAccepted(
        notification_id=str(answer.notification_id),
        status=answer.status,
        duplicate=answer.duplicate,
    )


def _item_error(error: ApiError) -> ErrorDetail:
    return ErrorDetail(
        code=error.code,
        message=error.message,
        fields=[FieldErrorOut(field=f.field, description=f.description) for f in error.fields],
    )


def batch_result(outcomes: list[Outcome], size: int) -> BatchResult:
    items: list[BatchItem] = []
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, Accepted):
            items.append(
                BatchItem(
                    index=index,
                    notification_id=str(outcome.notification_id),
                    status=outcome.status,
                    duplicate=outcome.duplicate,
                    error=None,
                )
            )
        else:
            items.append(
                BatchItem(
                    index=index,
                    notification_id=None,
                    status=None,
                    duplicate=None,
                    error=_item_error(ApiError.from_domain(outcome, RENAMES)),
                )
            )
    if len(items) != size:
        raise ApiError(500, "INTERNAL", "internal error")
    accepted_count = sum(1 for i in items if i.error is None)
    return BatchResult(accepted=accepted_count, rejected=size - accepted_count, results=items)


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def _receipt(receipt: ReceiptRecord) -> ReceiptOut:
    return ReceiptOut(
        event=receipt.event,
        reason=text(receipt.reason),
        code=text(receipt.code),
        occurred_at=receipt.occur_time.astimezone(UTC),
        received_at=receipt.receive_time.astimezone(UTC),
        effect=receipt.effect,
    )


def _attempt(attempt: AttemptRecord, receipts: list[ReceiptRecord]) -> DeliveryAttemptOut:
    return DeliveryAttemptOut(
        id=str(attempt.id),
        channel=CHANNEL_NAMES.get(attempt.channel),
        provider=text(attempt.provider),
        outcome=_OUTCOMES.get(attempt.outcome),
        provider_message_id=text(attempt.provider_message_id),
        error=text(attempt.error),
        detail=text(attempt.detail),
        duration_ms=attempt.duration_us / 1000,
        started_at=_utc(attempt.start_time),
        attempt=attempt.attempt,
        generation=attempt.generation,
        worker=text(attempt.worker),
        receipts=[_receipt(r) for r in receipts],
    )


def notification(value: NotificationRecord) -> NotificationOut:
    return NotificationOut(
        id=str(value.id),
        user_id=str(value.user_id),
        notification_type=CHANNEL_NAMES.get(value.channel),
        route=[CHANNEL_NAMES[c] for c in value.route if c in CHANNEL_NAMES],
        template_code=value.template_code,
        template_version=value.template_version or None,
        language=text(value.language),
        request_id=text(value.request_id),
        priority=PRIORITY_NUMBERS.get(value.priority),
        message_type=MESSAGE_TYPE_NAMES.get(value.message_type),
        metadata=plain_numbers(value.metadata),
        status=value.status,
        status_reason=text(value.status_reason),
        delivered_channel=CHANNEL_NAMES.get(value.delivered_channel),
        delivered_provider=text(value.delivered_provider),
        provider_message_id=text(value.provider_message_id),
        attempts=[_attempt(a, value.receipts_of(a.id)) for a in value.attempts],
        retries=[
            RetryOut(
                requested_by=r.requested_by,
                reason=text(r.reason),
                generation=r.generation,
                requested_at=_utc(r.request_time),
            )
            for r in value.retries
        ],
        created_at=_utc(value.create_time),
        updated_at=_utc(value.update_time),
        delivered_at=_utc(value.deliver_time),
        send_at=_utc(value.send_at),
    )


def report(channel: str, body: StatusReport, *, reporter: str, owner: str | None) -> Report:
    return Report.external(
        reporter=reporter,
        owner=owner,
        notification_id=body.notification_id,
        status=body.status,
        error=body.error or "",
        channel=CHANNELS[channel],
        timestamp=body.timestamp.astimezone(UTC) if body.timestamp else None,
    )


def reported(notification_id: str, outcome: ReportOutcome) -> StatusReported:
    return StatusReported(
        notification_id=notification_id,
        status=outcome.status,
        changed=outcome.changed,
    )
