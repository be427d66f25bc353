"""The gRPC services behind the edge: one stub per service over one channel per peer,
and the one way routes call them (deadline, metadata, errors in the edge's shape)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import grpc

from gateway.http.errors import ApiError
from herald.v1 import (
    notification_pb2_grpc,
    status_pb2_grpc,
    template_pb2_grpc,
    user_pb2_grpc,
)

if TYPE_CHECKING:
    from herald.v1.notification_pb2_grpc import NotificationServiceAsyncStub
    from herald.v1.status_pb2_grpc import StatusServiceAsyncStub
    from herald.v1.template_pb2_grpc import TemplateServiceAsyncStub
    from herald.v1.user_pb2_grpc import UserServiceAsyncStub

Req = TypeVar("Req")
Resp = TypeVar("Resp")

CLIENT_ID_HEADER = "x-herald-client-id"


@dataclass(frozen=True)
class Backends:
    """Stubs of the four services the edge translates to, and the deadline of a call."""

    notifications: NotificationServiceAsyncStub
    status: StatusServiceAsyncStub
    users: UserServiceAsyncStub
    templates: TemplateServiceAsyncStub
    timeout: float

    @classmethod
    def over(
        cls,
        *,
        notifications: grpc.aio.Channel,
        users: grpc.aio.Channel,
        templates: grpc.aio.Channel,
        timeout: float,
    ) -> Backends:
        """Stubs over existing channels (NotificationService and StatusService share one)."""
        return cls(
            notifications=notification_pb2_grpc.NotificationServiceStub(notifications),
            status=status_pb2_grpc.StatusServiceStub(notifications),
            users=user_pb2_grpc.UserServiceStub(users),
            templates=template_pb2_grpc.TemplateServiceStub(templates),
            timeout=timeout,
        )


def client_metadata(client_id: str) -> Sequence[tuple[str, str]]:
    """Names the API client to NotificationService (idempotency keys are per client)."""
    return ((CLIENT_ID_HEADER, client_id),)


async def call(
    method: grpc.aio.UnaryUnaryMultiCallable[Req, Resp],
    request: Req,
    *,
    timeout: float,
    metadata: Sequence[tuple[str, str]] = (),
    renames: Mapping[str, str] | None = None,
) -> Resp:
    """One unary call with a deadline; a failure becomes the ApiError of the one table."""
    try:
        return await method(request, timeout=timeout, metadata=metadata or None)
    except grpc.aio.AioRpcError as exc:
        raise ApiError.from_rpc(exc, renames) from None
