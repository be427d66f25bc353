"""gRPC channels to other Herald services, carrying the service token and correlation id."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from mesh.interceptors import CLIENT_HEADER, CORRELATION_HEADER, TOKEN_HEADER
from mesh.logging import current_correlation_id


class _MetadataInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Adds `authorization`, the client the caller acts for (unless the call names one)
    and the task's `x-correlation-id` to every unary call."""

    def __init__(self, token: str, client_id: str) -> None:
        self._auth = (TOKEN_HEADER, f"Bearer {token}")
        self._client = (CLIENT_HEADER, client_id) if client_id else None

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        metadata = list(client_call_details.metadata or ())
        metadata.append(self._auth)
        if self._client and not any(k == CLIENT_HEADER for k, _ in metadata):
            metadata.append(self._client)
        correlation_id = current_correlation_id()
        if correlation_id and not any(k == CORRELATION_HEADER for k, _ in metadata):
            metadata.append((CORRELATION_HEADER, correlation_id))
        details = grpc.aio.ClientCallDetails(
            method=client_call_details.method,
            timeout=client_call_details.timeout,
            metadata=grpc.aio.Metadata(*metadata),
            credentials=client_call_details.credentials,
            wait_for_ready=client_call_details.wait_for_ready,
        )
        return await continuation(details, request)


def internal_channel(address: str, token: str, client_id: str = "") -> grpc.aio.Channel:
    """A channel to a Herald service at `host:port`, authenticated with the service token;
    with `client_id`, every call acts for that client (`x-herald-client-id`): the
    gateway's NotificationService then shows it that client's notifications only."""
    return grpc.aio.insecure_channel(
        address,
        interceptors=[_MetadataInterceptor(token, client_id)],
        options=[
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.enable_retries", 1),
        ],
    )
