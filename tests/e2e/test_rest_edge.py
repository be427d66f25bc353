"""The REST edge end to end: userd, templated and the gateway as real processes on real
PostgreSQL, Redis and RabbitMQ (a vhost of this module), no worker consuming, so what
an accepted notification puts on the queues can be read back exactly.

Everything goes through `/api/v1` with API keys made by the real CLI, as a client would.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aio_pika
import httpx
import pytest

from herald.v1 import common_pb2, delivery_pb2
from mesh import amqp
from tests.conftest import ServiceFactory
from tests.gateway.http.conftest import bearer, create_key
from tests.support.infra import Isolation, add_vhost, release_vhost
from tests.support.metrics import user_cache_hits
from tests.support.processes import ServiceProcess
from tests.support.stack import start_core

TEMPLATE = {
    "code": "auth/welcome",
    "name": "Welcome",
    "default_language": "en",
    "contents": [
        {
            "language": "en",
            "email": {
                "subject": "Welcome, {{ name }}",
                "html_body": "<p>Hi {{ name }}, <a href='{{ link }}'>start</a></p>",
                "text_body": "Hi {{ name }}: {{ link }}",
            },
            "sms": {"text": "Welcome {{ name }}: {{ link }}"},
            "push": {"title": "Welcome", "body": "Hi {{ name }}"},
        }
    ],
}
VARIABLES = {"name": "Ada", "link": "https://example.com/start"}


@dataclass
class Edge:
    http: httpx.AsyncClient
    admin: dict[str, str]
    send: dict[str, str]
    amqp_url: str
    processes: dict[str, ServiceProcess]

    async def create_user(self, **changes: Any) -> dict[str, Any]:
        # The seed's user payload, its placeholders ("email", "str") made real values.
        body = {
            "name": "Ada",
            "email": f"ada.{uuid.uuid4().hex[:8]}@example.com",
            "push_token": "fcm-device-token:APA91b",
            "preferences": {"email": True, "push": False},
            "password": "correct horse battery",
            **changes,
        }
        answer = await self.http.post("/api/v1/users/", json=body, headers=self.admin)
        assert answer.status_code == 201, answer.text
        created: dict[str, Any] = answer.json()
        return created

    async def notify(self, user_id: str, **changes: Any) -> httpx.Response:
        # The seed's notification payload.
        body = {
            "notification_type": "email",
            "user_id": user_id,
            "template_code": "auth/welcome",
            "variables": VARIABLES,
            "request_id": f"req-{uuid.uuid4().hex}",
            "priority": 1,
            "metadata": {},
            **changes,
        }
        return await self.http.post("/api/v1/notifications/", json=body, headers=self.send)

    async def read(self, path: str, **params: str) -> Any:
        """GET `path` with the send+read key; its JSON."""
        answer = await self.http.get(path, params=params, headers=self.send)
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def drain(self, channel: str) -> list[delivery_pb2.DeliveryJob]:
        """Takes every job on `<channel>.queue`."""
        connection = await aio_pika.connect(self.amqp_url)
        async with connection:
            queue = await (await connection.channel()).get_queue(amqp.queue_name(channel))
            jobs = []
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                jobs.append(delivery_pb2.DeliveryJob.FromString(message.body))
            return jobs


@pytest.fixture(scope="module")
def amqp_url(isolation: Isolation) -> Iterator[str]:
    name = f"{isolation.vhost}-rest-e2e"
    yield add_vhost(name)
    release_vhost(name)


@pytest.fixture(scope="module")
async def edge(
    service_factory: ServiceFactory, isolation: Isolation, amqp_url: str
) -> AsyncIterator[Edge]:
    core = await start_core(
        service_factory, isolation, name="rest", amqp_url=amqp_url, allow_loopback=False
    )
    gateway = core.gateway
    admin = create_key(gateway, "e2e-admin", "admin")["key"]
    send = create_key(gateway, "e2e-send", "send,read")["key"]
    processes = {"userd": core.userd, "templated": core.templated, "gateway": gateway}
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{gateway.http_port}", timeout=10
    ) as http:
        built = Edge(http, bearer(admin), bearer(send), amqp_url, processes)
        created = await http.post("/api/v1/templates/", json=TEMPLATE, headers=built.admin)
        assert created.status_code == 201, created.text
        yield built
    await asyncio.to_thread(core.stop)


@pytest.fixture
async def edge_clean(edge: Edge) -> Edge:
    for channel in ("email", "sms", "push"):
        await edge.drain(channel)
    return edge


async def test_an_accepted_notification_is_one_rendered_job_on_its_queue(
    edge_clean: Edge,
) -> None:
    user = await edge_clean.create_user()
    answer = await edge_clean.notify(user["id"], request_id="signup-rest-1")
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    assert accepted["status"] == "pending"
    assert answer.headers["x-request-id"] == "signup-rest-1"
    [job] = await edge_clean.drain("email")
    assert job.notification_id == accepted["notification_id"]
    assert job.channel == common_pb2.CHANNEL_EMAIL
    assert job.recipient.email == user["email"]
    assert job.content.email.subject == "Welcome, Ada"
    assert job.content.email.html_body == (
        "<p>Hi Ada, <a href='https://example.com/start'>start</a></p>"
    )
    assert job.content.email.text_body == "Hi Ada: https://example.com/start"
    assert job.correlation_id == "signup-rest-1"
    assert not await edge_clean.drain("sms")
    assert not await edge_clean.drain("push")
    status = await edge_clean.read(f"/api/v1/notifications/{accepted['notification_id']}")
    assert (status["status"], status["template_version"]) == ("pending", 1)


async def test_the_same_request_id_twice_is_one_notification_and_one_job(
    edge_clean: Edge,
) -> None:
    user = await edge_clean.create_user()
    first = await edge_clean.notify(user["id"], request_id="same-key")
    again = await edge_clean.notify(user["id"], request_id="same-key")
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["notification_id"] == first.json()["notification_id"]
    assert (first.json()["duplicate"], again.json()["duplicate"]) == (False, True)
    assert len(await edge_clean.drain("email")) == 1
    conflict = await edge_clean.notify(user["id"], request_id="same-key", variables={"name": "Bob"})
    assert conflict.status_code == 409, conflict.text
    assert "request_id" in conflict.text
    assert not await edge_clean.drain("email")


async def test_caller_errors_are_4xx_naming_the_field_and_queue_nothing(
    edge_clean: Edge,
) -> None:
    user = await edge_clean.create_user()
    missing = await edge_clean.notify(user["id"], variables={"name": "Ada"})
    assert missing.status_code == 400, missing.text
    [problem] = missing.json()["error"]["fields"]
    assert problem["field"] == "variables.link"
    unknown = await edge_clean.notify(str(uuid.uuid4()))
    assert unknown.status_code == 404, unknown.text
    assert unknown.json()["error"]["code"] == "NOT_FOUND"
    no_template = await edge_clean.notify(user["id"], template_code="auth/nope")
    assert no_template.status_code == 404, no_template.text
    assert not await edge_clean.drain("email")
    listed = await edge_clean.read("/api/v1/notifications/", user_id=user["id"])
    assert listed["items"] == []


async def test_preferences_gate_the_channels(edge_clean: Edge) -> None:
    no_email = await edge_clean.create_user(
        preferences={"email": False, "sms": True, "push": False}, phone="+14155550100"
    )
    answer = await edge_clean.notify(no_email["id"])
    assert answer.status_code == 202, answer.text
    assert not await edge_clean.drain("email")
    [job] = await edge_clean.drain("sms")
    assert job.content.sms.text == "Welcome Ada: https://example.com/start"
    assert job.recipient.phone == "+14155550100"

    nothing = await edge_clean.create_user(
        preferences={"email": False, "sms": False, "push": False}
    )
    answer = await edge_clean.notify(nothing["id"])
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "suppressed"
    for channel in ("email", "sms", "push"):
        assert not await edge_clean.drain(channel)
    read = await edge_clean.read(f"/api/v1/notifications/{answer.json()['notification_id']}")
    assert read["status"] == "suppressed"
    assert "preference" in read["status_reason"]


async def test_a_change_to_the_user_reaches_the_next_notification_at_once(
    edge_clean: Edge,
) -> None:
    user = await edge_clean.create_user(phone="+14155550100")
    assert (await edge_clean.notify(user["id"])).status_code == 202
    gateway = f"http://127.0.0.1:{edge_clean.processes['gateway'].http_port}"
    hits = await user_cache_hits(gateway)
    assert (await edge_clean.notify(user["id"])).status_code == 202
    assert await user_cache_hits(gateway) > hits  # the gateway kept the user
    assert [j.recipient.email for j in await edge_clean.drain("email")] == [user["email"]] * 2

    path = f"/api/v1/users/{user['id']}"
    moved = await edge_clean.http.patch(
        path, json={"email": "ada@new.example.com"}, headers=edge_clean.admin
    )
    assert moved.status_code == 200, moved.text
    assert (await edge_clean.notify(user["id"])).status_code == 202
    [job] = await edge_clean.drain("email")
    assert job.recipient.email == "ada@new.example.com"

    prefs = await edge_clean.http.patch(
        f"{path}/preferences", json={"email": False, "sms": True}, headers=edge_clean.admin
    )
    assert prefs.status_code == 200, prefs.text
    assert (await edge_clean.notify(user["id"])).status_code == 202
    assert not await edge_clean.drain("email")
    [job] = await edge_clean.drain("sms")
    assert job.recipient.phone == "+14155550100"

    gone = await edge_clean.http.delete(path, headers=edge_clean.admin)
    assert gone.status_code == 204, gone.text
    assert (await edge_clean.notify(user["id"])).status_code == 404


async def test_a_pinned_template_version_is_rendered_and_recorded(edge_clean: Edge) -> None:
    v2 = {"contents": [{**TEMPLATE["contents"][0], "sms": {"text": "v2 {{ name }}"}}]}  # type: ignore[dict-item]
    v2["contents"][0]["email"] = {"subject": "v2 {{ name }}", "text_body": "v2 {{ link }}"}
    published = await edge_clean.http.post(
        "/api/v1/templates/auth/welcome/versions", json=v2, headers=edge_clean.admin
    )
    assert published.status_code == 201, published.text
    try:
        user = await edge_clean.create_user()
        assert (await edge_clean.notify(user["id"], template_version=1)).status_code == 202
        assert (await edge_clean.notify(user["id"])).status_code == 202
        pinned, latest = await edge_clean.drain("email")
        assert (pinned.template_version, pinned.content.email.subject) == (1, "Welcome, Ada")
        assert (latest.template_version, latest.content.email.subject) == (2, "v2 Ada")
    finally:
        rolled_back = await edge_clean.http.put(
            "/api/v1/templates/auth/welcome/active-version",
            json={"version": 1},
            headers=edge_clean.admin,
        )
        assert rolled_back.status_code == 200, rolled_back.text


async def test_the_seed_status_payload_is_kept_but_moves_nothing(edge_clean: Edge) -> None:
    """No worker consumes here: the hop waits on its queue. An external `delivered` joins
    the trail as a report and the notification stays pending, its job still queued."""
    user = await edge_clean.create_user()
    notification_id = (await edge_clean.notify(user["id"])).json()["notification_id"]
    seed = {
        "notification_id": notification_id,
        "status": "delivered",
        "timestamp": "2026-11-30T12:00:00Z",
        "error": None,
    }
    reported = await edge_clean.http.post(
        "/api/v1/email/status/", json=seed, headers=edge_clean.admin
    )
    assert reported.status_code == 200, reported.text
    assert reported.json() == {
        "notification_id": notification_id,
        "status": "pending",
        "changed": True,
    }
    read = await edge_clean.read(f"/api/v1/notifications/{notification_id}")
    assert read["status"] == "pending"
    [entry] = read["attempts"]
    assert entry["outcome"] == "reported"
    assert json.loads(entry["detail"])["reported_status"] == "delivered"
    [job] = await edge_clean.drain("email")
    assert job.notification_id == notification_id and job.attempt == 1


async def test_the_request_id_is_the_correlation_id_of_every_hop(edge_clean: Edge) -> None:
    user = await edge_clean.create_user()
    request_id = f"trace-{uuid.uuid4().hex[:12]}"
    answer = await edge_clean.notify(user["id"], request_id=request_id)
    assert answer.status_code == 202
    assert answer.headers["x-request-id"] == request_id
    [job] = await edge_clean.drain("email")
    assert job.correlation_id == request_id
    for name in ("gateway", "userd", "templated"):
        lines = [
            json.loads(line)
            for line in edge_clean.processes[name].logs().splitlines()
            if line.startswith("{") and request_id in line
        ]
        assert lines, f"no log line of {name} names {request_id}"
        assert {line.get("correlation_id") for line in lines} == {request_id}, name

    header = f"hdr-{uuid.uuid4().hex[:12]}"
    answer = await edge_clean.http.post(
        "/api/v1/notifications/",
        json={
            "notification_type": "email",
            "user_id": user["id"],
            "template_code": "auth/welcome",
            "variables": VARIABLES,
            "request_id": f"body-{uuid.uuid4().hex[:8]}",
        },
        headers={**edge_clean.send, "X-Request-ID": header},
    )
    assert answer.status_code == 202
    assert answer.headers["x-request-id"] == header
    [job] = await edge_clean.drain("email")
    assert job.correlation_id == header


def web_push(endpoint: str) -> dict[str, Any]:
    """A Web Push target with valid keys, at `endpoint`."""
    key = base64.urlsafe_b64encode(b"\x04" + os.urandom(64)).decode().rstrip("=")
    auth = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    return {"platform": "webpush", "web_push": {"endpoint": endpoint, "p256dh": key, "auth": auth}}


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://169.254.169.254/latest/meta-data/",
        "https://127.0.0.1:8000/push/1",
        "https://10.1.2.3/push/1",
        "https://[::ffff:10.1.2.3]/push/1",
        "https://localhost/push/1",
        "https://]",
    ],
)
async def test_a_web_push_endpoint_off_the_public_internet_is_a_400_naming_it(
    edge_clean: Edge, endpoint: str
) -> None:
    user = await edge_clean.create_user()
    path = f"/api/v1/users/{user['id']}/push-targets"
    added = await edge_clean.http.post(path, json=web_push(endpoint), headers=edge_clean.admin)
    assert added.status_code == 400, added.text
    [problem] = added.json()["error"]["fields"]
    assert problem["field"] == "web_push.endpoint"
    body = {
        "name": "Ada",
        "email": f"ada.{uuid.uuid4().hex[:8]}@example.com",
        "password": "correct horse battery",
        "push_targets": [web_push("https://push.example.net/ok"), web_push(endpoint)],
    }
    created = await edge_clean.http.post("/api/v1/users/", json=body, headers=edge_clean.admin)
    assert created.status_code == 400, created.text
    [problem] = created.json()["error"]["fields"]
    assert problem["field"] == "push_targets[1].web_push.endpoint"
    ok = await edge_clean.http.post(
        path, json=web_push("https://push.example.net/ok"), headers=edge_clean.admin
    )
    assert ok.status_code == 201, ok.text
