"""gRPC channels to other Herald services, carrying the service token and correlation id
(unary and server-streaming calls), and the trace context when tracing is on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from mesh import tracing
from mesh.interceptors import CLIENT_HEADER, CORRELATION_HEADER, TOKEN_HEADER
from mesh.logging import current_correlation_id


class _Metadata:
    """Adds `authorization`, the client the caller acts for (unless the call names one)
    and the task's `x-correlation-id` to a call's metadata."""

    def __init__(self, token: str, client_id: str) -> None:
        self._auth = (TOKEN_HEADER, f"Bearer {token}")
        self._client = (CLIENT_HEADER, client_id) if client_id else None

    def details(self, given: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = list(given.metadata or ())
        metadata.append(self._auth)
        if self._client and not any(k == CLIENT_HEADER for k, _ in metadata):
            metadata.append(self._client)
        correlation_id = current_correlation_id()
        if correlation_id and not any(k == CORRELATION_HEADER for k, _ in metadata):
            metadata.append((CORRELATION_HEADER, correlation_id))
        return grpc.aio.ClientCallDetails(
            method=given.method,
            timeout=given.timeout,
            metadata=grpc.aio.Metadata(*metadata),
            credentials=given.credentials,
            wait_for_ready=given.wait_for_ready,
        )


# gRPC files an interceptor under one kind of call only: one class per kind.
class _UnaryMetadata(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, metadata: _Metadata) -> None:
        self._metadata = metadata

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        return await continuation(self._metadata.details(client_call_details), request)


class _StreamMetadata(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, metadata: _Metadata) -> None:
        self._metadata = metadata

    async def intercept_unary_stream(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        return await continuation(self._metadata.details(client_call_details), request)


def internal_channel(address: str, token: str, client_id: str = "") -> grpc.aio.Channel:
    """A channel to a Herald service at `host:port`, authenticated with the service token;
    with `client_id`, every call acts for that client (`x-herald-client-id`): the
    gateway's NotificationService then shows it that client's notifications only."""
    metadata = _Metadata(token, client_id)
    return grpc.aio.insecure_channel(
        address,
        interceptors=[
            *tracing.client_interceptors(),
            _UnaryMetadata(metadata),
            _StreamMetadata(metadata),
        ],
        options=[
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.enable_retries", 1),
        ],
    )
