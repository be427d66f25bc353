"""herald.v1.CallbackService over gRPC: protobuf in, a `CallbackEndpoints` or
`CallbackHistory` call, protobuf out; the REST edge's `/api/v1/callbacks` and
`/api/v1/notifications/{id}/callbacks` are the other doors to the same objects.

The caller is an API key or an internal service acting for a client (`gateway.callers`).
Each RPC checks its scope before reading the request, as the REST edge does, so a caller
without it is refused (PERMISSION_DENIED) whatever it sent; the domain checks it again.
"""

from __future__ import annotations

from datetime import timedelta

import grpc
from google.protobuf import json_format

from gateway.apikeys import Authenticator
from gateway.apikeys.scopes import Principal, Scope
from gateway.callbacks.endpoints import CallbackEndpoints
from gateway.callbacks.history import CallbackHistory, Delivery
from gateway.callbacks.model import EVENT_TYPE
from gateway.callers import Context, principal_in
from gateway.notifications.protos import parse_uuid, timestamp
from gateway.store.callbacks import Attempt, Endpoint
from gateway.wire import STATUS_NUMBERS
from herald.v1 import callback_pb2, callback_pb2_grpc, common_pb2
from mesh.errors import InvalidArgument
from mesh.runtime import GrpcService

SERVICE_NAME = callback_pb2.DESCRIPTOR.services_by_name["CallbackService"].full_name

# The endpoint's `events` as the domain names them and as CallbackEvents numbers.
EVENTS_NUMBERS: dict[str, callback_pb2.CallbackEvents.ValueType] = {
    "all": callback_pb2.CALLBACK_EVENTS_ALL,
    "final": callback_pb2.CALLBACK_EVENTS_FINAL,
}
EVENTS_NAMES: dict[int, str] = {
    callback_pb2.CALLBACK_EVENTS_UNSPECIFIED: "all",
    **{number: name for name, number in EVENTS_NUMBERS.items()},
}
STATE_NUMBERS: dict[str, callback_pb2.CallbackState.ValueType] = {
    "pending": callback_pb2.CALLBACK_STATE_PENDING,
    "delivered": callback_pb2.CALLBACK_STATE_DELIVERED,
    "failed": callback_pb2.CALLBACK_STATE_FAILED,
    "cancelled": callback_pb2.CALLBACK_STATE_CANCELLED,
}


def events_name(number: int) -> str:
    """A CallbackEvents as the domain names it (UNSPECIFIED: all)."""
    if number not in EVENTS_NAMES:
        raise InvalidArgument.field(
            "events", "must be CALLBACK_EVENTS_ALL or CALLBACK_EVENTS_FINAL"
        )
    return EVENTS_NAMES[number]


def status_number(name: str) -> common_pb2.NotificationStatus.ValueType:
    return STATUS_NUMBERS.get(name, common_pb2.NOTIFICATION_STATUS_UNSPECIFIED)


def endpoint_to_proto(endpoint: Endpoint) -> callback_pb2.CallbackEndpoint:
    return callback_pb2.CallbackEndpoint(
        id=str(endpoint.id),
        client_id=endpoint.client_id,
        url=endpoint.url,
        events=EVENTS_NUMBERS[endpoint.events],
        description=endpoint.description,
        create_time=timestamp(endpoint.create_time),
        failing_since=timestamp(endpoint.failing_since),
    )


def attempt_to_proto(attempt: Attempt) -> callback_pb2.CallbackAttempt:
    message = callback_pb2.CallbackAttempt(
        url=attempt.url,
        status_code=attempt.status_code or 0,
        error=attempt.error,
        attempt_time=timestamp(attempt.attempt_time),
    )
    message.duration.FromTimedelta(timedelta(milliseconds=attempt.duration_ms))
    return message


def delivery_to_proto(delivery: Delivery) -> callback_pb2.CallbackEvent:
    event = delivery.event
    pending = event.state == "pending"
    message = callback_pb2.CallbackEvent(
        id=str(event.id),
        endpoint_id=str(event.endpoint_id),
        status=status_number(event.status),
        state=STATE_NUMBERS.get(event.state, callback_pb2.CALLBACK_STATE_UNSPECIFIED),
        attempts=[attempt_to_proto(a) for a in delivery.attempts],
        last_error=event.last_error,
        next_attempt_time=timestamp(event.next_attempt_time if pending else None),
        body=callback_pb2.StatusCallback(
            id=str(event.id),
            type=EVENT_TYPE,
            notification_id=str(event.notification_id),
            request_id=event.request_id,
            status=status_number(event.status),
            previous_status=status_number(event.previous_status),
            channel=event.channel,  # type: ignore[arg-type]
            provider=event.provider,
            reason=event.reason,
            occur_time=timestamp(event.occur_time),
        ),
    )
    json_format.ParseDict(event.metadata, message.body.metadata)
    return message


