"""OpenTelemetry traces: one notification is one trace, across every hop.

Spans: the REST edge (FastAPI's own telemetry: a server span per request, from the
caller's `traceparent` if it sends one), each gRPC call on both sides (OpenTelemetry's
gRPC interceptors), the publish of a delivery job, the worker's consume, the provider call.
The context travels as W3C `traceparent`: in gRPC metadata, and in the AMQP message's
headers from the publisher to the worker.

Export is OTLP over HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the exporter reads
the other `OTEL_*` variables itself); otherwise tracing is off and costs nothing: no
interceptor is installed, `enabled()` guards the AMQP and provider spans (no per-message
work), and FastAPI's telemetry finds only OpenTelemetry's no-op tracer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from opentelemetry.instrumentation.grpc import filters as grpc_filters
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

TRACER = "herald"
PRODUCER = trace.SpanKind.PRODUCER
CONSUMER = trace.SpanKind.CONSUMER
CLIENT = trace.SpanKind.CLIENT
# Probes and reflection every few seconds are not worth a trace each.
_TRACED_GRPC = grpc_filters.negate(
    grpc_filters.any_of(
        grpc_filters.service_prefix("grpc.health"), grpc_filters.service_prefix("grpc.reflection")
    )
)
# The process's provider once tracing is on (a process configures it once, at start).
_configured: list[TracerProvider] = []


def configure(service: str, otlp_endpoint: str) -> None:
    """Turns tracing on for this process when `otlp_endpoint` is set (once per process)."""
    if not otlp_endpoint or _configured:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,  # only a traced process pays for the exporter's import
    )

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _configured.append(provider)


def enabled() -> bool:
    return bool(_configured)


def shutdown() -> None:
    """Exports the spans still buffered (at process shutdown)."""
    for provider in _configured:
        provider.shutdown()


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """The gRPC server's tracing interceptor (none when tracing is off)."""
    if not enabled():
        return []
    return [aio_server_interceptor(filter_=_TRACED_GRPC)]  # type: ignore[no-untyped-call]


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """A gRPC channel's tracing interceptors (none when tracing is off)."""
    if not enabled():
        return []
    return list(aio_client_interceptors(filter_=_TRACED_GRPC))  # type: ignore[no-untyped-call]


def inject(headers: MutableMapping[str, Any]) -> None:
    """Puts the current context (`traceparent`) in an AMQP message's headers."""
    propagate.inject(headers)


@contextlib.contextmanager
def span(
    name: str,
    *,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
    parent: Mapping[str, Any] | None = None,
    attributes: Mapping[str, str | int] | None = None,
) -> Iterator[None]:
    """A span around the block, the current one inside it; `parent`: headers to take the
    trace from (an AMQP message's). Does nothing when tracing is off."""
    if not enabled():
        yield
        return
    carrier = {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in (parent or {}).items()}
    ctx = propagate.extract(carrier) if parent is not None else otel_context.get_current()
    tracer = trace.get_tracer(TRACER)
    with tracer.start_as_current_span(name, context=ctx, kind=kind, attributes=attributes):
        yield
