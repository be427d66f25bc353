"""gRPC server interceptors: correlation id, access log, service token, error mapping.

Each wraps the unary-unary behaviour of a handler, and the server-streaming one written
as an async generator (WatchNotification); other streaming handlers (health Watch,
reflection, both open to every caller) pass through untouched.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
import structlog
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from mesh.errors import DomainError, InvalidArgument, ResourceExhausted
from mesh.logging import bind_correlation_id
from mesh.metrics import GRPC_LATENCY, GRPC_REQUESTS

CORRELATION_HEADER = "x-correlation-id"
TOKEN_HEADER = "authorization"
# The client an internal service acts for (the gateway's NotificationService).
CLIENT_HEADER = "x-herald-client-id"
OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

Context = grpc.aio.ServicerContext[Any, Any]
# What an interceptor does around one call, unary or streaming: it may refuse the call
# (abort before yielding), set up its context, and see how the call ended.
Around = Callable[[Context], AbstractAsyncContextManager[None]]
if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
else:
    Handler = grpc.RpcMethodHandler
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]

log = structlog.get_logger("mesh.grpc")


def _metadata(details: grpc.HandlerCallDetails, key: str) -> str | None:
    for item_key, value in details.invocation_metadata or ():
        if item_key == key:
            return value if isinstance(value, str) else value.decode()
    return None


def _wrap(handler: Handler | None, around: Around) -> Handler | None:
    """The handler run inside `around`: a unary-unary one, or a server-streaming one
    written as an async generator (the stream's every message inside it). Others (the
    health Watch, reflection) are returned as they are."""
    if handler is None:
        return handler
    if handler.unary_unary is not None:
        behavior: Callable[[Any, Context], Awaitable[Any]] = handler.unary_unary  # type: ignore[assignment]

        async def unary(request: Any, context: Context) -> Any:
            async with around(context):
                return await behavior(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream is not None and inspect.isasyncgenfunction(handler.unary_stream):
        stream: Callable[[Any, Context], AsyncGenerator[Any]] = handler.unary_stream  # type: ignore[assignment]

        async def streaming(request: Any, context: Context) -> AsyncIterator[Any]:
            # aclosing: a stream abandoned between messages still runs its `finally`.
            async with around(context), aclosing(stream(request, context)) as responses:
                async for response in responses:
                    yield response

        return grpc.unary_stream_rpc_method_handler(
            streaming,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler


class CorrelationIdInterceptor(grpc.aio.ServerInterceptor):
    """Binds the caller's `x-correlation-id` (or a new one) to every log line of the call."""

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        correlation_id = _metadata(handler_call_details, CORRELATION_HEADER) or uuid.uuid4().hex

        @asynccontextmanager
        async def around(context: Context) -> AsyncIterator[None]:
            bind_correlation_id(correlation_id)
            yield

        return _wrap(await continuation(handler_call_details), around)


class AccessLogInterceptor(grpc.aio.ServerInterceptor):
    """One log line and one metric sample per call (a stream's when it ends): method,
    code, duration."""

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        method = handler_call_details.method
        # Probes call health every few seconds: count them, but keep them out of the log.
        quiet = method.startswith(OPEN_METHOD_PREFIXES)

        @asynccontextmanager
        async def around(context: Context) -> AsyncIterator[None]:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                yield
            except asyncio.CancelledError:
                # The caller went away (or its deadline passed): gRPC cancels the handler.
                code = grpc.StatusCode.CANCELLED
                raise
            except BaseException:
                code = context.code() or grpc.StatusCode.UNKNOWN  # type: ignore[unreachable]
                raise
            finally:
                elapsed = time.perf_counter() - started
                name = code.name if isinstance(code, grpc.StatusCode) else str(code)
                GRPC_REQUESTS.labels(method=method, code=name).inc()
                GRPC_LATENCY.labels(method=method).observe(elapsed)
                if not quiet:
                    log.info("rpc", method=method, code=name, ms=round(elapsed * 1000, 2))

        return _wrap(await continuation(handler_call_details), around)


class ServiceTokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls without the internal service token, except health and reflection."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler_call_details.method.startswith(OPEN_METHOD_PREFIXES):
            return handler
        presented = (_metadata(handler_call_details, TOKEN_HEADER) or "").encode()
        if hmac.compare_digest(presented, self._expected):
            return handler

        @asynccontextmanager
        async def deny(context: Context) -> AsyncIterator[None]:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid service token")
            yield  # type: ignore[unreachable]  # abort raises: the call never runs

        return _wrap(handler, deny)


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    """Turns `DomainError`s into status codes (field violations as google.rpc.BadRequest)
    and any other exception into INTERNAL without leaking its text."""

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        method = handler_call_details.method

        @asynccontextmanager
        async def around(context: Context) -> AsyncIterator[None]:
            try:
                yield
            except DomainError as exc:
                status = to_grpc_status(exc)
                await context.abort(status.code, status.details, status.trailing_metadata)
            except grpc.aio.AbortError:
                raise
            except Exception:
                log.exception("unhandled error", method=method)
                await context.abort(grpc.StatusCode.INTERNAL, "internal error")

        return _wrap(await continuation(handler_call_details), around)


# Violations one answer names: a status travels in trailing metadata, which a client
# refuses beyond its limit (8 KiB by default); the first ones tell the caller enough.
MAX_VIOLATIONS = 20


def to_grpc_status(exc: DomainError) -> grpc.Status:
    """A domain error as a rich gRPC status (details carry BadRequest field violations,
    at most MAX_VIOLATIONS of them)."""
    code_value = exc.code.value[0]
    status = status_pb2.Status(code=code_value, message=exc.message)
    if isinstance(exc, InvalidArgument):
        named = exc.violations[:MAX_VIOLATIONS]
        if len(exc.violations) > len(named):
            status.message = "; ".join(f"{v.field}: {v.description}" for v in named) + (
                f"; and {len(exc.violations) - len(named)} more"
            )
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description
                )
                for v in named
            ]
        )
        detail = any_pb2.Any()
        detail.Pack(bad_request)
        status.details.append(detail)
    if isinstance(exc, ResourceExhausted) and exc.retry_after is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(int(exc.retry_after * 1e9))
        detail = any_pb2.Any()
        detail.Pack(retry)
        status.details.append(detail)
    assert code_value != code_pb2.OK
    result: grpc.Status = rpc_status.to_status(status)
    return result


def field_violations(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    """The (field, description) pairs of an INVALID_ARGUMENT answer, for clients."""
    status = rpc_status.from_call(error)
    if status is None:
        return []
    out: list[tuple[str, str]] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            out.extend((v.field, v.description) for v in bad_request.field_violations)
    return out


def default_interceptors(token: str) -> list[grpc.aio.ServerInterceptor]:
    """The interceptor chain of every Herald server, outermost first."""
    return [
        CorrelationIdInterceptor(),
        AccessLogInterceptor(),
        ServiceTokenInterceptor(token),
        ErrorMappingInterceptor(),
    ]
