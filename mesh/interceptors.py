"""gRPC server interceptors: correlation id, access log, service token, error mapping.

Each wraps the unary-unary behaviour of a handler; streaming handlers (health Watch,
reflection) pass through untouched.
"""

from __future__ import annotations

import hmac
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
import structlog
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from mesh.errors import DomainError, InvalidArgument
from mesh.logging import bind_correlation_id
from mesh.metrics import GRPC_LATENCY, GRPC_REQUESTS

CORRELATION_HEADER = "x-correlation-id"
TOKEN_HEADER = "authorization"
# The client an internal service acts for (the gateway's NotificationService).
CLIENT_HEADER = "x-herald-client-id"
OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
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


def _wrap(
    handler: Handler | None,
    wrapper: Callable[[Behavior], Behavior],
) -> Handler | None:
    if handler is None or handler.unary_unary is None:
        return handler
    behavior: Behavior = handler.unary_unary  # type: ignore[assignment]
    return grpc.unary_unary_rpc_method_handler(
        wrapper(behavior),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class CorrelationIdInterceptor(grpc.aio.ServerInterceptor):
    """Binds the caller's `x-correlation-id` (or a new one) to every log line of the call."""

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        correlation_id = _metadata(handler_call_details, CORRELATION_HEADER) or uuid.uuid4().hex

        def wrapper(behavior: Behavior) -> Behavior:
            async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                bind_correlation_id(correlation_id)
                return await behavior(request, context)

            return run

        return _wrap(await continuation(handler_call_details), wrapper)


class AccessLogInterceptor(grpc.aio.ServerInterceptor):
    """One log line and one metric sample per call: method, code, duration."""

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        method = handler_call_details.method
        # Probes call health every few seconds: count them, but keep them out of the log.
        quiet = method.startswith(OPEN_METHOD_PREFIXES)

        def wrapper(behavior: Behavior) -> Behavior:
            async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                started = time.perf_counter()
                code = grpc.StatusCode.OK
                try:
                    return await behavior(request, context)
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

            return run

        return _wrap(await continuation(handler_call_details), wrapper)


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

        def wrapper(_: Behavior) -> Behavior:
            async def deny(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                await context.abort(
                    grpc.StatusCode.UNAUTHENTICATED, "missing or invalid service token"
                )

            return deny

        return _wrap(handler, wrapper)


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    """Turns `DomainError`s into status codes (field violations as google.rpc.BadRequest)
    and any other exception into INTERNAL without leaking its text."""

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        method = handler_call_details.method

        def wrapper(behavior: Behavior) -> Behavior:
            async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                try:
                    return await behavior(request, context)
                except DomainError as exc:
                    status = to_grpc_status(exc)
                    await context.abort(status.code, status.details, status.trailing_metadata)
                except grpc.aio.AbortError:
                    raise
                except Exception:
                    log.exception("unhandled error", method=method)
                    await context.abort(grpc.StatusCode.INTERNAL, "internal error")

            return run

        return _wrap(await continuation(handler_call_details), wrapper)


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
