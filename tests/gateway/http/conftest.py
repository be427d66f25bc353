"""The REST edge as a real gateway process over real userd and templated processes (each
on databases of its own, and a RabbitMQ vhost of its own), API keys made with the real CLI.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import grpc
import httpx
import pytest
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from bench.stages import scrape
from gateway.apikeys import cli as apikeys_cli
from gateway.apikeys import service as apikey_service
from herald.v1 import (
    common_pb2,
    notification_pb2,
    notification_pb2_grpc,
    status_pb2_grpc,
)
from mesh.interceptors import CLIENT_HEADER, OPEN_METHOD_PREFIXES, TOKEN_HEADER
from tests.conftest import ServiceFactory
from tests.support.infra import POSTGRES_URL, SERVICE_TOKEN, Isolation, add_vhost, release_vhost
from tests.support.processes import ROOT, ServiceProcess
from tests.support.reports import failing_every_channel
from tests.support.stack import Core, start_core

T = TypeVar("T")
EDGE_TIMEOUT_SECONDS = "1"  # a paused userd outlasts it (504 test)
KEY_CACHE_SECONDS = 300  # the longest the setting allows


def _edge_timeout() -> str:
    """HERALD_GATEWAY_RPC_TIMEOUT_SECONDS of the package's edge."""
    return EDGE_TIMEOUT_SECONDS


def _stack(
    service_factory: ServiceFactory, isolation: Isolation, edge_timeout: str
) -> Iterator[Core]:
    """userd, templated and the gateway (see STACK_FIXTURES for how long they live)."""
    name = f"http_{uuid.uuid4().hex[:6]}"
    vhost = f"{isolation.vhost}-{name}"
    core = asyncio.run(
        start_core(
            service_factory,
            isolation,
            name=name,
            amqp_url=add_vhost(vhost),
            allow_loopback=False,
            gateway_env={
                "HERALD_GATEWAY_RPC_TIMEOUT_SECONDS": edge_timeout,
                "HERALD_GATEWAY_MAX_BODY_BYTES": str(64 * 1024),
                # Revocations must reach the cache through PostgreSQL's NOTIFY, not expiry.
                "HERALD_GATEWAY_API_KEY_CACHE_SECONDS": str(KEY_CACHE_SECONDS),
            },
        )
    )
    yield core
    core.stop()
    release_vhost(vhost)


def _edge(stack: Core) -> ServiceProcess:
    return stack.gateway  # started: its gRPC server serves and its HTTP port answers


