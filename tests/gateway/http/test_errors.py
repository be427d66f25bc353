"""The one error shape, the one gRPC → HTTP table, body limits, health, metrics, logs."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest

from gateway.http.errors import GRPC_TO_HTTP, ApiError, rename_field
from mesh.errors import (
    AlreadyExists,
    Conflict,
    DomainError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    rpc_error,
)
from tests.gateway.http.conftest import Keys, bearer
from tests.support.processes import ServiceProcess
from tests.support.stack import Core


def test_the_table_maps_every_grpc_error_code_once() -> None:
    codes = set(grpc.StatusCode) - {grpc.StatusCode.OK}
    assert set(GRPC_TO_HTTP) == codes
    assert GRPC_TO_HTTP[grpc.StatusCode.INVALID_ARGUMENT].status == 400
    assert GRPC_TO_HTTP[grpc.StatusCode.NOT_FOUND].status == 404
    assert GRPC_TO_HTTP[grpc.StatusCode.FAILED_PRECONDITION].status == 409
    assert GRPC_TO_HTTP[grpc.StatusCode.ALREADY_EXISTS].status == 409
    assert GRPC_TO_HTTP[grpc.StatusCode.UNAVAILABLE].status == 503
    assert GRPC_TO_HTTP[grpc.StatusCode.DEADLINE_EXCEEDED].status == 504
    # The service token being refused is the gateway's problem, never the client's 401.
    assert GRPC_TO_HTTP[grpc.StatusCode.UNAUTHENTICATED].status == 500
    assert all(rule.public for rule in GRPC_TO_HTTP.values() if rule.status >= 500)


def test_field_paths_are_renamed_segment_by_segment() -> None:
    renames = {"channel": "notification_type", "requests": "notifications", "user": ""}
    assert rename_field("requests[3].channel", renames) == "notifications[3].notification_type"
    assert rename_field("user.email", renames) == "email"
    assert rename_field("variables.channel_name", renames) == "variables.channel_name"
    assert ApiError.invalid("a.b", "bad").body()["error"]["fields"] == [
        {"field": "a.b", "description": "bad"}
    ]


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (grpc.StatusCode.INTERNAL, 500),
        (grpc.StatusCode.UNIMPLEMENTED, 501),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
    ],
)
def test_service_failures_answer_through_the_table(code: grpc.StatusCode, status: int) -> None:
    error = ApiError.from_rpc(rpc_error(code, "injected detail"))
    assert (error.status, error.code) == (status, code.name)
    if status >= 500:
        assert "injected" not in error.message  # service details stay inside


@pytest.mark.parametrize(
    "error",
    [
        InvalidArgument.field("template_code", "bad"),
        NotFound("x"),
        AlreadyExists("x"),
        Conflict("x"),
        Unauthenticated("x"),
        PermissionDenied("x"),
        Unavailable("x"),
        ResourceExhausted("x"),
        DomainError("x"),
    ],
)
def test_domain_errors_answer_through_the_same_table(error: DomainError) -> None:
    answer = ApiError.from_domain(error, {"channel": "notification_type"})
    assert answer.status == GRPC_TO_HTTP[error.code].status
    assert answer.code == error.code.name


def _until_ok(http: httpx.Client, url: str, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 30
    while (answer := http.get(url, headers=headers)).status_code != 200:
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.1)


def test_a_paused_peer_is_504_and_a_crashed_one_503(
    http: httpx.Client, keys: Keys, stack: Core, seeded: dict[str, Any]
) -> None:
    url = f"/api/v1/users/{seeded['user']['id']}"
    headers = bearer(keys.read)
    stack.userd.signal(signal.SIGSTOP)  # answers nothing within the edge's deadline
    try:
        paused = http.get(url, headers=headers)
    finally:
        stack.userd.signal(signal.SIGCONT)
    assert paused.status_code == 504, paused.text
    assert paused.json()["error"]["code"] == "DEADLINE_EXCEEDED"
    stack.userd.kill()  # a crash: nothing listens on its port until it is back
    try:
        stopped = http.get(url, headers=headers)
    finally:
        stack.userd.start()
    assert stopped.status_code == 503, stopped.text
    assert stopped.json()["error"]["code"] == "UNAVAILABLE"
    assert "127.0.0.1" not in stopped.json()["error"]["message"]  # addresses stay inside
    _until_ok(http, url, headers)
    _until_ok(http, "/health", {})  # the edge's health sees userd back too


def _big(size: int) -> Iterator[bytes]:
    chunk = b"x" * 4096
    for _ in range(size // 4096 + 1):
        yield chunk


def test_bodies_are_size_limited(http: httpx.Client, keys: Keys) -> None:
    too_big = {"notifications": [], "padding": "x" * (70 * 1024)}
    declared = http.post("/api/v1/notifications/batch", json=too_big, headers=bearer(keys.send))
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    # Streamed without Content-Length (chunked): counted as it arrives.
    streamed = http.post(
        "/api/v1/notifications/batch",
        content=_big(70 * 1024),
        headers={**bearer(keys.send), "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        (b"{not json", "body", "not valid JSON"),
        (b"[]", "body", ""),
        (
            b'{"name": "a", "email": "a@example.com", "password": "p", '
            b'"preferences": {"fax": true}}',
            "preferences.fax",
            "unknown field 'fax'",
        ),
        (b'{"name": "a\\u0000b", "email": "a@example.com", "password": "p"}', "name", "control"),
        (b'{"name": " ", "email": "a@example.com", "password": "p"}', "name", "blank"),
        (b'{"name": "a", "email": "a@example.com", "password": "short"}', "password", "8"),
        (b'{"name": "a", "email": "\\"a b\\"@example.com", "password": "p"}', "email", "quoted"),
        (b'{"name": "a", "email": "not-an-email", "password": "p"}', "email", ""),
        (b'{"name": "a", "email": "a@example.com", "password": "p", "phone": "12"}', "phone", ""),
        (b'{"name": 5, "email": "a@example.com", "password": "p"}', "name", "string"),
    ],
)
def test_invalid_input_is_400_in_the_one_shape(
    admin: httpx.Client, body: bytes, field: str, fragment: str
) -> None:
    answer = admin.post(
        "/api/v1/users/", content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "INVALID_ARGUMENT"
    described = {f["field"]: f["description"] for f in error["fields"]}
    assert field in described, described
    assert fragment in described[field]


@pytest.mark.parametrize(
    ("variables", "fragment"),
    [
        ({"n": 2**60}, "at n: numbers must be within ±2^53"),
        ({"a": {"b": [None, "x\u0000"]}}, "at a.b[1]: contains a NUL"),
        (json.loads('{"x": ' * 20 + "1" + "}" * 20), "nested deeper than 16"),
    ],
)
def test_variables_must_survive_protobuf(
    http: httpx.Client, keys: Keys, variables: dict[str, Any], fragment: str
) -> None:
    body = {
        "notification_type": "email",
        "user_id": str(uuid.uuid4()),
        "template_code": "auth/welcome",
        "variables": variables,
    }
    answer = http.post("/api/v1/notifications/", json=body, headers=bearer(keys.send))
    assert answer.status_code == 400
    (problem,) = answer.json()["error"]["fields"]
    assert problem["field"] == "variables"
    assert fragment in problem["description"]


def test_unknown_route_and_method_use_the_shape(http: httpx.Client, keys: Keys) -> None:
    missing = http.get("/nowhere")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NOT_FOUND"
    wrong = http.put("/api/v1/users/", headers=bearer(keys.admin), json={})
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_health_aggregates_every_peer(http: httpx.Client, edge: ServiceProcess) -> None:
    answer = http.get("/health")
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ok",
        "services": {"gateway": "SERVING", "userd": "SERVING", "templated": "SERVING"},
    }


def test_metrics_and_logs_carry_the_requests(
    http: httpx.Client, keys: Keys, edge: ServiceProcess
) -> None:
    request_id = f"log-{uuid.uuid4()}"
    http.get("/api/v1/users/", headers={**bearer(keys.read), "X-Request-ID": request_id})
    metrics = http.get("/metrics").text
    assert 'herald_http_requests_total{method="GET",route="/api/v1/users/",status="200"}' in metrics
    lines = [json.loads(line) for line in edge.logs().splitlines() if request_id in line]
    access = [line for line in lines if line.get("event") == "http"]
    assert access, edge.logs()[-2000:]
    assert access[0]["correlation_id"] == request_id
    assert access[0]["route"] == "/api/v1/users/"
    assert access[0]["status"] == 200
    assert access[0]["api_key"] == keys.read.split("_")[1]
    assert keys.read not in edge.logs()
