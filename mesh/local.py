"""In-process gRPC: a channel whose calls run a servicer of the same process directly.

The gateway's REST edge translates to NotificationService and StatusService, which live in
the same process. A loopback call would pay a whole gRPC round trip (serialization, HTTP/2
on both sides, the server's interceptors and access log) to reach an object next door. A
`LocalChannel` hands the request message to the servicer's method as the server's
interceptors would (the caller's identity and correlation id in the invocation metadata,
a task of its own, the deadline) and fails with the `AioRpcError` a remote call would
raise (domain errors as rich statuses), so generated stubs and their callers work
unchanged over either channel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import grpc
import structlog
from google.protobuf.descriptor import ServiceDescriptor

from mesh.errors import DomainError, rpc_error
from mesh.interceptors import CORRELATION_HEADER, to_grpc_status
from mesh.logging import current_correlation_id

log = structlog.get_logger("mesh.local")

Handler = Callable[[Any, Any], Awaitable[Any]]
MetadataType = grpc.aio.Metadata | Sequence[tuple[str, str | bytes]] | None


class LocalContext:
    """The part of `grpc.aio.ServicerContext` Herald's servicers use."""

    def __init__(self, metadata: tuple[tuple[str, str | bytes], ...]) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return self._metadata

    async def send_initial_metadata(self, metadata: Sequence[tuple[str, str]]) -> None:
        """Nothing to send: the in-process caller reads its correlation id from context."""


class LocalUnary(grpc.aio.UnaryUnaryMultiCallable):  # type: ignore[type-arg]
    """One method of a local servicer, called like a stub's multicallable."""

    def __init__(self, method: str, handler: Handler) -> None:
        self._method = method
        self._handler = handler

    async def __call__(  # type: ignore[override]
        self,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: MetadataType = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        pairs = tuple(metadata or ())
        correlation_id = current_correlation_id()
        if correlation_id and not any(k == CORRELATION_HEADER for k, _ in pairs):
            pairs += ((CORRELATION_HEADER, correlation_id),)
        # A task of its own, as on a server: its context variables stay its own, and a
        # deadline or the caller's cancellation cancels it.
        task = asyncio.ensure_future(self._handler(request, LocalContext(pairs)))
        try:
            async with asyncio.timeout(timeout):
                return await task
        except DomainError as exc:
            status = to_grpc_status(exc)
            raise rpc_error(status.code, status.details, status.trailing_metadata) from None
        except TimeoutError:
            raise rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        except Exception:
            log.exception("unhandled error", method=self._method)
            raise rpc_error(grpc.StatusCode.INTERNAL, "internal error") from None


class LocalChannel(grpc.aio.Channel):
    """Serves the unary methods of in-process servicers; anything else is an error."""

    def __init__(self, servicers: Mapping[ServiceDescriptor, object]) -> None:
        self._handlers: dict[str, Handler] = {
            f"/{service.full_name}/{method.name}": getattr(servicer, method.name)
            for service, servicer in servicers.items()
            for method in service.methods
        }

    def unary_unary(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.UnaryUnaryMultiCallable[Any, Any]:
        return LocalUnary(method, self._handlers[method])

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("no streaming methods in process")

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("no streaming methods in process")

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("no streaming methods in process")

    async def __aenter__(self) -> LocalChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self, grace: float | None = None) -> None:
        """Nothing to close."""

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return grpc.ChannelConnectivity.READY

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await asyncio.Event().wait()  # a local channel never changes state

    async def channel_ready(self) -> None:
        """Always ready."""
