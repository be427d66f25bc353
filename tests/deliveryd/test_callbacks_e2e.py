"""Status callbacks end to end: clients register endpoints over REST, real processes
deliver notifications (the sandbox, with its simulated receipts, so a notification goes
`sent` then `delivered`), and the callbacks process (`python -m gateway callbacks`, the
only one that posts) posts each status change, signed, to local receivers that verify as
a client would (`tests.deliveryd.receiver`)."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from google.protobuf import struct_pb2
from standardwebhooks.webhooks import WebhookVerificationError

from herald.v1 import user_pb2
from tests.conftest import ServiceFactory
from tests.deliveryd.conftest import Fakes
from tests.deliveryd.e2e_stack import Stack, open_sandbox_stack
from tests.deliveryd.receiver import CallbackReceiver, sign_as
from tests.gateway.http.conftest import create_key
from tests.support.infra import Isolation
from tests.support.processes import ServiceProcess
from tests.support.waits import eventually

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()
RECEIPTED = "delivered@simulator.herald.example"  # sent, then delivered by its receipt


# The receivers are local: the gateway registers their URLs, the callbacks process posts
# to them.
LOOPBACK = {"HERALD_OUTBOUND_ALLOW_LOOPBACK": "true"}
POSTING = {
    "HERALD_CALLBACK_TIMEOUT_SECONDS": "1",
    "HERALD_CALLBACK_BACKOFF_BASE_SECONDS": "0.2",
    "HERALD_CALLBACK_BACKOFF_MAX_SECONDS": "1",
    "HERALD_CALLBACK_INTERVAL_SECONDS": "0.05",
}
# Every test here needs callbacks posted.
pytestmark = pytest.mark.usefixtures("callbacks")


@pytest.fixture(scope="module")
async def stack(
    service_factory: ServiceFactory, isolation: Isolation, session_fakes: Fakes
) -> AsyncIterator[Stack]:
    async with open_sandbox_stack(
        service_factory,
        isolation,
        session_fakes,
        name="dlv-cb",
        secret=SECRET,
        gateway_env=LOOPBACK,
    ) as built:
        yield built


@pytest.fixture(scope="module")
async def callbacks(service_factory: ServiceFactory, stack: Stack) -> AsyncIterator[ServiceProcess]:
    """The callbacks process, on the stack's notifications database."""
    env = {
        "HERALD_GATEWAY_DATABASE": stack.gateway.env["HERALD_GATEWAY_DATABASE"],
        **LOOPBACK,
        **POSTING,
    }
    proc = await asyncio.to_thread(service_factory, "gateway", "callbacks", env=env)
    yield proc
    assert await asyncio.to_thread(proc.stop) == 0


@pytest.fixture(scope="module")
async def receipted(stack: Stack) -> user_pb2.User:
    """A user whose email the sandbox answers with a delivery receipt: each notification
    to it goes `sent`, then `delivered`."""
    return await stack.create_user(email=RECEIPTED)


@pytest.fixture
async def receiver() -> AsyncIterator[CallbackReceiver]:
    server = CallbackReceiver()
    await server.start()
    yield server
    await server.stop()


class Client:
    """One API client: its key (callbacks:write, notifications:read) over REST."""

    def __init__(self, stack: Stack, client_id: str) -> None:
        self.stack = stack
        self.id = client_id
        key = create_key(stack.gateway, client_id, "callbacks:write,notifications:read", client_id)
        self._headers = {"Authorization": f"Bearer {key['key']}"}

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.stack.gateway.http_port}/api/v1",
            headers=self._headers,
            timeout=10,
        ) as http:
            return await http.request(method, path, **kwargs)

    async def register(self, receiver: CallbackReceiver, events: str = "all") -> dict[str, Any]:
        answer = await self.call(
            "POST", "/callbacks/", json={"url": receiver.endpoint, "events": events}
        )
        assert answer.status_code == 201, answer.text
        created: dict[str, Any] = answer.json()
        receiver.secret = created["secret"]
        return created

    async def send(self, user: user_pb2.User | None = None) -> str:
        """Sends to `user` (default: a new one, at an address without receipts)."""
        user = user or await self.stack.create_user()
        metadata = struct_pb2.Struct()
        metadata.update({"order": "42"})
        return await self.stack.send(user, client=self.id, metadata=metadata)

    async def callbacks(self, notification_id: str) -> list[dict[str, Any]]:
        answer = await self.call("GET", f"/notifications/{notification_id}/callbacks")
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["items"]
        return items