class CallbackServicer(callback_pb2_grpc.CallbackServiceServicer):
    """Errors are `mesh.errors` exceptions, mapped to status codes by the interceptor."""

    def __init__(
        self,
        endpoints: CallbackEndpoints,
        history: CallbackHistory,
        authenticator: Authenticator,
    ) -> None:
        self._endpoints = endpoints
        self._history = history
        self._authenticator = authenticator

    async def _caller(self, context: Context, scope: Scope) -> Principal:
        principal = await principal_in(context, self._authenticator)
        principal.require(scope)
        return principal

    async def CreateCallback(
        self, request: callback_pb2.CreateCallbackRequest, context: Context
    ) -> callback_pb2.CreateCallbackResponse:
        principal = await self._caller(context, Scope.CALLBACKS_WRITE)
        registered = await self._endpoints.create(
            principal,
            url=request.url,
            events=events_name(request.events),
            description=request.description,
            client_id=request.client_id or None,
        )
        return callback_pb2.CreateCallbackResponse(
            endpoint=endpoint_to_proto(registered.endpoint), secret=registered.secret
        )

    async def ListCallbacks(
        self, request: callback_pb2.ListCallbacksRequest, context: Context
    ) -> callback_pb2.ListCallbacksResponse:
        principal = await self._caller(context, Scope.CALLBACKS_WRITE)
        found = await self._endpoints.list(principal, request.client_id or None)
        return callback_pb2.ListCallbacksResponse(endpoints=[endpoint_to_proto(e) for e in found])

    async def GetCallback(
        self, request: callback_pb2.GetCallbackRequest, context: Context
    ) -> callback_pb2.GetCallbackResponse:
        principal = await self._caller(context, Scope.CALLBACKS_WRITE)
        endpoint = await self._endpoints.get(principal, parse_uuid(request.id, "id"))
        return callback_pb2.GetCallbackResponse(endpoint=endpoint_to_proto(endpoint))

    async def DeleteCallback(
        self, request: callback_pb2.DeleteCallbackRequest, context: Context
    ) -> callback_pb2.DeleteCallbackResponse:
        principal = await self._caller(context, Scope.CALLBACKS_WRITE)
        cancelled = await self._endpoints.delete(principal, parse_uuid(request.id, "id"))
        return callback_pb2.DeleteCallbackResponse(cancelled_callbacks=cancelled)

    async def RotateCallbackSecret(
        self, request: callback_pb2.RotateCallbackSecretRequest, context: Context
    ) -> callback_pb2.RotateCallbackSecretResponse:
        principal = await self._caller(context, Scope.CALLBACKS_WRITE)
        overlap = (
            timedelta(seconds=request.overlap_seconds)
            if request.HasField("overlap_seconds")
            else None  # the domain's default
        )
        registered = await self._endpoints.rotate(
            principal, parse_uuid(request.id, "id"), overlap=overlap
        )
        return callback_pb2.RotateCallbackSecretResponse(
            endpoint=endpoint_to_proto(registered.endpoint), secret=registered.secret
        )

    async def ListNotificationCallbacks(
        self, request: callback_pb2.ListNotificationCallbacksRequest, context: Context
    ) -> callback_pb2.ListNotificationCallbacksResponse:
        principal = await self._caller(context, Scope.NOTIFICATIONS_READ)
        deliveries = await self._history.of(
            principal, parse_uuid(request.notification_id, "notification_id")
        )
        return callback_pb2.ListNotificationCallbacksResponse(
            events=[delivery_to_proto(d) for d in deliveries]
        )


def service(servicer: CallbackServicer) -> GrpcService:
    """The servicer as the runtime mounts it."""

    def register(server: grpc.aio.Server) -> None:
        callback_pb2_grpc.add_CallbackServiceServicer_to_server(servicer, server)

    return GrpcService(SERVICE_NAME, register)
