"""Prometheus metrics shared by every process, and the per-process endpoint."""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Gauge, Histogram, start_http_server

GRPC_REQUESTS = Counter(
    "herald_grpc_requests_total",
    "gRPC calls served, by method and status code.",
    ["method", "code"],
)
GRPC_LATENCY = Histogram(
    "herald_grpc_request_seconds",
    "gRPC call latency, by method.",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
SERVING = Gauge(
    "herald_serving",
    "1 while the process's gRPC health says SERVING (every required dependency up).",
)
DEPENDENCY_UP = Gauge(
    "herald_dependency_up",
    "1 when a dependency answered its last check.",
    ["dependency"],
)


def start_metrics_server(host: str, port: int) -> WSGIServer:
    """Serves /metrics on its own thread; call `.shutdown()` to stop it."""
    server, _thread = start_http_server(port, addr=host)
    return server