async def client(stack: Stack, client_id: str) -> Client:
    return await asyncio.to_thread(Client, stack, client_id)


async def test_a_receiver_gets_sent_then_delivered_each_signed(
    stack: Stack, receiver: CallbackReceiver, receipted: user_pb2.User
) -> None:
    acme = await client(stack, "acme")
    await acme.register(receiver)
    nid = await acme.send(receipted)

    await eventually(lambda: len(receiver.deliveries) >= 2)
    sent, delivered = receiver.deliveries
    assert [(e["status"], e["previous_status"]) for e in (sent, delivered)] == [
        ("sent", "pending"),
        ("delivered", "sent"),
    ]
    assert {e["notification_id"] for e in (sent, delivered)} == {nid}
    assert delivered["channel"] == "email" and delivered["provider"] == "sandbox"
    assert delivered["metadata"] == {"order": "42"} and delivered["request_id"]
    assert [r.headers["webhook-id"] for r in receiver.requests] == [sent["id"], delivered["id"]]

    # What a receiver must refuse: a body another secret signed, and a replay.
    posted = receiver.requests[-1]
    forged = dict(posted.headers)
    forged["webhook-signature"] = sign_as(
        "whsec_" + base64.b64encode(os.urandom(24)).decode(), posted
    )
    with pytest.raises(WebhookVerificationError):
        receiver.verify(posted.body, forged)
    old = int(posted.headers["webhook-timestamp"]) - 3600
    replayed = {**posted.headers, "webhook-timestamp": str(old)}
    with pytest.raises(WebhookVerificationError):
        receiver.verify(posted.body, replayed)
    tampered = posted.body.replace(b'"delivered"', b'"failed"', 1)
    with pytest.raises(WebhookVerificationError):
        receiver.verify(tampered, posted.headers)


async def test_a_failing_receiver_gets_the_same_event_until_it_takes_it(
    stack: Stack, receiver: CallbackReceiver
) -> None:
    retried = await client(stack, "retried")
    await retried.register(receiver, events="final")
    receiver.fail_next(3, status=500)
    nid = await retried.send()

    await eventually(lambda: receiver.deliveries, timeout=30)
    [event] = receiver.deliveries
    assert event["status"] == "delivered"
    assert len(receiver.requests) == 4
    assert {r.headers["webhook-id"] for r in receiver.requests} == {event["id"]}
    assert {r.body for r in receiver.requests} == {receiver.requests[0].body}

    # Outcomes are written a batch at a time, a moment after the post (the dispatcher's
    # Recorder): the record catches up with what the receiver saw.
    async def recorded_delivered() -> bool:
        return [c["state"] for c in await retried.callbacks(nid)] == ["delivered"]

    await eventually(recorded_delivered, timeout=10, what="the delivery recorded")
    [recorded] = await retried.callbacks(nid)
    assert recorded["id"] == event["id"]
    assert [a["status_code"] for a in recorded["attempts"]] == [500, 500, 500, 204]
    assert recorded["body"] == orjson.loads(receiver.requests[0].body)


async def test_a_later_status_waits_for_the_earlier_ones_retries(
    stack: Stack, receiver: CallbackReceiver, receipted: user_pb2.User
) -> None:
    ordered = await client(stack, "ordered")
    await ordered.register(receiver)
    receiver.fail_next(2, status=503)  # `sent` is refused twice; `delivered` comes meanwhile
    nid = await ordered.send(receipted)
    await stack.settled(nid, client="ordered")
    await eventually(lambda: len(receiver.deliveries) >= 2, timeout=30)
    assert [e["status"] for e in receiver.deliveries] == ["sent", "delivered"]
    sent_id = receiver.deliveries[0]["id"]
    posted = [r.headers["webhook-id"] for r in receiver.requests]
    assert posted == [sent_id, sent_id, sent_id, receiver.deliveries[1]["id"]]


async def test_a_rotated_secret_signs_beside_the_old_one_for_the_overlap(
    stack: Stack, receiver: CallbackReceiver
) -> None:
    rotating = await client(stack, "rotating")
    created = await rotating.register(receiver, events="final")
    old = receiver.secret
    answer = await rotating.call(
        "POST", f"/callbacks/{created['id']}/rotate-secret", json={"overlap_seconds": 3600}
    )
    assert answer.status_code == 200, answer.text
    new = answer.json()["secret"]
    assert new != old
    await rotating.send()
    await eventually(lambda: receiver.deliveries)
    posted = receiver.requests[-1]
    for secret in (old, new):  # a receiver holding either secret verifies it
        receiver.secret = secret
        assert receiver.verify(posted.body, posted.headers)["status"] == "delivered"


