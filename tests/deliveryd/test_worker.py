"""deliveryd email/sms/push as real processes, against real RabbitMQ (a vhost of this
module), the fake providers, and a fake gateway/userd that keeps the claim/report protocol.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import orjson
import pytest

from herald.v1 import common_pb2, delivery_pb2, status_pb2, user_pb2
from tests.conftest import ServiceFactory
from tests.deliveryd.conftest import Fakes
from tests.deliveryd.harness import (
    DELIVERED,
    FAILED,
    PENDING,
    SUPPRESSED,
    Harness,
    make_job,
    make_user,
)
from tests.fakes.base import wait_until
from tests.support.processes import ServiceProcess

OUTCOME = delivery_pb2.AttemptOutcome


@pytest.fixture(scope="module")
async def harness() -> AsyncIterator[Harness]:
    opened = await Harness.open()
    yield opened
    await opened.close()


@pytest.fixture(scope="module")
async def workers(
    service_factory: ServiceFactory, session_fakes: Fakes, harness: Harness
) -> AsyncIterator[dict[str, ServiceProcess]]:
    env = harness.env(
        session_fakes, email="sendgrid,mailgun", sms="twilio", push="fcm,onesignal,webpush"
    )
    started = {}
    for channel in ("email", "sms", "push"):
        started[channel] = await asyncio.to_thread(service_factory, "deliveryd", channel, env=env)
    yield started
    for proc in started.values():
        assert await asyncio.to_thread(proc.stop) == 0


@pytest.fixture
async def mesh(harness: Harness, workers: dict[str, ServiceProcess], fakes: Fakes) -> Harness:
    harness.mesh.users.down = False
    harness.mesh.status.fail_reports = 0
    harness.mesh.status.refuse_reports = None
    await harness.dead_letters()
    harness.webhook.reset()
    return harness


def attempts(harness: Harness, notification_id: str) -> list[delivery_pb2.DeliveryAttempt]:
    return [r.attempt for r in harness.mesh.status.reports(notification_id)]


async def delivered(harness: Harness, notification_id: str, status: int = DELIVERED) -> None:
    await wait_until(lambda: harness.mesh.status.status(notification_id) == status)


async def test_email_reaches_sendgrid_exactly_and_is_delivered(mesh: Harness, fakes: Fakes) -> None:
    user = make_user()
    mesh.mesh.users.users[user.id] = user
    nid = await mesh.send(make_job(user))
    await delivered(mesh, nid)
    [delivery] = fakes.sendgrid.deliveries
    assert delivery["to"] == "ana@example.com"
    assert (delivery["subject"], delivery["text"], delivery["html"]) == (
        "Welcome, Ana",
        "Hello Ana",
        "<p>Hello <b>Ana</b></p>",
    )
    assert delivery["custom_args"]["herald_key"] == f"{nid}:1:email"
    [attempt] = attempts(mesh, nid)
    assert (attempt.provider, attempt.outcome) == ("sendgrid", OUTCOME.ATTEMPT_OUTCOME_DELIVERED)
    assert attempt.provider_message_id == delivery["message_id"]
    assert attempt.worker and attempt.id and attempt.duration.ToTimedelta().total_seconds() > 0
    assert orjson.loads(attempt.detail)["recipient"] == "userd"


async def test_sendgrid_failing_is_delivered_by_mailgun(mesh: Harness, fakes: Fakes) -> None:
    user = make_user()
    mesh.mesh.users.users[user.id] = user
    fakes.sendgrid.fail_next(status=503)
    nid = await mesh.send(make_job(user))
    await delivered(mesh, nid)
    assert not fakes.sendgrid.deliveries
    [delivery] = fakes.mailgun.deliveries
    assert (delivery["to"], delivery["subject"]) == ("ana@example.com", "Welcome, Ana")
    [attempt] = attempts(mesh, nid)
    assert attempt.provider == "mailgun"
    tries = orjson.loads(attempt.detail)["tries"]
    assert [(t["provider"], t["outcome"]) for t in tries] == [
        ("sendgrid", "transient"),
        ("mailgun", "delivered"),
    ]


async def test_transient_failures_are_retried_with_growing_delays(
    mesh: Harness, fakes: Fakes
) -> None:
    user = make_user()
    mesh.mesh.users.users[user.id] = user
    fakes.sendgrid.fail_next(2, status=503)
    fakes.mailgun.fail_next(2, status=500)
    nid = await mesh.send(make_job(user))
    await delivered(mesh, nid)
    reports = mesh.mesh.status.reports(nid)
    assert [r.attempt.attempt for r in reports] == [1, 2, 3]
    assert [r.status for r in reports] == [PENDING, PENDING, DELIVERED]
    delays = [r.next_delay.ToTimedelta().total_seconds() for r in reports[:2]]
    assert 0 < delays[0] < delays[1]
    # Each retry came back through a delay queue no sooner than its delay.
    times = [r.time for r in fakes.sendgrid.requests]
    assert len(times) == 3
    assert times[1] - times[0] >= delays[0]
    assert times[2] - times[1] >= delays[1]
    assert len(fakes.sendgrid.deliveries) == 1


async def test_a_permanent_failure_is_not_retried(mesh: Harness, fakes: Fakes) -> None:
    user = make_user(email="nobody@example.com")
    mesh.mesh.users.users[user.id] = user
    fakes.sendgrid.invalid_recipients.add("nobody@example.com")
    nid = await mesh.send(make_job(user))
    await delivered(mesh, nid, FAILED)
    [attempt] = attempts(mesh, nid)
    assert attempt.outcome == OUTCOME.ATTEMPT_OUTCOME_PERMANENT_FAILURE
    assert "valid address" in attempt.error
    assert len(fakes.sendgrid.requests) == 1
    assert not fakes.mailgun.requests
    dead: list[delivery_pb2.DeliveryJob] = []

    async def dead_lettered() -> bool:
        dead.extend(await mesh.dead_letters())
        return bool(dead)

    await wait_until(dead_lettered)
    assert [j.notification_id for j in dead] == [nid]


async def test_a_job_consumed_after_its_deadline_is_not_sent(mesh: Harness, fakes: Fakes) -> None:
    user = make_user()
    mesh.mesh.users.users[user.id] = user
    job = make_job(user, route=("email", "sms"))
    job.deadline.FromDatetime(datetime.now(UTC) - timedelta(minutes=1))
    nid = await mesh.send(job)
    await delivered(mesh, nid, FAILED)
    assert mesh.mesh.status.records[nid].error == "deadline passed"
    # One skipped hop ends the route (the SMS hop would be as late); no provider is asked.
    assert [(a.channel, a.outcome, a.error) for a in attempts(mesh, nid)] == [
        (common_pb2.CHANNEL_EMAIL, OUTCOME.ATTEMPT_OUTCOME_SKIPPED, "deadline passed"),
    ]
    assert not fakes.sendgrid.requests
    assert not fakes.mailgun.requests
    assert not fakes.twilio.requests


async def test_every_email_provider_failing_falls_back_to_sms(mesh: Harness, fakes: Fakes) -> None:
    user = make_user()
    mesh.mesh.users.users[user.id] = user
    fakes.sendgrid.fail_always(status=503)
    fakes.mailgun.fail_always(status=503)
    nid = await mesh.send(make_job(user, route=("email", "sms")))
    await delivered(mesh, nid)
    [sms] = fakes.twilio.deliveries
    assert (sms["to"], sms["body"]) == ("+5511987654321", "Hello Ana, welcome")
    trail = attempts(mesh, nid)
    assert [(a.channel, a.attempt, a.outcome) for a in trail] == [
        (common_pb2.CHANNEL_EMAIL, 1, OUTCOME.ATTEMPT_OUTCOME_TRANSIENT_FAILURE),
        (common_pb2.CHANNEL_EMAIL, 2, OUTCOME.ATTEMPT_OUTCOME_TRANSIENT_FAILURE),
        (common_pb2.CHANNEL_EMAIL, 3, OUTCOME.ATTEMPT_OUTCOME_TRANSIENT_FAILURE),
        (common_pb2.CHANNEL_SMS, 1, OUTCOME.ATTEMPT_OUTCOME_DELIVERED),
    ]
    assert orjson.loads(trail[2].detail)["next_channel"] == "sms"
    assert trail[3].provider == "twilio"
    assert trail[3].provider_message_id == sms["sid"]


@pytest.mark.parametrize(
    ("code", "dead_lettered"),
    [(grpc.StatusCode.FAILED_PRECONDITION, False), (grpc.StatusCode.PERMISSION_DENIED, True)],
)
async def test_a_refused_report_is_dropped_only_when_the_job_is_settled_elsewhere(
    mesh: Harness, fakes: Fakes, code: grpc.StatusCode, dead_lettered: bool
) -> None:
    """FAILED_PRECONDITION: the move is stale (another copy won), nothing to keep. Any
    other refusal (a bad token, a bug) keeps the job visible on failed.queue."""
    user = make_user()
    mesh.mesh.users.users[user.id] = user
    mesh.mesh.status.refuse_reports = code
    job = make_job(user)
    await mesh.send(job)
    await wait_until(lambda: len(fakes.sendgrid.deliveries) == 1)
    dead: list[delivery_pb2.DeliveryJob] = []

    async def settled() -> bool:
        dead.extend(await mesh.dead_letters())
        return bool(dead) or not dead_lettered

    await wait_until(settled)
    await asyncio.sleep(1)  # acked or dead-lettered: never redelivered and sent again
    dead.extend(await mesh.dead_letters())
    assert [j.notification_id for j in dead] == ([job.notification_id] if dead_lettered else [])
    assert len(fakes.sendgrid.deliveries) == 1


async def test_everything_failing_fails_dead_letters_and_alerts(
    mesh: Harness, fakes: Fakes
) -> None:
    user = make_user()
    mesh.mesh.users.users[user.id] = user
    fakes.sendgrid.fail_always(status=503)
    fakes.mailgun.fail_always(status=503)
    fakes.twilio.fail_always(status=500)
    job = make_job(user, route=("email", "sms"), message_type=common_pb2.MESSAGE_TYPE_ALERT)
    nid = await mesh.send(job)
    await delivered(mesh, nid, FAILED)
    record = mesh.mesh.status.records[nid]
    assert "twilio" in record.error
    await wait_until(lambda: mesh.webhook.deliveries)
    [alert] = mesh.webhook.deliveries
    assert alert["notification_id"] == nid
    assert alert["error"] == record.error
    assert alert["message_type"] == "MESSAGE_TYPE_ALERT"
    dead: list[delivery_pb2.DeliveryJob] = []

    async def dead_lettered() -> bool:
        dead.extend(await mesh.dead_letters())
        return bool(dead)

    await wait_until(dead_lettered)
    assert [(j.notification_id, j.channel) for j in dead] == [(nid, common_pb2.CHANNEL_SMS)]


async def test_a_job_delivered_twice_by_the_broker_reaches_the_provider_once(
    mesh: Harness, fakes: Fakes
) -> None:
    user = make_user()
    mesh.mesh.users.users[user.id] = user
    job = make_job(user)
    nid = await mesh.send(job)
    await mesh.publish(job)
    await delivered(mesh, nid)
    results = lambda: [r for req, r in mesh.mesh.status.claims if req.notification_id == nid]  # noqa: E731
    # The copy is dropped unsent: its hop is done (or the notification final by then).
    dropped = {status_pb2.CLAIM_RESULT_TAKEN, status_pb2.CLAIM_RESULT_FINAL}
    await wait_until(lambda: dropped & set(results()))
    assert len(fakes.sendgrid.deliveries) == 1


async def test_a_job_leased_by_another_worker_waits_for_the_lease(
    mesh: Harness, fakes: Fakes
) -> None:
    user = make_user()
    mesh.mesh.users.users[user.id] = user
    job = make_job(user)
    mesh.mesh.status.add(job)
    # A worker that died holding the lease.
    mesh.mesh.status._claim(
        status_pb2.ClaimRequest(
            notification_id=job.notification_id,
            generation=1,
            channel=job.channel,
            attempt=1,
            worker="ghost:1",
            lease_seconds=2,
        )
    )
    await mesh.publish(job)
    await delivered(mesh, job.notification_id)
    results = [
        r for req, r in mesh.mesh.status.claims if req.notification_id == job.notification_id
    ]
    assert results == [status_pb2.CLAIM_RESULT_LEASED, status_pb2.CLAIM_RESULT_GRANTED]
    assert len(fakes.sendgrid.deliveries) == 1


async def test_a_lost_report_is_made_again_without_sending_again(
    mesh: Harness, fakes: Fakes
) -> None:
    user = make_user()
    mesh.mesh.users.users[user.id] = user
    mesh.mesh.status.fail_reports = 10**6
    nid = await mesh.send(make_job(user))
    await wait_until(lambda: fakes.sendgrid.deliveries)
    await asyncio.sleep(1.5)  # report retries run out; the message is requeued and kept
    assert mesh.mesh.status.status(nid) == PENDING
    mesh.mesh.status.fail_reports = 0
    await delivered(mesh, nid)
    assert len(fakes.sendgrid.deliveries) == 1
    assert len([c for c, _ in mesh.mesh.status.claims if c.notification_id == nid]) == 1


async def test_a_report_failing_a_moment_is_retried_without_requeueing(
    mesh: Harness, fakes: Fakes
) -> None:
    user = make_user()
    mesh.mesh.users.users[user.id] = user
    mesh.mesh.status.fail_reports = 2  # the bare call and the first retry fail
    nid = await mesh.send(make_job(user))
    await delivered(mesh, nid)
    assert mesh.mesh.status.fail_reports == 0
    assert len(fakes.sendgrid.deliveries) == 1
    assert len([c for c, _ in mesh.mesh.status.claims if c.notification_id == nid]) == 1


async def test_preference_turned_off_moves_on_to_the_next_channel(
    mesh: Harness, fakes: Fakes
) -> None:
    user = make_user(preferences=user_pb2.Preferences(email=False))
    mesh.mesh.users.users[user.id] = user
    nid = await mesh.send(make_job(user, route=("email", "sms")))
    await delivered(mesh, nid)
    assert not fakes.sendgrid.requests
    first, second = attempts(mesh, nid)
    assert (first.outcome, first.error) == (OUTCOME.ATTEMPT_OUTCOME_SKIPPED, "email preference off")
    assert (second.channel, second.provider) == (common_pb2.CHANNEL_SMS, "twilio")


async def test_every_channel_refused_by_preference_is_suppressed(
    mesh: Harness, fakes: Fakes
) -> None:
    user = make_user(preferences=user_pb2.Preferences(email=False, sms=False))
    mesh.mesh.users.users[user.id] = user
    nid = await mesh.send(make_job(user, route=("email", "sms")))
    await delivered(mesh, nid, SUPPRESSED)
    assert mesh.mesh.status.records[nid].error == "sms preference off"
    assert not fakes.sendgrid.requests and not fakes.twilio.requests
    assert not await mesh.dead_letters()


async def test_userd_down_falls_back_to_the_snapshot(mesh: Harness, fakes: Fakes) -> None:
    user = make_user()
    mesh.mesh.users.down = True
    nid = await mesh.send(make_job(user))
    await delivered(mesh, nid)
    [attempt] = attempts(mesh, nid)
    assert orjson.loads(attempt.detail)["recipient"] == "snapshot: userd unavailable (UNAVAILABLE)"
    assert fakes.sendgrid.deliveries[0]["to"] == "ana@example.com"


async def test_push_reaches_every_device_and_removes_gone_ones(mesh: Harness, fakes: Fakes) -> None:
    subscription = fakes.webpush.subscribe()
    fakes.fcm.unregistered.add("fcm-gone")
    targets = [
        user_pb2.PushTarget(id="t-fcm", platform=common_pb2.PUSH_PLATFORM_FCM, token="fcm-ok"),
        user_pb2.PushTarget(id="t-gone", platform=common_pb2.PUSH_PLATFORM_FCM, token="fcm-gone"),
        user_pb2.PushTarget(id="t-os", platform=common_pb2.PUSH_PLATFORM_ONESIGNAL, token="os-sub"),
        user_pb2.PushTarget(
            id="t-web",
            platform=common_pb2.PUSH_PLATFORM_WEBPUSH,
            web_push=user_pb2.WebPushSubscription(
                endpoint=subscription.endpoint, p256dh=subscription.p256dh, auth=subscription.auth
            ),
        ),
    ]
    user = make_user(push_targets=targets)
    mesh.mesh.users.users[user.id] = user
    nid = await mesh.send(make_job(user, route=("push",)))
    await delivered(mesh, nid)
    [fcm] = fakes.fcm.deliveries
    assert (fcm["token"], fcm["title"], fcm["body"]) == ("fcm-ok", "Welcome", "Hello Ana")
    [onesignal] = fakes.onesignal.deliveries
    assert (onesignal["subscription_id"], onesignal["body"]) == ("os-sub", "Hello Ana")
    [web] = fakes.webpush.deliveries
    assert web["payload"]["title"] == "Welcome" and web["payload"]["data"] == {"screen": "home"}
    assert [r.target_id for r in mesh.mesh.users.removed] == ["t-gone"]
    assert [t.id for t in mesh.mesh.users.users[user.id].push_targets] == ["t-fcm", "t-os", "t-web"]
    [attempt] = attempts(mesh, nid)
    assert attempt.provider == "fcm,onesignal,webpush"
    assert fcm["name"] in attempt.provider_message_id
    detail = orjson.loads(attempt.detail)
    assert detail["removed_devices"] == ["t-gone"]
