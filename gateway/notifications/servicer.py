"""herald.v1.NotificationService over gRPC: protobuf in, a domain call, protobuf out.

Who calls is `gateway.callers`: an API key's principal, else an internal service acting
for the client it names (sending, reading and retrying that client's notifications only).
The correlation id is the caller's `x-correlation-id`, else the notification's request_id,
else a new one; it is bound to every log line of the call and answered in the response's
initial metadata.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import UTC

import grpc

from gateway.apikeys import Authenticator
from gateway.apikeys.scopes import Scope
from gateway.callers import Context, metadata_of, principal_in, principal_of
from gateway.notifications import protos
from gateway.notifications.accept import Acceptor
from gateway.notifications.model import Caller, NewSend, Outcome
from gateway.notifications.service import Notifications
from gateway.notifications.watch import Watching
from herald.v1 import notification_pb2, notification_pb2_grpc
from mesh import rules
from mesh.errors import DomainError, FieldViolation, InvalidArgument
from mesh.interceptors import CORRELATION_HEADER
from mesh.item_errors import to_item_error
from mesh.logging import bind_correlation_id, current_correlation_id
from mesh.runtime import GrpcService

SERVICE_NAME = notification_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name


def _correlation(value: str) -> bool:
    return rules.matches(rules.REQUEST_ID, value, rules.MAX_REQUEST_ID)


async def caller_of(
    context: Context, authenticator: Authenticator, needs: Scope, request_id: str = ""
) -> Caller:
    """The caller, holding `needs` (checked before the request is read), and the
    correlation id; answers the id in initial metadata."""
    metadata = metadata_of(context)
    principal = await principal_of(metadata, authenticator)
    principal.require(needs)
    given = metadata.get(CORRELATION_HEADER, "")
    if not _correlation(given):
        given = ""
    if given:
        correlation_id = given
    elif _correlation(request_id):
        correlation_id = request_id
    else:
        correlation_id = current_correlation_id() or ""
    if correlation_id:
        bind_correlation_id(correlation_id)
        await context.send_initial_metadata(((CORRELATION_HEADER, correlation_id),))
    return Caller(principal=principal, correlation_id=correlation_id, given=bool(given))


def _reindexed(outcome: Outcome, sent: int, index: int) -> Outcome:
    """An item's outcome, its field names moved from its place among the items sent to
    the domain to its place in the request."""
    if sent == index or not isinstance(outcome, InvalidArgument):
        return outcome
    old, new = f"requests[{sent}].", f"requests[{index}]."
    return InvalidArgument(
        [
            FieldViolation(new + v.field.removeprefix(old), v.description)
            if v.field.startswith(old)
            else v
            for v in outcome.violations
        ]
    )


class NotificationServicer(notification_pb2_grpc.NotificationServiceServicer):
    """Errors are `mesh.errors` exceptions, mapped to status codes by the interceptor."""

    def __init__(
        self,
        acceptor: Acceptor,
        notifications: Notifications,
        authenticator: Authenticator,
        watching: Watching,
    ) -> None:
        self._acceptor = acceptor
        self._notifications = notifications
        self._authenticator = authenticator
        self._watching = watching

    def _from_proto(self, request: notification_pb2.SendRequest, prefix: str = "") -> NewSend:
        """The request as the domain's NewSend, or INVALID_ARGUMENT naming every field at
        fault (those the wire refused, and those the domain would)."""
        notification, problems = protos.send_from_proto(request, prefix)
        if problems:
            raise InvalidArgument(problems + self._acceptor.violations(notification, prefix))
        return notification

    async def Send(
        self, request: notification_pb2.SendRequest, context: Context
    ) -> notification_pb2.SendResponse:
        caller = await caller_of(
            context, self._authenticator, Scope.NOTIFICATIONS_SEND, request.request_id
        )
        notification = self._from_proto(request)
        accepted = await self._acceptor.send(notification=notification, caller=caller)
        return protos.accepted_to_proto(accepted)

    async def SendBatch(
        self, request: notification_pb2.SendBatchRequest, context: Context
    ) -> notification_pb2.SendBatchResponse:
        caller = await caller_of(context, self._authenticator, Scope.NOTIFICATIONS_SEND)
        self._acceptor.check_batch_size(len(request.requests))
        outcomes: list[Outcome | None] = [None] * len(request.requests)
        valid: list[tuple[int, NewSend]] = []
        for index, item in enumerate(request.requests):
            try:
                valid.append((index, self._from_proto(item, f"requests[{index}].")))
            except InvalidArgument as exc:
                outcomes[index] = exc
        if valid:
            answers = await self._acceptor.send_batch(
                notifications=[n for _, n in valid], caller=caller
            )
            for sent, ((index, _), answer) in enumerate(zip(valid, answers, strict=True)):
                outcomes[index] = _reindexed(answer, sent, index)
        results: list[notification_pb2.SendBatchResult] = []
        for index, outcome in enumerate(outcomes):
            if isinstance(outcome, DomainError):
                results.append(
                    notification_pb2.SendBatchResult(index=index, error=to_item_error(outcome))
                )
            elif outcome is not None:
                accepted = protos.accepted_to_proto(outcome)
                results.append(notification_pb2.SendBatchResult(index=index, accepted=accepted))
        return notification_pb2.SendBatchResponse(results=results)

    async def GetNotification(
        self, request: notification_pb2.GetNotificationRequest, context: Context
    ) -> notification_pb2.GetNotificationResponse:
        principal = await principal_in(context, self._authenticator)
        record = await self._notifications.get(
            notification_id=protos.parse_uuid(request.id, "id"), principal=principal
        )
        return notification_pb2.GetNotificationResponse(
            notification=protos.notification_to_proto(record)
        )

    async def ListNotifications(
        self, request: notification_pb2.ListNotificationsRequest, context: Context
    ) -> notification_pb2.ListNotificationsResponse:
        principal = await principal_in(context, self._authenticator)
        page = await self._notifications.list(
            principal=principal,
            user_id=protos.parse_uuid(request.user_id, "user_id") if request.user_id else None,
            status=protos.status_name(request.status),
            start_time=request.start_time.ToDatetime(UTC)
            if request.HasField("start_time")
            else None,
            end_time=request.end_time.ToDatetime(UTC) if request.HasField("end_time") else None,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return notification_pb2.ListNotificationsResponse(
            notifications=[protos.notification_to_proto(r) for r in page.notifications],
            next_page_token=page.next_page_token,
        )

    async def Retry(
        self, request: notification_pb2.RetryRequest, context: Context
    ) -> notification_pb2.RetryResponse:
        caller = await caller_of(context, self._authenticator, Scope.NOTIFICATIONS_SEND)
        record = await self._notifications.retry(
            notification_id=protos.parse_uuid(request.id, "id"),
            requested_by=request.requested_by,
            reason=request.reason,
            principal=caller.principal,
        )
        return notification_pb2.RetryResponse(notification=protos.notification_to_proto(record))

    async def Cancel(
        self, request: notification_pb2.CancelRequest, context: Context
    ) -> notification_pb2.CancelResponse:
        caller = await caller_of(context, self._authenticator, Scope.NOTIFICATIONS_SEND)
        record = await self._notifications.cancel(
            notification_id=protos.parse_uuid(request.id, "id"),
            principal=caller.principal,
            reason=request.reason,
        )
        return notification_pb2.CancelResponse(notification=protos.notification_to_proto(record))

    async def WatchNotification(
        self, request: notification_pb2.WatchNotificationRequest, context: Context
    ) -> AsyncIterator[notification_pb2.WatchNotificationResponse]:
        principal = await principal_in(context, self._authenticator)
        records = self._watching.notification(
            notification_id=protos.parse_uuid(request.id, "id"), principal=principal
        )
        async with aclosing(records):
            async for record in records:
                yield notification_pb2.WatchNotificationResponse(
                    notification=protos.notification_to_proto(record)
                )

    async def WatchNotifications(
        self, request: notification_pb2.WatchNotificationsRequest, context: Context
    ) -> AsyncIterator[notification_pb2.WatchNotificationsResponse]:
        principal = await principal_in(context, self._authenticator)
        records = self._watching.client(
            principal=principal,
            statuses=protos.status_names(request.statuses),
            # The response headers tell the caller the watch is in place.
            registered=lambda: context.send_initial_metadata(()),
        )
        async with aclosing(records):
            async for record in records:
                yield notification_pb2.WatchNotificationsResponse(
                    notification=protos.notification_to_proto(record)
                )


def service(servicer: NotificationServicer) -> GrpcService:
    """The servicer as the runtime mounts it."""

    def register(server: grpc.aio.Server) -> None:
        notification_pb2_grpc.add_NotificationServiceServicer_to_server(servicer, server)

    return GrpcService(SERVICE_NAME, register)
