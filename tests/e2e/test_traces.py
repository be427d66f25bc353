"""One notification is one trace: a Send through the REST edge, with every process exporting
OTLP/HTTP to a collector of the test's own, yields one connected trace spanning the
gateway, userd, templated and the email worker (REST edge, gRPC calls on both sides, the
publish, the consume, the provider call)."""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tests.conftest import ServiceFactory
from tests.gateway.http.conftest import bearer, create_key
from tests.support.infra import Isolation, add_vhost, free_port, release_vhost
from tests.support.processes import ServiceProcess


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str


class Collector:
    """A tiny OTLP/HTTP (protobuf) trace receiver: what the processes export lands here."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._lock = threading.Lock()
        collector = self

        class Receive(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                collector.add(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
                answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), Receive)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            service = next(
                a.value.string_value
                for a in resource_spans.resource.attributes
                if a.key == "service.name"
            )
            for scope in resource_spans.scope_spans:
                with self._lock:
                    self.spans.extend(
                        Span(
                            service,
                            s.name,
                            s.kind,
                            s.trace_id.hex(),
                            s.span_id.hex(),
                            s.parent_span_id.hex(),
                        )
                        for s in scope.spans
                    )

    def trace(self, trace_id: str) -> list[Span]:
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def __enter__(self) -> Collector:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    with Collector() as running:
        yield running


@pytest.fixture(scope="module")
async def edge(
    service_factory: ServiceFactory, isolation: Isolation, collector: Collector
) -> AsyncIterator[httpx.AsyncClient]:
    vhost = f"{isolation.vhost}-traces"
    amqp_url = await asyncio.to_thread(add_vhost, vhost)
    traced = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms: export at once, the test waits on it
        "HERALD_AMQP_URL": amqp_url,
    }

    def start(module: str, *args: str, **env: str) -> ServiceProcess:
        return service_factory(module, *args, env={**traced, **env})

    userd = await asyncio.to_thread(
        start, "userd", HERALD_USERD_DATABASE=isolation.database("users_traces")
    )
    templated = await asyncio.to_thread(
        start, "templated", HERALD_TEMPLATED_DATABASE=isolation.database("templates_traces")
    )
    peers = {"HERALD_USERD_ADDR": userd.address, "HERALD_TEMPLATED_ADDR": templated.address}
    gateway = await asyncio.to_thread(
        start,
        "gateway",
        HERALD_GATEWAY_DATABASE=isolation.database("notifications_traces"),
        **peers,
    )
    worker = await asyncio.to_thread(
        start,
        "deliveryd",
        "email",
        HERALD_GATEWAY_ADDR=gateway.address,
        **peers,
    )
    admin = create_key(gateway, "traces", "admin")["key"]
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{gateway.http_port}",
        headers=bearer(admin),
        timeout=10,
    ) as http:
        yield http
    # Stopped before their vhost goes, not left to the run's end reconnecting to it.
    await asyncio.to_thread(worker.stop_together, gateway, templated, userd)
    release_vhost(vhost)


TEMPLATE = {
    "code": "traces/welcome",
    "name": "Welcome",
    "default_language": "en",
    "contents": [
        {
            "language": "en",
            "email": {"subject": "Hi {{ name }}", "html_body": "<p>Hi</p>", "text_body": "Hi"},
        }
    ],
}


async def test_one_send_through_rest_is_one_connected_trace_across_the_processes(
    edge: httpx.AsyncClient, collector: Collector
) -> None:
    created = await edge.post("/api/v1/templates/", json=TEMPLATE)
    assert created.status_code == 201, created.text
    user = await edge.post(
        "/api/v1/users/",
        json={
            "name": "Ada",
            "email": f"ada.{uuid.uuid4().hex[:8]}@example.com",
            "password": "correct horse battery",
            "preferences": {"email": True},
        },
    )
    assert user.status_code == 201, user.text
    # The REST edge answers with the trace it opened (W3C traceresponse is not standard
    # yet): the caller's own traceparent makes the trace id known.
    trace_id = uuid.uuid4().hex
    sent = await edge.post(
        "/api/v1/notifications/",
        json={
            "notification_type": "email",
            "user_id": user.json()["id"],
            "template_code": TEMPLATE["code"],
            "variables": {"name": "Ada"},
            "request_id": f"traces-{uuid.uuid4().hex}",
            "metadata": {},
        },
        headers={"traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"},
    )
    assert sent.status_code == 202, sent.text
    notification_id = sent.json()["notification_id"]

    deadline = time.monotonic() + 60
    wanted = {"gateway", "userd", "templated", "deliveryd-email"}
    while True:
        spans = collector.trace(trace_id)
        names = {s.name for s in spans}
        services = {s.service for s in spans}
        # The worker's consume span ends (and is exported) after the send inside it: wait
        # for it too, or the send's parent may not have arrived yet.
        consumed = any(s.service == "deliveryd-email" and s.kind == 5 for s in spans)
        if wanted <= services and consumed and any(n.startswith("send ") for n in names):
            break
        assert time.monotonic() < deadline, (
            f"trace so far: {sorted((s.service, s.name) for s in spans)}"
        )
        await asyncio.sleep(0.2)
    read = await edge.get(f"/api/v1/notifications/{notification_id}")
    assert read.json()["status"] in ("sent", "delivered"), read.text

    # Connected: one root (the caller's span, outside Herald), every other parent known.
    ids = {s.span_id for s in spans}
    orphans = {s.parent_id for s in spans if s.parent_id not in ids}
    assert len(orphans) == 1, (
        f"{orphans}: {sorted((s.service, s.name, s.parent_id) for s in spans)}"
    )
    kinds = {(s.service, s.kind) for s in spans}
    server, client, producer, consumer = 2, 3, 4, 5  # SpanKind in OTLP's numbering
    assert ("gateway", server) in kinds  # the REST edge, and StatusService for the worker
    assert ("gateway", client) in kinds  # gRPC calls to userd / templated
    assert ("userd", server) in kinds and ("templated", server) in kinds
    assert ("gateway", producer) in kinds  # the publish
    assert ("deliveryd-email", consumer) in kinds  # the consume
    assert ("deliveryd-email", client) in kinds  # the provider call and its gRPC calls