def apikeys(edge: ServiceProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m gateway apikeys ...` against the edge's database."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", "apikeys", *args],
        check=False,
        cwd=ROOT,
        env={**os.environ, **edge.env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def create_key_with_cli(
    edge: ServiceProcess, name: str, scopes: str, client: str | None = None
) -> dict[str, Any]:
    """A key made by `python -m gateway apikeys create --json` as a process (the CLI's
    own tests); what it prints."""
    more = ("--client", client) if client else ()
    done = apikeys(edge, "create", "--name", name, "--scopes", scopes, *more, "--json")
    assert done.returncode == 0, done.stderr
    created: dict[str, Any] = json.loads(done.stdout)
    return created


def database_url(edge: ServiceProcess) -> str:
    """The URL of the edge's notifications database, read from the env it was started
    with (never from this process's environment)."""
    server = edge.env.get("HERALD_POSTGRES_URL", POSTGRES_URL).rstrip("/")
    return f"{server}/{edge.env['HERALD_GATEWAY_DATABASE']}"


def _in_process(edge: ServiceProcess, work: Callable[[AsyncConnection[Any]], Awaitable[T]]) -> T:
    """Runs `work` on a connection to the edge's database, as the apikeys CLI does, in this
    process (a CLI process costs seconds of imports; the CLI as a process is tested in
    test_auth). On a thread of its own, so callers inside an event loop may use it too.
    The URL is read from the edge's env, never by changing this process's environment
    (processes started meanwhile would inherit it)."""
    url = database_url(edge)

    async def run() -> T:
        async with await AsyncConnection.connect(
            url, autocommit=True, row_factory=dict_row
        ) as conn:
            return await work(conn)

    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, run()).result()


def create_key(
    edge: ServiceProcess, name: str, scopes: str, client: str | None = None
) -> dict[str, Any]:
    """A key as `apikeys create --json` prints it (with its plaintext `key`), made by the
    same service function the CLI calls."""

    async def create(conn: AsyncConnection[Any]) -> dict[str, Any]:
        new = await apikey_service.create(
            conn, name=name, scopes=apikey_service.parse_scopes(scopes), client_id=client or ""
        )
        return {**apikeys_cli.as_dict(new.key), "key": new.token}

    return _in_process(edge, create)


def revoke_key(edge: ServiceProcess, key_id: str) -> bool:
    """`apikeys revoke <id>` in process: False when no live key has that id."""
    return _in_process(edge, lambda conn: apikey_service.revoke(conn, key_id=key_id))


# The client every test key but `admin` and `other` belongs to.
CLIENT = "tests"


@dataclass(frozen=True)
class Keys:
    """Plaintext keys with the scopes their name says, all of client CLIENT but `admin` (a
    client of its own) and `other` (client "other", send and read); `send` and `read`
    are made with the legacy names, which read as notifications:send and as
    notifications:read + users:read + templates:read. `revoked` was revoked unused."""

    send: str
    read: str
    admin: str
    send_read: str
    users_write: str
    templates_write: str
    status_report: str
    operator: str
    other: str
    revoked: str
    send_id: str


def _keys(edge: ServiceProcess) -> Keys:
    made = {
        name: create_key(edge, f"test-{name}", scopes, client)
        for name, scopes, client in [
            ("send", "send", CLIENT),
            ("read", "read", CLIENT),
            ("admin", "admin", None),
            ("send_read", "notifications:send,notifications:read", CLIENT),
            ("users_write", "users:write", CLIENT),
            ("templates_write", "templates:write", CLIENT),
            ("status_report", "status:report", CLIENT),
            ("operator", "operator:read", CLIENT),
            ("other", "notifications:send,notifications:read", "other"),
            ("revoked", "admin", CLIENT),
        ]
    }
    assert revoke_key(edge, made["revoked"]["id"])
    return Keys(
        **{name: made[name]["key"] for name in made},
        send_id=made["send"]["id"],
    )


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _http(edge: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{edge.http_port}", timeout=10) as client:
        yield client


def _admin(http: httpx.Client, keys: Keys) -> httpx.Client:
    """A client speaking with the admin key (every scope)."""
    return httpx.Client(base_url=str(http.base_url), headers=bearer(keys.admin), timeout=10)


SEED_USER = {
    "name": "str",
    "email": "seed@example.com",
    "push_token": "fcm-device-token:APA91b",
    "preferences": {"email": True, "push": False},
    "password": "correct horse battery",
}

WELCOME = {
    "code": "auth/welcome",
    "name": "Welcome",
    "default_language": "en",
    "contents": [
        {
            "language": "en",
            "email": {"subject": "Welcome, {{ name }}", "html_body": "<a href='{{ link }}'>go</a>"},
            "sms": {"text": "Welcome {{ name }}: {{ link }}"},
        }
    ],
}


def _seeded(admin: httpx.Client) -> dict[str, Any]:
    """A user (the seed's payload) and the `auth/welcome` template, made through the edge."""
    user = admin.post("/api/v1/users/", json=SEED_USER)
    assert user.status_code == 201, user.text
    template = admin.post("/api/v1/templates/", json=WELCOME)
    assert template.status_code == 201, template.text
    return {"user": user.json(), "template": template.json()}


def stored(
    edge: ServiceProcess, notification_id: str, client: str = CLIENT
) -> notification_pb2.Notification:
    """The notification as the gateway's NotificationService answers it over gRPC to a
    service acting for `client` (with what REST does not show, e.g. the client)."""
    with grpc.insecure_channel(edge.address) as channel:
        answer = notification_pb2_grpc.NotificationServiceStub(channel).GetNotification(
            notification_pb2.GetNotificationRequest(id=notification_id),
            metadata=((TOKEN_HEADER, f"Bearer {SERVICE_TOKEN}"), (CLIENT_HEADER, client)),
            timeout=10,
        )
    return answer.notification


def fail_every_channel(edge: ServiceProcess, notification_id: str, client: str = CLIENT) -> None:
    """Makes a notification of `client` `failed` the way workers do (no worker runs here):
    a permanent failure of each channel of its route in turn, reported over StatusService."""
    route = stored(edge, notification_id, client).route
    with grpc.insecure_channel(edge.address) as channel:
        statuses = status_pb2_grpc.StatusServiceStub(channel)
        for report in failing_every_channel(notification_id, route):
            statuses.ReportStatus(
                report, metadata=((TOKEN_HEADER, f"Bearer {SERVICE_TOKEN}"),), timeout=10
            )
    assert stored(edge, notification_id, client).status == common_pb2.NOTIFICATION_STATUS_FAILED


def log_lines(process: ServiceProcess, event: str) -> list[dict[str, Any]]:
    """The process's JSON log lines of `event`."""
    lines = (json.loads(line) for line in process.logs().splitlines() if event in line)
    return [line for line in lines if line.get("event") == event]


def service_work(stack: Core) -> float:
    """Calls userd and templated served (probes aside) and notifications the gateway's
    accept pipeline took: what a request refused at the edge must not add to."""
    total = 0.0
    for proc, port in (
        (stack.userd, "HERALD_USERD_METRICS_PORT"),
        (stack.templated, "HERALD_TEMPLATED_METRICS_PORT"),
    ):
        served = scrape(f"http://127.0.0.1:{proc.env[port]}", "herald_grpc_requests", "method")
        total += sum(
            value
            for (name, method), value in served.items()
            if name == "herald_grpc_requests_total" and not method.startswith(OPEN_METHOD_PREFIXES)
        )
    runs = scrape(f"http://127.0.0.1:{stack.gateway.http_port}", "herald_accept_run_items")
    return total + runs.get(("herald_accept_run_items_sum", ""), 0.0)


# The package's fixtures. tests/gateway/openapi makes its own (its random writes stay out
# of what these tests read). Package-scoped: pytest tears them down when xdist hands this
# worker another package's file and starts them again on the way back, which costs time;
# living for the whole run instead, beside the module stacks and the bench smoke's, they
# exhausted PostgreSQL's 100 connections.
STACK_FIXTURES: dict[str, Any] = {
    "edge_timeout": _edge_timeout,
    "stack": _stack,
    "edge": _edge,
    "keys": _keys,
    "http": _http,
    "admin": _admin,
    "seeded": _seeded,
}


def stack_fixtures(scope: Literal["session", "package"]) -> list[Any]:
    """The fixtures above at `scope`, in STACK_FIXTURES' order."""
    return [pytest.fixture(scope=scope, name=name)(fn) for name, fn in STACK_FIXTURES.items()]


edge_timeout, stack, edge, keys, http, admin, seeded = stack_fixtures("package")
