"""Notifications and status reports: JSON ⇄ herald.v1 NotificationService/StatusService."""

from __future__ import annotations

from typing import Any

import grpc

from gateway.http.convert.common import (
    CHANNEL_NAMES,
    CHANNELS,
    MESSAGE_TYPE_NAMES,
    MESSAGE_TYPES,
    PRIORITIES,
    PRIORITY_NUMBERS,
    STATUSES,
    from_struct,
    status_name,
    struct,
    text,
    timestamp,
    when,
)
from gateway.http.errors import GRPC_TO_HTTP, ApiError, FieldError, rename_field
from gateway.http.schemas.common import ErrorDetail, FieldErrorOut
from gateway.http.schemas.notifications import (
    BatchItem,
    BatchResult,
    DeliveryAttemptOut,
    NotificationAccepted,
    NotificationCreate,
    NotificationOut,
    NotificationQuery,
    RetryOut,
    StatusReport,
    StatusReported,
)
from herald.v1 import common_pb2, delivery_pb2, notification_pb2, status_pb2

# Proto field names that the JSON spells differently, for error paths.
RENAMES = {"channel": "notification_type", "requests": "notifications"}

_CODES = {code.value[0]: code for code in grpc.StatusCode}
_OUTCOMES: dict[int, Any] = {
    delivery_pb2.ATTEMPT_OUTCOME_DELIVERED: "delivered",
    delivery_pb2.ATTEMPT_OUTCOME_TRANSIENT_FAILURE: "transient_failure",
    delivery_pb2.ATTEMPT_OUTCOME_PERMANENT_FAILURE: "permanent_failure",
    delivery_pb2.ATTEMPT_OUTCOME_SKIPPED: "skipped",
}


def send_request(body: NotificationCreate) -> notification_pb2.SendRequest:
    return notification_pb2.SendRequest(
        user_id=str(body.user_id),
        channel=CHANNELS[body.notification_type],
        template_code=body.template_code,
        variables=struct(body.variables),
        request_id=body.request_id or "",
        priority=PRIORITIES[body.priority],
        message_type=(
            MESSAGE_TYPES[body.message_type]
            if body.message_type
            else common_pb2.MESSAGE_TYPE_UNSPECIFIED
        ),
        metadata=struct(body.metadata),
        language=body.language or "",
        template_version=body.template_version or 0,
    )


def accepted(answer: notification_pb2.SendResponse) -> NotificationAccepted:
    return NotificationAccepted(
        notification_id=answer.notification_id,
        status=status_name(answer.status),
        duplicate=answer.duplicate,
    )


def _item_error(error: common_pb2.ItemError) -> ErrorDetail:
    code = _CODES.get(error.code, grpc.StatusCode.UNKNOWN)
    rule = GRPC_TO_HTTP.get(code)
    fields = [
        FieldError(rename_field(v.field, RENAMES), v.description) for v in error.field_violations
    ]
    message = (rule.public if rule and rule.public else None) or error.message or code.name
    return ErrorDetail(
        code=code.name,
        message=message,
        fields=[FieldErrorOut(field=f.field, description=f.description) for f in fields],
    )


def batch_result(answer: notification_pb2.SendBatchResponse, size: int) -> BatchResult:
    items: list[BatchItem] = []
    for result in sorted(answer.results, key=lambda r: r.index):
        if result.WhichOneof("result") == "accepted":
            items.append(
                BatchItem(
                    index=result.index,
                    notification_id=result.accepted.notification_id,
                    status=status_name(result.accepted.status),
                    duplicate=result.accepted.duplicate,
                    error=None,
                )
            )
        else:
            items.append(
                BatchItem(
                    index=result.index,
                    notification_id=None,
                    status=None,
                    duplicate=None,
                    error=_item_error(result.error),
                )
            )
    if len(items) != size:
        raise ApiError(500, "INTERNAL", "internal error")
    accepted_count = sum(1 for i in items if i.error is None)
    return BatchResult(accepted=accepted_count, rejected=size - accepted_count, results=items)


def _attempt(attempt: delivery_pb2.DeliveryAttempt) -> DeliveryAttemptOut:
    duration = attempt.duration
    return DeliveryAttemptOut(
        id=attempt.id,
        channel=CHANNEL_NAMES.get(attempt.channel),
        provider=text(attempt.provider),
        outcome=_OUTCOMES.get(attempt.outcome),
        provider_message_id=text(attempt.provider_message_id),
        error=text(attempt.error),
        detail=text(attempt.detail),
        duration_ms=(
            duration.seconds * 1000 + duration.nanos / 1e6 if attempt.HasField("duration") else None
        ),
        started_at=when(attempt.start_time),
        attempt=attempt.attempt,
        generation=attempt.generation,
    )


def notification(value: notification_pb2.Notification) -> NotificationOut:
    return NotificationOut(
        id=value.id,
        user_id=value.user_id,
        notification_type=CHANNEL_NAMES.get(value.channel),
        route=[CHANNEL_NAMES[c] for c in value.route if c in CHANNEL_NAMES],
        template_code=value.template_code,
        template_version=value.template_version or None,
        language=text(value.language),
        request_id=text(value.request_id),
        priority=PRIORITY_NUMBERS.get(value.priority),
        message_type=MESSAGE_TYPE_NAMES.get(value.message_type),
        metadata=from_struct(value.metadata),
        status=status_name(value.status),
        status_reason=text(value.status_reason),
        delivered_channel=CHANNEL_NAMES.get(value.delivered_channel),
        delivered_provider=text(value.delivered_provider),
        provider_message_id=text(value.provider_message_id),
        attempts=[_attempt(a) for a in value.attempts],
        retries=[
            RetryOut(
                requested_by=r.requested_by,
                reason=text(r.reason),
                generation=r.generation,
                requested_at=when(r.request_time),
            )
            for r in value.retries
        ],
        created_at=when(value.create_time),
        updated_at=when(value.update_time),
        delivered_at=when(value.deliver_time),
    )


def list_request(query: NotificationQuery) -> notification_pb2.ListNotificationsRequest:
    request = notification_pb2.ListNotificationsRequest(
        user_id=str(query.user_id) if query.user_id else "",
        status=(
            STATUSES[query.status] if query.status else common_pb2.NOTIFICATION_STATUS_UNSPECIFIED
        ),
        page_size=query.page_size,
        page_token=query.page_token or "",
    )
    if query.created_after:
        request.start_time.CopyFrom(timestamp(query.created_after))
    if query.created_before:
        request.end_time.CopyFrom(timestamp(query.created_before))
    return request


def report_request(channel: str, body: StatusReport) -> status_pb2.ReportStatusRequest:
    request = status_pb2.ReportStatusRequest(
        notification_id=str(body.notification_id),
        status=STATUSES[body.status],
        error=body.error or "",
        channel=CHANNELS[channel],
    )
    if body.timestamp:
        request.timestamp.CopyFrom(timestamp(body.timestamp))
    return request


def reported(notification_id: str, answer: status_pb2.ReportStatusResponse) -> StatusReported:
    return StatusReported(
        notification_id=notification_id, status=status_name(answer.status), changed=answer.changed
    )
