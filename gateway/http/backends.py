"""The other processes behind the edge (userd, templated): one stub per service over one
channel per peer, and the one way routes call them (deadline, errors in the edge's shape).
The gateway's own notifications and statuses are called in process (`gateway.core.Core`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import grpc

from gateway.http.errors import ApiError
from herald.v1 import template_pb2_grpc, user_pb2_grpc

if TYPE_CHECKING:
    from herald.v1.template_pb2_grpc import TemplateServiceAsyncStub
    from herald.v1.user_pb2_grpc import UserServiceAsyncStub

Req = TypeVar("Req")
Resp = TypeVar("Resp")


@dataclass(frozen=True)
class Backends:
    """Stubs of the two services the edge translates to, and the deadline of a call."""

    users: UserServiceAsyncStub
    templates: TemplateServiceAsyncStub
    timeout: float

    @classmethod
    def over(
        cls,
        *,
        users: grpc.aio.Channel,
        templates: grpc.aio.Channel,
        timeout: float,
    ) -> Backends:
        """Stubs over existing channels."""
        return cls(
            users=user_pb2_grpc.UserServiceStub(users),
            templates=template_pb2_grpc.TemplateServiceStub(templates),
            timeout=timeout,
        )


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
