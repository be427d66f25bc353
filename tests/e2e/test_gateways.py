"""Two gateway processes on one host (`make up GATEWAYS=2`): they share the HTTP and gRPC
ports (SO_REUSEPORT), the kernel spreads new connections between them, and either can
stop while the other goes on serving: nothing a client was told is accepted goes missing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ServiceFactory
from tests.e2e.test_rest_edge import TEMPLATE, VARIABLES
from tests.gateway.http.conftest import bearer, create_key
from tests.support.infra import Isolation, add_vhost, release_vhost
from tests.support.processes import ServiceProcess
from tests.support.stack import start_core

ACCEPTED = "notification accepted"


@pytest.fixture(scope="module")
def amqp_url(isolation: Isolation) -> Iterator[str]:
    name = f"{isolation.vhost}-gateways"
    yield add_vhost(name)
    release_vhost(name)


def accepted_by(gateway: ServiceProcess) -> int:
    return gateway.logs().count(ACCEPTED)


async def notify(port: int, headers: dict[str, str], user_id: str) -> str:
    """One POST on a connection of its own (so the kernel picks a gateway for it)."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        answer = await http.post(
            "/api/v1/notifications/",
            json={
                "notification_type": "email",
                "user_id": user_id,
                "template_code": TEMPLATE["code"],
                "variables": VARIABLES,
                "request_id": f"two-{uuid.uuid4().hex}",
            },
            headers=headers,
        )
    assert answer.status_code == 202, answer.text
    notification_id: str = answer.json()["notification_id"]
    return notification_id


async def test_two_gateways_share_the_ports_and_one_can_stop(
    service_factory: ServiceFactory, isolation: Isolation, amqp_url: str
) -> None:
    core = await start_core(
        service_factory, isolation, name="gateways", amqp_url=amqp_url, allow_loopback=False
    )
    first = core.gateway
    second = await asyncio.to_thread(service_factory, "gateway", env=first.env)
    assert (second.grpc_port, second.http_port) == (first.grpc_port, first.http_port)
    port = first.http_port
    assert port is not None
    admin = bearer(create_key(first, "two-admin", "admin")["key"])
    send = bearer(create_key(first, "two-send", "send,read")["key"])
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        created = await http.post("/api/v1/templates/", json=TEMPLATE, headers=admin)
        assert created.status_code == 201, created.text
        user = await http.post(
            "/api/v1/users/",
            json={
                "name": "Ada",
                "email": f"ada.{uuid.uuid4().hex[:8]}@example.com",
                "password": "correct horse battery",
            },
            headers=admin,
        )
        assert user.status_code == 201, user.text
    user_id = user.json()["id"]

    # Fresh connections until both processes have accepted some (the second binds its
    # HTTP port a moment after it answers health checks on the shared gRPC port).
    ids = [await notify(port, send, user_id) for _ in range(10)]
    for _ in range(60):
        if accepted_by(first) and accepted_by(second):
            break
        ids.append(await notify(port, send, user_id))
    assert accepted_by(first) > 0 and accepted_by(second) > 0, (
        accepted_by(first),
        accepted_by(second),
    )
    assert accepted_by(first) + accepted_by(second) == len(ids)

    # One stops cleanly; the other takes every new connection.
    assert await asyncio.to_thread(first.stop) == 0
    served_before = accepted_by(second)
    ids += [await notify(port, send, user_id) for _ in range(5)]
    assert accepted_by(second) == served_before + 5

    # Every accepted notification is stored once, and readable through the one left.
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        for notification_id in ids:
            read = await http.get(f"/api/v1/notifications/{notification_id}", headers=send)
            assert read.status_code == 200, read.text
            assert read.json()["status"] == "pending"
    assert len(set(ids)) == len(ids)
    assert await asyncio.to_thread(second.stop) == 0
    await asyncio.to_thread(core.stop)