async def test_a_receiver_that_never_answers_holds_up_no_one_else(
    stack: Stack, receiver: CallbackReceiver
) -> None:
    stuck = CallbackReceiver()
    await stuck.start()
    try:
        slow, fast = await client(stack, "slow"), await client(stack, "fast")
        await slow.register(stuck)
        await fast.register(receiver, events="final")
        # Takes each request and answers long after Herald's timeout (1 s here): to Herald
        # it never answers. (Longer would only make stopping it wait longer.)
        stuck.fail_always(status=200, delay=3)
        slow_ids = [await slow.send() for _ in range(6)]
        nid = await fast.send()
        await eventually(lambda: receiver.deliveries, timeout=30)
        assert receiver.deliveries[0]["notification_id"] == nid
        for sid in slow_ids:  # the notifications themselves went on
            await stack.settled(sid, client="slow")
        assert stuck.deliveries == []
    finally:
        await stuck.stop()


async def test_a_stopping_callbacks_process_finishes_its_posts_and_the_gateway_posts_none(
    stack: Stack, callbacks: ServiceProcess, receiver: CallbackReceiver
) -> None:
    alone = await client(stack, "alone")
    await alone.register(receiver, events="final")
    receiver.delay_next(1, seconds=0.8)  # answered within the timeout (1 s), not at once
    first = await alone.send()
    await eventually(lambda: receiver.requests, timeout=30)  # the post is under way

    # SIGTERM: the post under way is answered and recorded before the process ends.
    assert await asyncio.to_thread(callbacks.stop) == 0
    [recorded] = await alone.callbacks(first)
    assert recorded["state"] == "delivered"
    assert [a["status_code"] for a in recorded["attempts"]] == [204]

    try:
        # Only the gateway: a status change is decided, and nothing posts it.
        second = await alone.send()
        await stack.settled(second, client="alone")
        [waiting] = await alone.callbacks(second)
        assert (waiting["state"], waiting["attempts"]) == ("pending", [])
        async with httpx.AsyncClient() as http:
            scraped = await http.get(f"http://127.0.0.1:{stack.gateway.http_port}/metrics")
        assert "herald_callbacks_pending" not in scraped.text  # no dispatcher in it at all
    finally:
        await asyncio.to_thread(callbacks.start)
    await eventually(lambda: len(receiver.deliveries) == 2, timeout=30)
    assert [e["notification_id"] for e in receiver.deliveries] == [first, second]
    assert len(receiver.requests) == 2


async def test_a_callback_decided_before_a_crash_is_posted_after_restart(
    stack: Stack, callbacks: ServiceProcess, receiver: CallbackReceiver
) -> None:
    durable = await client(stack, "durable")
    await durable.register(receiver, events="final")
    await receiver.refuse()  # down when the status changes: the callback waits
    nid = await durable.send()
    await stack.settled(nid, client="durable")
    await eventually(lambda: _attempted(durable, nid), timeout=30)  # tried once at least, refused

    # A crash of the process that posts, and of the one that decided: nothing flushed,
    # nothing said.
    await asyncio.gather(asyncio.to_thread(callbacks.kill), asyncio.to_thread(stack.gateway.kill))
    await receiver.resume()
    await asyncio.gather(asyncio.to_thread(callbacks.start), asyncio.to_thread(stack.gateway.start))
    await eventually(lambda: receiver.deliveries, timeout=30)
    [event] = receiver.deliveries
    assert (event["notification_id"], event["status"]) == (nid, "delivered")


async def _attempted(durable: Client, nid: str) -> bool:
    items = await durable.callbacks(nid)
    return bool(items and items[0]["attempts"])


async def test_the_callbacks_process_yields_the_cpu_to_the_notifications(
    callbacks: ServiceProcess, stack: Stack
) -> None:
    """Background work: it runs HERALD_CALLBACKS_NICE (10) below the gateway that decides
    the notifications, so on shared cores the accept path takes the CPU first."""
    assert callbacks.process is not None and stack.gateway.process is not None
    gateway = os.getpriority(os.PRIO_PROCESS, stack.gateway.process.pid)
    assert os.getpriority(os.PRIO_PROCESS, callbacks.process.pid) == min(gateway + 10, 19)
