"""End to end: userd, templated, the gateway and deliveryd email/sms/push as real processes
on real PostgreSQL, Redis and RabbitMQ (a vhost of this module), the providers faked.

A notification goes in through NotificationService.Send and is followed through
GetNotification until its status is final, while the fakes show what the providers got.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
import httpx
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from herald.v1 import (
    common_pb2,
    delivery_pb2,
    notification_pb2,
    user_pb2,
    user_pb2_grpc,
)
from mesh import amqp
from tests.conftest import ServiceFactory
from tests.deliveryd.conftest import Fakes
from tests.deliveryd.e2e_stack import (
    FAILED,
    ONESIGNAL_SUBSCRIPTION,
    OUTCOME,
    TEMPLATE,
    Stack,
    open_stack,
)
from tests.deliveryd.harness import jobs_counted
from tests.deliveryd.services import BACKOFF_BASE
from tests.gateway.http.conftest import create_key
from tests.support.infra import Isolation, rabbitmqctl
from tests.support.metrics import user_cache_hits
from tests.support.processes import SERVING, health_status
from tests.support.waits import eventually


@pytest.fixture(scope="module")
async def stack(
    service_factory: ServiceFactory, isolation: Isolation, session_fakes: Fakes
) -> AsyncIterator[Stack]:
    async with open_stack(service_factory, isolation, session_fakes, name="dlv-e2e") as built:
        yield built


@pytest.fixture
async def e2e(stack: Stack, fakes: Fakes) -> Stack:
    stack.webhook.reset()
    await stack.dead_letters()
    return stack


def trail(notification: notification_pb2.Notification) -> list[tuple[int, int, str, int]]:
    return [(a.channel, a.attempt, a.provider, a.outcome) for a in notification.attempts]


async def test_email_reaches_sendgrid_rendered_and_is_delivered(e2e: Stack, fakes: Fakes) -> None:
    user = await e2e.create_user()
    nid = await e2e.send(user)
    done = await e2e.settled(nid)
    [mail] = fakes.sendgrid.deliveries
    assert mail["to"] == user.email
    assert (mail["subject"], mail["html"], mail["text"]) == (
        "Hello Ada",
        "<p>Welcome, <b>Ada</b>!</p>",
        "Welcome, Ada!",
    )
    assert done.delivered_provider == "sendgrid"
    assert done.provider_message_id == mail["message_id"]
    assert trail(done) == [
        (common_pb2.CHANNEL_EMAIL, 1, "sendgrid", OUTCOME.ATTEMPT_OUTCOME_DELIVERED)
    ]


async def test_a_seed_payload_posted_to_the_rest_edge_reaches_sendgrid(
    e2e: Stack, fakes: Fakes
) -> None:
    user = await e2e.create_user()
    key = await asyncio.to_thread(create_key, e2e.gateway, "e2e-rest", "send,read")
    auth = {"Authorization": f"Bearer {key['key']}"}
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{e2e.gateway.http_port}", headers=auth, timeout=10
    ) as http:
        posted = await http.post(
            "/api/v1/notifications/",
            json={
                "notification_type": "email",
                "user_id": user.id,
                "template_code": TEMPLATE,
                "variables": {"name": "Ada", "link": "https://example.com/start"},
                "request_id": f"rest-{uuid.uuid4().hex}",
                "priority": 1,
                "metadata": {},
            },
        )
        assert posted.status_code == 202, posted.text
        nid = posted.json()["notification_id"]

        async def delivered() -> bool:
            answer = await http.get(f"/api/v1/notifications/{nid}")
            return bool(answer.json()["status"] == "delivered")

        await eventually(delivered)
        status = (await http.get(f"/api/v1/notifications/{nid}")).json()
    [mail] = fakes.sendgrid.deliveries
    assert (mail["to"], mail["subject"], mail["text"]) == (user.email, "Hello Ada", "Welcome, Ada!")
    assert (status["delivered_channel"], status["delivered_provider"]) == ("email", "sendgrid")
    assert status["provider_message_id"] == mail["message_id"]
    [attempt] = status["attempts"]
    assert (attempt["provider"], attempt["outcome"]) == ("sendgrid", "delivered")


async def test_a_changed_user_is_never_served_from_a_worker_that_kept_it(
    e2e: Stack, fakes: Fakes
) -> None:
    user = await e2e.create_user()
    await e2e.settled(await e2e.send(user))
    port = e2e.workers["email"].env["HERALD_DELIVERYD_EMAIL_METRICS_PORT"]
    worker = f"http://127.0.0.1:{port}"
    hits = await user_cache_hits(worker)
    await e2e.settled(await e2e.send(user))
    assert await user_cache_hits(worker) > hits  # the worker kept the user

    users = e2e.stub(e2e.userd, user_pb2_grpc.UserServiceStub)
    await users.UpdateUser(
        user_pb2.UpdateUserRequest(
            user=user_pb2.User(id=user.id, email="ada@moved.example.com"),
            update_mask=FieldMask(paths=["email"]),
        ),
        timeout=10,
    )
    await e2e.settled(await e2e.send(user))
    assert [m["to"] for m in fakes.sendgrid.deliveries] == [user.email] * 2 + [
        "ada@moved.example.com"
    ]


async def test_a_connection_dropped_while_the_provider_works_sends_once(
    e2e: Stack, fakes: Fakes
) -> None:
    """RabbitMQ dropping the worker's connection while a provider holds the message (aiormq
    then cancels the message's callback) must not stop the job half-way: it is reported,
    so the copy RabbitMQ redelivers finds it done. (Cancelled, the job was never reported:
    the copy waited for the claim's lease, took the hop over and sent it again.)"""
    user = await e2e.create_user()
    slow = {"HERALD_DELIVERYD_LEASE_SECONDS": "8", "HERALD_SENDGRID_TIMEOUT": "5"}
    async with e2e.replaced_worker("email", **slow):
        fakes.sendgrid.delay_next(1, seconds=4)  # rabbitmqctl below takes about a second
        nid = await e2e.send(user)
        await eventually(lambda: fakes.sendgrid.requests)
        vhost = unquote(urlsplit(e2e.amqp_url).path[1:])
        await asyncio.to_thread(
            rabbitmqctl, "close_all_connections", "-p", vhost, "test: dropped mid-send"
        )
        assert not fakes.sendgrid.deliveries, "the connection dropped after the send"
        done = await e2e.settled(nid)
        # The worker reconnects (5 s) and drops the redelivered copy: its hop is done.
        worker = e2e.workers["email"]
        await eventually(lambda: jobs_counted(worker, "taken", "final"), timeout=45)
    assert [m["to"] for m in fakes.sendgrid.deliveries] == [user.email]
    assert trail(done) == [
        (common_pb2.CHANNEL_EMAIL, 1, "sendgrid", OUTCOME.ATTEMPT_OUTCOME_DELIVERED)
    ]
    assert trail(await e2e.notification(nid)) == trail(done)


async def test_sms_reaches_twilio(e2e: Stack, fakes: Fakes) -> None:
    user = await e2e.create_user(phone="+5511987654321")
    nid = await e2e.send(user, common_pb2.CHANNEL_SMS)
    done = await e2e.settled(nid)
    [sms] = fakes.twilio.deliveries
    assert (sms["to"], sms["body"]) == ("+5511987654321", "Hi Ada, welcome")
    assert (done.delivered_provider, done.provider_message_id) == ("twilio", sms["sid"])


async def test_push_reaches_fcm_onesignal_and_webpush(e2e: Stack, fakes: Fakes) -> None:
    subscription = fakes.webpush.subscribe()
    user = await e2e.create_user(
        preferences=user_pb2.Preferences(push=True),
        push_targets=[
            user_pb2.PushTarget(platform=common_pb2.PUSH_PLATFORM_FCM, token="fcm-e2e-token"),
            user_pb2.PushTarget(
                platform=common_pb2.PUSH_PLATFORM_ONESIGNAL, token=ONESIGNAL_SUBSCRIPTION
            ),
            user_pb2.PushTarget(
                platform=common_pb2.PUSH_PLATFORM_WEBPUSH,
                web_push=user_pb2.WebPushSubscription(
                    endpoint=subscription.endpoint,
                    p256dh=subscription.p256dh,
                    auth=subscription.auth,
                ),
            ),
        ],
    )
    nid = await e2e.send(user, common_pb2.CHANNEL_PUSH)
    done = await e2e.settled(nid)
    [fcm] = fakes.fcm.deliveries
    assert (fcm["token"], fcm["title"], fcm["body"]) == ("fcm-e2e-token", "Welcome", "Hi Ada")
    [onesignal] = fakes.onesignal.deliveries
    assert (onesignal["subscription_id"], onesignal["body"]) == (ONESIGNAL_SUBSCRIPTION, "Hi Ada")
    [web] = fakes.webpush.deliveries
    assert (web["payload"]["title"], web["payload"]["body"]) == ("Welcome", "Hi Ada")
    assert set(done.delivered_provider.split(",")) == {"fcm", "onesignal", "webpush"}
    for message_id in (fcm["name"], onesignal["id"]):
        assert message_id in done.provider_message_id


async def test_sendgrid_failing_goes_to_mailgun_then_smtp(e2e: Stack, fakes: Fakes) -> None:
    user = await e2e.create_user()
    fakes.sendgrid.fail_always(status=503)
    first = await e2e.settled(await e2e.send(user))
    [mail] = fakes.mailgun.deliveries
    assert (mail["to"], mail["subject"], mail["text"]) == (user.email, "Hello Ada", "Welcome, Ada!")
    assert (first.delivered_provider, first.provider_message_id) == ("mailgun", mail["message_id"])
    fakes.mailgun.fail_always(status=500)
    second = await e2e.settled(await e2e.send(user))
    [smtp] = fakes.smtp.deliveries
    assert smtp["to"] == [user.email]
    assert (smtp["subject"], smtp["text"].strip()) == ("Hello Ada", "Welcome, Ada!")
    assert smtp["html"].strip() == "<p>Welcome, <b>Ada</b>!</p>"
    assert (second.delivered_provider, second.provider_message_id) == ("smtp", smtp["message_id"])
    assert not fakes.sendgrid.deliveries


async def test_every_email_provider_failing_is_delivered_by_sms(e2e: Stack, fakes: Fakes) -> None:
    user = await e2e.create_user()
    for fake in (fakes.sendgrid, fakes.mailgun):
        fake.fail_always(status=503)
    await fakes.smtp.refuse()
    done = await e2e.settled(await e2e.send(user))
    [sms] = fakes.twilio.deliveries
    assert sms["body"] == "Hi Ada, welcome"
    assert done.delivered_channel == common_pb2.CHANNEL_SMS
    transient = OUTCOME.ATTEMPT_OUTCOME_TRANSIENT_FAILURE
    assert [(a.channel, a.attempt, a.outcome) for a in done.attempts] == [
        (common_pb2.CHANNEL_EMAIL, 1, transient),
        (common_pb2.CHANNEL_EMAIL, 2, transient),
        (common_pb2.CHANNEL_EMAIL, 3, transient),
        (common_pb2.CHANNEL_SMS, 1, OUTCOME.ATTEMPT_OUTCOME_DELIVERED),
    ]
    why = done.attempts[2]
    assert "sendgrid" in why.error and "mailgun" in why.error and "smtp" in why.error


async def test_everything_failing_fails_alerts_and_retry_delivers_later(
    e2e: Stack, fakes: Fakes
) -> None:
    user = await e2e.create_user()
    for fake in (fakes.sendgrid, fakes.mailgun, fakes.twilio):
        fake.fail_always(status=503)
    await fakes.smtp.refuse()
    nid = await e2e.send(user, message_type=common_pb2.MESSAGE_TYPE_ALERT)
    failed = await e2e.settled(nid, FAILED)
    assert "twilio" in failed.status_reason
    dead: list[delivery_pb2.DeliveryJob] = []

    async def dead_lettered() -> bool:
        dead.extend(await e2e.dead_letters())
        return bool(dead)

    await eventually(dead_lettered)
    assert [j.notification_id for j in dead] == [nid]
    await eventually(lambda: e2e.webhook.deliveries)
    [alert] = e2e.webhook.deliveries
    assert (alert["notification_id"], alert["error"]) == (nid, failed.status_reason)

    await fakes.reset()
    notifications = e2e.notifications
    await notifications.Retry(
        notification_pb2.RetryRequest(id=nid, requested_by="ops@example.com", reason="back up"),
        timeout=10,
    )
    done = await e2e.settled(nid)
    assert done.delivered_provider == "sendgrid"
    assert done.attempts[-1].generation == 2
    assert len(fakes.sendgrid.deliveries) == 1


async def test_transient_failures_are_retried_with_growing_delays(e2e: Stack, fakes: Fakes) -> None:
    user = await e2e.create_user()
    fakes.sendgrid.fail_next(2, status=503)
    fakes.mailgun.fail_next(2, status=502)
    fakes.smtp.fail_next(2)
    done = await e2e.settled(await e2e.send(user))
    assert [(a.attempt, a.outcome) for a in done.attempts] == [
        (1, OUTCOME.ATTEMPT_OUTCOME_TRANSIENT_FAILURE),
        (2, OUTCOME.ATTEMPT_OUTCOME_TRANSIENT_FAILURE),
        (3, OUTCOME.ATTEMPT_OUTCOME_DELIVERED),
    ]
    # Each retry waited at least its backoff, which grows: BACKOFF_BASE * 2^(attempt-1).
    starts = [a.start_time.ToDatetime() for a in done.attempts]
    assert (starts[1] - starts[0]).total_seconds() >= BACKOFF_BASE
    assert (starts[2] - starts[1]).total_seconds() >= 2 * BACKOFF_BASE
    assert len(fakes.sendgrid.deliveries) == 1


async def test_a_permanent_failure_is_not_retried(e2e: Stack, fakes: Fakes) -> None:
    user = await e2e.create_user()
    fakes.sendgrid.invalid_recipients.add(user.email)
    done = await e2e.settled(await e2e.send(user))
    assert [(a.channel, a.attempt, a.outcome) for a in done.attempts] == [
        (common_pb2.CHANNEL_EMAIL, 1, OUTCOME.ATTEMPT_OUTCOME_PERMANENT_FAILURE),
        (common_pb2.CHANNEL_SMS, 1, OUTCOME.ATTEMPT_OUTCOME_DELIVERED),
    ]
    assert len(fakes.sendgrid.requests) == 1
    assert not fakes.mailgun.requests


async def test_the_circuit_opens_and_closes_after_recovery(e2e: Stack, fakes: Fakes) -> None:
    async with e2e.replaced_worker(
        "email",
        HERALD_DELIVERYD_BREAKER_THRESHOLD="2",
        HERALD_DELIVERYD_BREAKER_COOLDOWN_SECONDS="2",
    ):
        user = await e2e.create_user()
        fakes.sendgrid.fail_always(status=None, delay=5)

        async def provider() -> str:
            done = await e2e.settled(await e2e.send(user))
            return done.delivered_provider

        assert [await provider() for _ in range(2)] == ["mailgun", "mailgun"]
        skipped_from = len(fakes.sendgrid.requests)
        assert [await provider() for _ in range(3)] == ["mailgun"] * 3
        assert len(fakes.sendgrid.requests) == skipped_from == 2
        fakes.sendgrid.heal()

        async def probed() -> bool:  # after the cool-down; until then Mailgun delivers
            return await provider() == "sendgrid"

        await eventually(probed)
        assert await provider() == "sendgrid"


async def test_the_same_job_delivered_twice_reaches_the_provider_once(
    e2e: Stack, fakes: Fakes
) -> None:
    user = await e2e.create_user()
    async with e2e.replaced_worker("email"):
        nid = await e2e.send(user)
        connection = await aio_pika.connect(e2e.amqp_url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.get_queue(amqp.queue_name("email"))
            message = None

            async def queued() -> bool:
                nonlocal message
                message = await queue.get(fail=False)
                return message is not None

            await eventually(queued)
            assert message is not None
            exchange = await channel.get_exchange(amqp.EXCHANGE)
            for _ in range(2):
                await exchange.publish(
                    aio_pika.Message(message.body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key="email",
                )
            await message.ack()
        worker = await e2e.start_worker("email")
        await e2e.settled(nid)
        # The other copy is dropped unsent (its hop done, or the notification final).
        await eventually(lambda: jobs_counted(worker, "taken", "final"))
    # Only this user's mail: a notification of an earlier test may still arrive late.
    assert [d["to"] for d in fakes.sendgrid.deliveries if d["to"] == user.email] == [user.email]


async def test_a_worker_killed_mid_delivery_delivers_each_once(e2e: Stack, fakes: Fakes) -> None:
    user = await e2e.create_user()
    overrides = {
        "HERALD_EMAIL_PROVIDERS": "smtp",
        "HERALD_SMTP_TIMEOUT": "2",
        "HERALD_DELIVERYD_LEASE_SECONDS": "3",
    }
    async with e2e.replaced_worker("email"):
        victim = await e2e.start_worker("email", **overrides)
        fakes.smtp.stall_ehlo(30)
        nids = [await e2e.send(user) for _ in range(3)]
        await eventually(lambda: fakes.smtp.connections >= 3)
        victim.kill()
        e2e.workers.pop("email")
        fakes.smtp.stall_ehlo(0)
        await e2e.start_worker("email", **overrides)
        for nid in nids:
            await e2e.settled(nid)
    ids = sorted(d["message_id"] for d in fakes.smtp.deliveries)
    assert ids == sorted(f"<{nid}.1.email@herald.test>" for nid in nids)


def _edge(e2e: Stack, key: dict[str, Any]) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{e2e.gateway.http_port}",
        headers={"Authorization": f"Bearer {key['key']}"},
        timeout=10,
    )


def _welcome(user: user_pb2.User, name: str) -> dict[str, Any]:
    return {
        "notification_type": "email",
        "user_id": user.id,
        "template_code": TEMPLATE,
        "variables": {"name": name},
    }


async def test_a_forged_delivered_report_does_not_stop_the_real_delivery(
    e2e: Stack, fakes: Fakes
) -> None:
    """The seed's status route, with status:report: `delivered` on a notification still
    waiting for its worker is kept in the trail, and the real delivery goes on."""
    key = await asyncio.to_thread(
        create_key, e2e.gateway, "e2e-reporter", "notifications:send,status:report"
    )
    user = await e2e.create_user()
    async with e2e.replaced_worker("email"), _edge(e2e, key) as http:
        posted = await http.post("/api/v1/notifications/", json=_welcome(user, "Ada"))
        assert posted.status_code == 202, posted.text
        nid = posted.json()["notification_id"]
        # No email worker runs: the notification is certainly pending when this arrives.
        forged = await http.post(
            "/api/v1/email/status/", json={"notification_id": nid, "status": "delivered"}
        )
        assert forged.status_code == 200, forged.text
        assert (forged.json()["status"], forged.json()["changed"]) == ("pending", True)
        await e2e.start_worker("email")
        done = await e2e.settled(nid, client=key["client_id"])
    [mail] = fakes.sendgrid.deliveries
    assert mail["to"] == user.email and done.delivered_provider == "sendgrid"
    assert [a.outcome for a in done.attempts] == [
        OUTCOME.ATTEMPT_OUTCOME_REPORTED,
        OUTCOME.ATTEMPT_OUTCOME_DELIVERED,
    ]
    assert json.loads(done.attempts[0].detail)["reporter"].startswith("apikey:")


async def test_crlf_headers_are_refused_at_accept_and_smtp_stays_in_service(
    e2e: Stack, fakes: Fakes
) -> None:
    """Six messages whose variable would put CR/LF in the subject are 400s naming the
    variable; none reaches SMTP, its breaker (threshold 2 here) stays closed, and an
    ordinary email that follows is delivered by SMTP."""
    key = await asyncio.to_thread(create_key, e2e.gateway, "e2e-crlf", "notifications:send")
    user = await e2e.create_user()
    async with (
        e2e.replaced_worker(
            "email", HERALD_EMAIL_PROVIDERS="smtp", HERALD_DELIVERYD_BREAKER_THRESHOLD="2"
        ),
        _edge(e2e, key) as http,
    ):
        for _ in range(6):
            refused = await http.post(
                "/api/v1/notifications/", json=_welcome(user, "x\r\nBcc: a@evil.example")
            )
            assert refused.status_code == 400, refused.text
            fields = [f["field"] for f in refused.json()["error"]["fields"]]
            assert fields == ["variables.name"]
        posted = await http.post("/api/v1/notifications/", json=_welcome(user, "Ada"))
        assert posted.status_code == 202, posted.text
        done = await e2e.settled(posted.json()["notification_id"], client=key["client_id"])
        worker = e2e.workers["email"]
        smtp = await asyncio.to_thread(health_status, worker.grpc_port, "herald.provider.smtp")
    assert done.delivered_provider == "smtp"
    assert smtp == SERVING  # the breaker is closed
    [mail] = fakes.smtp.deliveries
    assert mail["to"] == [user.email] and mail["subject"] == "Hello Ada"
    assert "evil" not in json.dumps(fakes.smtp.deliveries)
