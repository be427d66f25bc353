"""LocalChannel: a generated stub over in-process servicers behaves as over the network."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from herald.v1 import notification_pb2, notification_pb2_grpc
from mesh.errors import InvalidArgument, NotFound
from mesh.interceptors import CORRELATION_HEADER, field_violations
from mesh.local import LocalChannel
from mesh.logging import bind_correlation_id, current_correlation_id

SERVICE = notification_pb2.DESCRIPTOR.services_by_name["NotificationService"]


class Servicer(notification_pb2_grpc.NotificationServiceServicer):
    """Send answers by the request's user_id: what the test wants to see happen."""

    def __init__(self) -> None:
        self.seen: list[tuple[tuple[tuple[str, Any], ...], str | None]] = []
        self.cancelled = asyncio.Event()

    async def Send(
        self, request: notification_pb2.SendRequest, context: Any
    ) -> notification_pb2.SendResponse:
        self.seen.append((tuple(context.invocation_metadata()), current_correlation_id()))
        if request.user_id == "invalid":
            raise InvalidArgument.field("user_id", "not a UUID")
        if request.user_id == "missing":
            raise NotFound("user missing not found")
        if request.user_id == "crash":
            raise RuntimeError("secret detail")
        if request.user_id == "slow":
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        bind_correlation_id("set-by-the-handler")
        return notification_pb2.SendResponse(notification_id="n-1")


@pytest.fixture
def servicer() -> Servicer:
    return Servicer()


@pytest.fixture
def stub(servicer: Servicer) -> notification_pb2_grpc.NotificationServiceStub:
    return notification_pb2_grpc.NotificationServiceStub(LocalChannel({SERVICE: servicer}))


async def test_answers_and_passes_metadata_and_the_correlation_id(
    stub: Any, servicer: Servicer
) -> None:
    bind_correlation_id("edge-request-1")
    answer = await stub.Send(
        notification_pb2.SendRequest(user_id="ok"),
        timeout=1,
        metadata=(("x-herald-client-id", "client-7"),),
    )
    assert answer.notification_id == "n-1"
    [(metadata, correlation_id)] = servicer.seen
    assert ("x-herald-client-id", "client-7") in metadata
    assert (CORRELATION_HEADER, "edge-request-1") in metadata
    assert correlation_id == "edge-request-1"
    # The handler ran in a task of its own: what it bound stays there.
    assert current_correlation_id() == "edge-request-1"


async def test_domain_errors_arrive_as_rich_statuses(stub: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await stub.Send(notification_pb2.SendRequest(user_id="invalid"), timeout=1)
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(invalid.value) == [("user_id", "not a UUID")]
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.Send(notification_pb2.SendRequest(user_id="missing"), timeout=1)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert missing.value.details() == "user missing not found"


async def test_an_unexpected_error_is_internal_without_its_text(stub: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as crash:
        await stub.Send(notification_pb2.SendRequest(user_id="crash"), timeout=1)
    assert crash.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in (crash.value.details() or "")


async def test_the_deadline_cancels_the_handler(stub: Any, servicer: Servicer) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as late:
        await stub.Send(notification_pb2.SendRequest(user_id="slow"), timeout=0.05)
    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await asyncio.wait_for(servicer.cancelled.wait(), 1)


def test_streaming_is_refused() -> None:
    with pytest.raises(NotImplementedError):
        LocalChannel({}).unary_stream("/x/y")
