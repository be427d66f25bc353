"""herald.v1.NotificationService over gRPC: protobuf in, a domain call, protobuf out.

Who calls: the API client id arrives in metadata `x-herald-client-id` (the REST edge sets
it from the API key); without it the caller is "internal". The correlation id is the
caller's `x-correlation-id` (the edge sends the client's X-Request-ID, else the body's
request_id), else the notification's request_id, else a new one; it is bound to every log
line of the call and answered in the response's initial metadata.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import json_format, timestamp_pb2

from gateway.notifications.accept import Acceptor
from gateway.notifications.items import Caller
from gateway.notifications.service import Notifications
from gateway.notifications.store import NotificationRecord
from gateway.notifications.validation import REQUEST_ID
from gateway.store import STATUS_NUMBERS, AttemptRecord
from herald.v1 import delivery_pb2, notification_pb2, notification_pb2_grpc
from mesh.errors import DomainError, InvalidArgument
from mesh.interceptors import CORRELATION_HEADER
from mesh.item_errors import to_item_error
from mesh.logging import bind_correlation_id, current_correlation_id
from mesh.runtime import GrpcService

SERVICE_NAME = notification_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name
CLIENT_HEADER = "x-herald-client-id"
INTERNAL_CLIENT = "internal"

Context = grpc.aio.ServicerContext[Any, Any]


async def caller_of(context: Context, request_id: str = "") -> Caller:
    """The calling client and correlation id; answers the id in initial metadata."""
    client_id = INTERNAL_CLIENT
    given = ""
    for key, value in context.invocation_metadata() or ():
        text = value if isinstance(value, str) else value.decode()
        if key == CLIENT_HEADER and text:
            client_id = text
        elif key == CORRELATION_HEADER and REQUEST_ID.match(text):
            given = text
    if len(client_id) > 200:
        raise InvalidArgument.field(CLIENT_HEADER, "at most 200 characters")
    if given:
        correlation_id = given
    elif REQUEST_ID.match(request_id):
        correlation_id = request_id
    else:
        correlation_id = current_correlation_id() or ""
    if correlation_id:
        bind_correlation_id(correlation_id)
        await context.send_initial_metadata(((CORRELATION_HEADER, correlation_id),))
    return Caller(client_id=client_id, correlation_id=correlation_id, given=bool(given))


def _timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp


def attempt_to_proto(attempt: AttemptRecord) -> delivery_pb2.DeliveryAttempt:
    message = delivery_pb2.DeliveryAttempt(
        id=str(attempt.id),
        notification_id=str(attempt.notification_id),
        channel=attempt.channel,  # type: ignore[arg-type]
        provider=attempt.provider,
        outcome=attempt.outcome,  # type: ignore[arg-type]
        provider_message_id=attempt.provider_message_id,
        error=attempt.error,
        start_time=_timestamp(attempt.start_time),
        attempt=attempt.attempt,
        generation=attempt.generation,
        worker=attempt.worker,
        detail=attempt.detail,
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
        status=STATUS_NUMBERS[record.status],  # type: ignore[arg-type]
        status_reason=record.status_reason,
        delivered_channel=record.delivered_channel,  # type: ignore[arg-type]
        delivered_provider=record.delivered_provider,
        provider_message_id=record.provider_message_id,
        attempts=[attempt_to_proto(a) for a in record.attempts],
        retries=[
            notification_pb2.RetryRecord(
                requested_by=r.requested_by,
                reason=r.reason,
                generation=r.generation,
                request_time=_timestamp(r.request_time),
            )
            for r in record.retries
        ],
        create_time=_timestamp(record.create_time),
        update_time=_timestamp(record.update_time),
        deliver_time=_timestamp(record.deliver_time),
        client_id=record.client_id,
    )
    json_format.ParseDict(record.metadata, message.metadata)
    return message


class NotificationServicer(notification_pb2_grpc.NotificationServiceServicer):
    """Errors are `mesh.errors` exceptions, mapped to status codes by the interceptor."""

    def __init__(self, acceptor: Acceptor, notifications: Notifications) -> None:
        self._acceptor = acceptor
        self._notifications = notifications

    async def Send(
        self, request: notification_pb2.SendRequest, context: Context
    ) -> notification_pb2.SendResponse:
        caller = await caller_of(context, request.request_id)
        accepted = await self._acceptor.send(request=request, caller=caller)
        return notification_pb2.SendResponse(
            notification_id=str(accepted.notification_id),
            status=STATUS_NUMBERS[accepted.status],  # type: ignore[arg-type]
            duplicate=accepted.duplicate,
        )

    async def SendBatch(
        self, request: notification_pb2.SendBatchRequest, context: Context
    ) -> notification_pb2.SendBatchResponse:
        caller = await caller_of(context)
        outcomes = await self._acceptor.send_batch(requests=request.requests, caller=caller)
        results: list[notification_pb2.SendBatchResult] = []
        for index, outcome in enumerate(outcomes):
            if isinstance(outcome, DomainError):
                results.append(
                    notification_pb2.SendBatchResult(index=index, error=to_item_error(outcome))
                )
            else:
                accepted = notification_pb2.SendResponse(
                    notification_id=str(outcome.notification_id),
                    status=STATUS_NUMBERS[outcome.status],  # type: ignore[arg-type]
                    duplicate=outcome.duplicate,
                )
                results.append(notification_pb2.SendBatchResult(index=index, accepted=accepted))
        return notification_pb2.SendBatchResponse(results=results)

    async def GetNotification(
        self, request: notification_pb2.GetNotificationRequest, context: Context
    ) -> notification_pb2.GetNotificationResponse:
        record = await self._notifications.get(notification_id=request.id)
        return notification_pb2.GetNotificationResponse(notification=notification_to_proto(record))

    async def ListNotifications(
        self, request: notification_pb2.ListNotificationsRequest, context: Context
    ) -> notification_pb2.ListNotificationsResponse:
        page = await self._notifications.list(
            user_id=request.user_id,
            status=request.status,
            start_time=request.start_time.ToDatetime(UTC)
            if request.HasField("start_time")
            else None,
            end_time=request.end_time.ToDatetime(UTC) if request.HasField("end_time") else None,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return notification_pb2.ListNotificationsResponse(
            notifications=[notification_to_proto(r) for r in page.notifications],
            next_page_token=page.next_page_token,
        )

    async def Retry(
        self, request: notification_pb2.RetryRequest, context: Context
    ) -> notification_pb2.RetryResponse:
        caller = await caller_of(context)
        record = await self._notifications.retry(
            notification_id=request.id,
            requested_by=request.requested_by,
            reason=request.reason,
            client_id=caller.client_id,
        )
        return notification_pb2.RetryResponse(notification=notification_to_proto(record))


def service(servicer: NotificationServicer) -> GrpcService:
    """The servicer as the runtime mounts it."""

    def register(server: grpc.aio.Server) -> None:
        notification_pb2_grpc.add_NotificationServiceServicer_to_server(servicer, server)

    return GrpcService(SERVICE_NAME, register)
