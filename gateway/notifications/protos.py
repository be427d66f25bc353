"""herald.v1 NotificationService messages ⇄ the notification domain's dataclasses.

Wire-only checks live here: a field the proto leaves as a string or an enum number that
the domain types (a UUID, a channel name) is refused as INVALID_ARGUMENT naming it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from gateway.notifications.model import Accepted, NewSend, NotificationRecord, Priority
from gateway.store.notifications import AttemptRecord
from gateway.store.receipts import ReceiptRecord
from gateway.timing.quiet import QuietChoice
from gateway.wire import CHANNEL_NAMES, MESSAGE_TYPE_NAMES, STATUS_NUMBERS
from herald.v1 import common_pb2, delivery_pb2, notification_pb2
from mesh.errors import FieldViolation, InvalidArgument

QUIET_POLICIES: dict[int, QuietChoice] = {
    notification_pb2.QUIET_HOURS_POLICY_UNSPECIFIED: "",
    notification_pb2.QUIET_HOURS_POLICY_RESPECT: "respect",
    notification_pb2.QUIET_HOURS_POLICY_BYPASS: "bypass",
}


def parse_uuid(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument.field(field, "not a UUID") from None


def plain(value: struct_pb2.Value) -> Any:
    """A Struct value as Python; numbers stay doubles, even when not finite (the domain
    refuses those where it must, naming the field)."""
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return {k: plain(v) for k, v in value.struct_value.fields.items()}
    if kind == "list_value":
        return [plain(v) for v in value.list_value.values]
    if kind == "number_value":
        return value.number_value
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    return None


def struct_dict(value: struct_pb2.Struct) -> dict[str, Any]:
    return {k: plain(v) for k, v in value.fields.items()}


def send_from_proto(
    request: notification_pb2.SendRequest, prefix: str = ""
) -> tuple[NewSend, list[FieldViolation]]:
    """The SendRequest as a NewSend, and the wire fields it cannot carry (each replaced
    by its default, so that the domain can still name what else is at fault)."""
    problems: list[FieldViolation] = []
    user_id = uuid.UUID(int=0)
    if not request.user_id:
        problems.append(FieldViolation(prefix + "user_id", "required"))
    else:
        try:
            user_id = uuid.UUID(request.user_id)
        except ValueError:
            problems.append(FieldViolation(prefix + "user_id", "not a UUID"))
    channel = CHANNEL_NAMES.get(request.channel)
    if channel is None:
        problems.append(FieldViolation(prefix + "channel", "must be email, sms or push"))
    priority = Priority.NORMAL
    if request.priority:
        if int(request.priority) in tuple(Priority):
            priority = Priority(request.priority)
        else:
            problems.append(FieldViolation(prefix + "priority", "unknown priority"))
    message_type = "transactional"
    if request.message_type:
        if request.message_type in MESSAGE_TYPE_NAMES:
            message_type = MESSAGE_TYPE_NAMES[request.message_type]
        else:
            problems.append(FieldViolation(prefix + "message_type", "unknown message type"))
    quiet_hours = QUIET_POLICIES.get(request.quiet_hours)
    if quiet_hours is None:
        problems.append(FieldViolation(prefix + "quiet_hours", "unknown quiet hours policy"))
    send_at = request.send_at.ToDatetime(UTC) if request.HasField("send_at") else None
    send = NewSend(
        user_id=user_id,
        channel=channel or "email",  # type: ignore[arg-type]
        template_code=request.template_code,
        variables=struct_dict(request.variables),
        request_id=request.request_id,
        priority=priority,
        message_type=message_type,  # type: ignore[arg-type]
        metadata=struct_dict(request.metadata),
        language=request.language,
        template_version=request.template_version,
        send_at=send_at,
        quiet_hours=quiet_hours or "",
    )
    return send, problems


def accepted_to_proto(accepted: Accepted) -> notification_pb2.SendResponse:
    return notification_pb2.SendResponse(
        notification_id=str(accepted.notification_id),
        status=STATUS_NUMBERS[accepted.status],
        duplicate=accepted.duplicate,
    )


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp


def receipt_to_proto(receipt: ReceiptRecord) -> delivery_pb2.DeliveryReceipt:
    return delivery_pb2.DeliveryReceipt(
        event=receipt.event,
        reason=receipt.reason,
        code=receipt.code,
        occur_time=timestamp(receipt.occur_time),
        receive_time=timestamp(receipt.receive_time),
        effect=receipt.effect,
    )


def attempt_to_proto(
    attempt: AttemptRecord, receipts: Sequence[ReceiptRecord] = ()
) -> delivery_pb2.DeliveryAttempt:
    message = delivery_pb2.DeliveryAttempt(
        id=str(attempt.id),
        notification_id=str(attempt.notification_id),
        channel=attempt.channel,  # type: ignore[arg-type]
        provider=attempt.provider,
        outcome=attempt.outcome,  # type: ignore[arg-type]
        provider_message_id=attempt.provider_message_id,
        error=attempt.error,
        start_time=timestamp(attempt.start_time),
        attempt=attempt.attempt,
        generation=attempt.generation,
        worker=attempt.worker,
        detail=attempt.detail,
        receipts=[receipt_to_proto(r) for r in receipts],
    )
    message.duration.FromMicroseconds(attempt.duration_us)
    return message


def notification_to_proto(record: NotificationRecord) -> notification_pb2.Notification:
    message = notification_pb2.Notification(
        id=str(record.id),
        user_id=str(record.user_id),
        channel=record.channel,  # type: ignore[arg-type]
        route=record.route,  # type: ignore[arg-type]
        template_code=record.template_code,
        template_version=record.template_version,
        language=record.language,
        request_id=record.request_id,
        priority=record.priority,  # type: ignore[arg-type]
        message_type=record.message_type,  # type: ignore[arg-type]
        status=STATUS_NUMBERS[record.status],
        status_reason=record.status_reason,
        delivered_channel=record.delivered_channel,  # type: ignore[arg-type]
        delivered_provider=record.delivered_provider,
        provider_message_id=record.provider_message_id,
        attempts=[attempt_to_proto(a, record.receipts_of(a.id)) for a in record.attempts],
        retries=[
            notification_pb2.RetryRecord(
                requested_by=r.requested_by,
                reason=r.reason,
                generation=r.generation,
                request_time=timestamp(r.request_time),
            )
            for r in record.retries
        ],
        create_time=timestamp(record.create_time),
        update_time=timestamp(record.update_time),
        deliver_time=timestamp(record.deliver_time),
        client_id=record.client_id,
        send_at=timestamp(record.send_at),
    )
    json_format.ParseDict(record.metadata, message.metadata)
    return message


def status_name(number: int) -> str | None:
    """A NotificationStatus filter as the domain names it (None: no filter)."""
    if number == common_pb2.NOTIFICATION_STATUS_UNSPECIFIED:
        return None
    for name, known in STATUS_NUMBERS.items():
        if known == number:
            return name
    raise InvalidArgument.field("status", "unknown status")


def status_names(numbers: Sequence[int]) -> frozenset[str]:
    """A repeated NotificationStatus filter as the domain names it (empty: no filter);
    INVALID_ARGUMENT names each entry that is no status."""
    names: set[str] = set()
    problems: list[FieldViolation] = []
    by_number = {int(number): name for name, number in STATUS_NUMBERS.items()}
    for index, number in enumerate(numbers):
        if number in by_number:
            names.add(by_number[number])
        else:
            problems.append(FieldViolation(f"statuses[{index}]", "not a status"))
    if problems:
        raise InvalidArgument(problems)
    return frozenset(names)
