"""deliveryd email/sms/push as real processes, against real RabbitMQ (a vhost of this
module), the fake providers, and the real gateway StatusService and userd in process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import orjson
import pytest

from herald.v1 import common_pb2, delivery_pb2, status_pb2, user_pb2
from mesh import amqp
from tests.conftest import ServiceFactory
from tests.deliveryd.conftest import Fakes
from tests.deliveryd.harness import (
    CLAIMS,
    FAILED,
    PENDING,
    REPORTS,
    SUPPRESSED,
    Harness,
    jobs_counted,
    make_job,
)
from tests.deliveryd.services import BACKOFF_BASE
from tests.support.infra import Isolation
from tests.support.processes import ServiceProcess
from tests.support.waits import eventually

OUTCOME = delivery_pb2.AttemptOutcome
EMAIL, SMS = common_pb2.CHANNEL_EMAIL, common_pb2.CHANNEL_SMS


@pytest.fixture(scope="module")
async def harness(isolation: Isolation) -> AsyncIterator[Harness]:
    opened = await Harness.open(isolation)
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
async def herald(harness: Harness, workers: dict[str, ServiceProcess], fakes: Fakes) -> Harness:
    harness.gateway.faults.heal()
    harness.userd.faults.heal()
    await harness.dead_letters()
    harness.webhook.reset()
    return harness


async def test_email_reaches_sendgrid_exactly_and_is_delivered(
    herald: Harness, fakes: Fakes
) -> None:
    user = await herald.create_user()
    nid = await herald.send(make_job(user))
    done = await herald.settled(nid)
    [delivery] = fakes.sendgrid.deliveries
    assert delivery["to"] == user.email
    assert (delivery["subject"], delivery["text"], delivery["html"]) == (
        "Welcome, Ana",
        "Hello Ana",
        "<p>Hello <b>Ana</b></p>",
    )
    assert delivery["custom_args"]["herald_key"] == f"{nid}:1:email"
    assert (done.delivered_channel, done.delivered_provider) == (EMAIL, "sendgrid")
    [attempt] = await herald.trail(nid)
    assert (attempt.provider, attempt.outcome) == ("sendgrid", OUTCOME.ATTEMPT_OUTCOME_DELIVERED)
    assert attempt.provider_message_id == delivery["message_id"]
    # The attempt's id went with the message: SendGrid's events will name it.
    assert delivery["custom_args"]["herald_attempt_id"] == str(attempt.id)
    assert attempt.worker and attempt.duration_us > 0
    assert orjson.loads(attempt.detail)["recipient"] == "userd"


async def test_sendgrid_failing_is_delivered_by_mailgun(herald: Harness, fakes: Fakes) -> None:
    user = await herald.create_user()
    fakes.sendgrid.fail_next(status=503)
    nid = await herald.send(make_job(user))
    await herald.settled(nid)
    assert not fakes.sendgrid.deliveries
    [delivery] = fakes.mailgun.deliveries
    assert (delivery["to"], delivery["subject"]) == (user.email, "Welcome, Ana")
    [attempt] = await herald.trail(nid)
    assert attempt.provider == "mailgun"
    tries = orjson.loads(attempt.detail)["tries"]
    assert [(t["provider"], t["outcome"]) for t in tries] == [
        ("sendgrid", "transient"),
        ("mailgun", "delivered"),
    ]


async def test_transient_failures_are_retried_with_growing_delays(
    herald: Harness, fakes: Fakes
) -> None:
    user = await herald.create_user()
    fakes.sendgrid.fail_next(2, status=503)
    fakes.mailgun.fail_next(2, status=500)
    nid = await herald.send(make_job(user))
    await herald.settled(nid)
    transient = OUTCOME.ATTEMPT_OUTCOME_TRANSIENT_FAILURE
    assert [(a.attempt, a.outcome) for a in await herald.trail(nid)] == [
        (1, transient),
        (2, transient),
        (3, OUTCOME.ATTEMPT_OUTCOME_DELIVERED),
    ]
    # Each retry came back through a delay queue no sooner than its backoff, which grows:
    # at least BACKOFF_BASE * 2^(attempt-1) (jitter only adds to it).
    times = [r.time for r in fakes.sendgrid.requests]
    assert len(times) == 3
    assert times[1] - times[0] >= BACKOFF_BASE
    assert times[2] - times[1] >= 2 * BACKOFF_BASE
    assert len(fakes.sendgrid.deliveries) == 1


async def test_a_permanent_failure_is_not_retried(herald: Harness, fakes: Fakes) -> None:
    user = await herald.create_user()
    fakes.sendgrid.invalid_recipients.add(user.email)
    nid = await herald.send(make_job(user))
    done = await herald.settled(nid, FAILED)
    [attempt] = await herald.trail(nid)
    assert attempt.outcome == OUTCOME.ATTEMPT_OUTCOME_PERMANENT_FAILURE
    assert "valid address" in attempt.error
    assert "valid address" in done.status_reason
    assert len(fakes.sendgrid.requests) == 1
    assert not fakes.mailgun.requests
    dead: list[delivery_pb2.DeliveryJob] = []

    async def dead_lettered() -> bool:
        dead.extend(await herald.dead_letters())
        return bool(dead)

    await eventually(dead_lettered)
    assert [j.notification_id for j in dead] == [nid]


async def test_a_job_consumed_after_its_deadline_is_not_sent(herald: Harness, fakes: Fakes) -> None:
    user = await herald.create_user()
    job = make_job(user, route=("email", "sms"))
    job.deadline.FromDatetime(datetime.now(UTC) - timedelta(minutes=1))
    nid = await herald.send(job)
    done = await herald.settled(nid, FAILED)
    assert done.status_reason == "deadline passed"
    # One skipped hop ends the route (the SMS hop would be as late); no provider is asked.
    assert [(a.channel, a.outcome, a.error) for a in await herald.trail(nid)] == [
        (EMAIL, OUTCOME.ATTEMPT_OUTCOME_SKIPPED, "deadline passed"),
    ]
    assert not fakes.sendgrid.requests
    assert not fakes.mailgun.requests
    assert not fakes.twilio.requests


async def test_every_email_provider_failing_falls_back_to_sms(
    herald: Harness, fakes: Fakes
) -> None:
    user = await herald.create_user()
    fakes.sendgrid.fail_always(status=503)
    fakes.mailgun.fail_always(status=503)
    nid = await herald.send(make_job(user, route=("email", "sms")))
    done = await herald.settled(nid)
    [sms] = fakes.twilio.deliveries
    assert (sms["to"], sms["body"]) == ("+5511987654321", "Hello Ana, welcome")
    trail = await herald.trail(nid)
    transient = OUTCOME.ATTEMPT_OUTCOME_TRANSIENT_FAILURE
    assert [(a.channel, a.attempt, a.outcome) for a in trail] == [
        (EMAIL, 1, transient),
        (EMAIL, 2, transient),
        (EMAIL, 3, transient),
        (SMS, 1, OUTCOME.ATTEMPT_OUTCOME_DELIVERED),
    ]
    assert (trail[3].provider, trail[3].provider_message_id) == ("twilio", sms["sid"])
    assert (done.delivered_channel, done.delivered_provider) == (SMS, "twilio")


@pytest.mark.parametrize(
    ("code", "dead_lettered"),
    [(grpc.StatusCode.FAILED_PRECONDITION, False), (grpc.StatusCode.PERMISSION_DENIED, True)],
)
async def test_a_refused_report_is_dropped_only_when_the_job_is_settled_elsewhere(
    herald: Harness,
    workers: dict[str, ServiceProcess],
    fakes: Fakes,
    code: grpc.StatusCode,
    dead_lettered: bool,
) -> None:
    """FAILED_PRECONDITION: the move is stale (another copy won), nothing to keep. Any
    other refusal (a bad token, a bug) keeps the job visible on failed.queue."""
    user = await herald.create_user()
    refused = await jobs_counted(workers["email"], "report refused")
    herald.gateway.faults.fail(*REPORTS, code=code)
    job = make_job(user)
    nid = await herald.send(job)
    await eventually(lambda: len(fakes.sendgrid.deliveries) == 1)
    dead: list[delivery_pb2.DeliveryJob] = []

    async def settled() -> bool:
        # Acked or dead-lettered: either way never redelivered and sent again.
        dead.extend(await herald.dead_letters())
        return await jobs_counted(workers["email"], "report refused") > refused

    await eventually(settled)
    dead.extend(await herald.dead_letters())
    assert [j.notification_id for j in dead] == ([nid] if dead_lettered else [])
    assert len(fakes.sendgrid.deliveries) == 1
    assert await herald.status(nid) == PENDING
    assert not await herald.trail(nid)


async def test_everything_failing_fails_dead_letters_and_alerts(
    herald: Harness, fakes: Fakes
) -> None:
    user = await herald.create_user()
    fakes.sendgrid.fail_always(status=503)
    fakes.mailgun.fail_always(status=503)
    fakes.twilio.fail_always(status=500)
    job = make_job(user, route=("email", "sms"), message_type=common_pb2.MESSAGE_TYPE_ALERT)
    nid = await herald.send(job)
    failed = await herald.settled(nid, FAILED)
    assert "twilio" in failed.status_reason
    await eventually(lambda: herald.webhook.deliveries)
    [alert] = herald.webhook.deliveries
    assert alert["notification_id"] == nid
    assert alert["error"] == failed.status_reason
    assert alert["message_type"] == "MESSAGE_TYPE_ALERT"
    dead: list[delivery_pb2.DeliveryJob] = []

    async def dead_lettered() -> bool:
        dead.extend(await herald.dead_letters())
        return bool(dead)

    await eventually(dead_lettered)
    assert [(j.notification_id, j.channel) for j in dead] == [(nid, SMS)]


async def test_a_job_delivered_twice_by_the_broker_reaches_the_provider_once(
    herald: Harness, fakes: Fakes
) -> None:
    user = await herald.create_user()
    job = make_job(user)
    nid = await herald.send(job)
    await herald.publish(job)
    await herald.settled(nid)
    # The copy is dropped unsent: its hop is done (or the notification final by then).
    dropped = {status_pb2.CLAIM_RESULT_TAKEN, status_pb2.CLAIM_RESULT_FINAL}
    await eventually(lambda: dropped & set(herald.claims(nid)))
    assert len(fakes.sendgrid.deliveries) == 1


async def test_a_burst_is_claimed_and_reported_in_batch_calls(
    herald: Harness, fakes: Fakes
) -> None:
    """Jobs in flight together claim and report through BatchClaim and BatchReportStatus
    (`deliveryd.clients`), each hearing its own answer. The gateway holds the first calls
    so that those made meanwhile gather into one batch call."""
    user = await herald.create_user()
    claims = herald.gateway.faults.hold(*CLAIMS)
    reports = herald.gateway.faults.hold(*REPORTS)
    nids = [await herald.send(make_job(user)) for _ in range(12)]

    async def all_taken() -> bool:
        return claims.held > 0 and not await herald.ready(amqp.queue_name("email"))

    await eventually(all_taken)
    claims.release()
    await eventually(lambda: reports.held > 0 and len(fakes.sendgrid.deliveries) == len(nids))
    reports.release()
    for nid in nids:
        await herald.settled(nid)
    keys = sorted(d["custom_args"]["herald_key"] for d in fakes.sendgrid.deliveries)
    assert keys == sorted(f"{nid}:1:email" for nid in nids)
    assert herald.gateway.faults.answers("BatchClaim")
    assert herald.gateway.faults.answers("BatchReportStatus")
    for nid in nids:
        assert herald.claims(nid) == [status_pb2.CLAIM_RESULT_GRANTED]
        [attempt] = await herald.trail(nid)
        assert attempt.outcome == OUTCOME.ATTEMPT_OUTCOME_DELIVERED


async def test_a_job_leased_by_another_worker_waits_for_the_lease(
    herald: Harness, fakes: Fakes
) -> None:
    user = await herald.create_user()
    job = make_job(user)
    await herald.accept(job)
    # A worker that died holding the lease.
    assert await herald.ghost_claim(job, lease_seconds=2) == status_pb2.CLAIM_RESULT_GRANTED
    await herald.publish(job)
    await herald.settled(job.notification_id)
    # The ghost's claim, then the worker's: told to wait, then granted once it expired.
    leased, granted = status_pb2.CLAIM_RESULT_LEASED, status_pb2.CLAIM_RESULT_GRANTED
    assert herald.claims(job.notification_id) == [granted, leased, granted]
    assert len(fakes.sendgrid.deliveries) == 1


async def test_a_lost_report_is_made_again_without_sending_again(
    herald: Harness, workers: dict[str, ServiceProcess], fakes: Fakes
) -> None:
    user = await herald.create_user()
    requeued = await jobs_counted(workers["email"], "report failed")
    herald.gateway.faults.fail(*REPORTS)
    nid = await herald.send(make_job(user))
    await eventually(lambda: fakes.sendgrid.deliveries)

    # Report retries run out; the message is requeued and the outcome kept to re-report.
    async def given_up() -> bool:
        return await jobs_counted(workers["email"], "report failed") > requeued

    await eventually(given_up)
    assert await herald.status(nid) == PENDING
    herald.gateway.faults.heal()
    await herald.settled(nid)
    assert len(fakes.sendgrid.deliveries) == 1
    assert len(herald.claims(nid)) == 1
    [attempt] = await herald.trail(nid)
    assert attempt.outcome == OUTCOME.ATTEMPT_OUTCOME_DELIVERED


async def test_a_report_failing_a_moment_is_retried_without_requeueing(
    herald: Harness, fakes: Fakes
) -> None:
    user = await herald.create_user()
    hiccup = herald.gateway.faults.fail(*REPORTS, times=2)  # the bare call and a retry
    nid = await herald.send(make_job(user))
    await herald.settled(nid)
    assert hiccup.remaining == 0
    assert len(fakes.sendgrid.deliveries) == 1
    assert len(herald.claims(nid)) == 1


async def test_preference_turned_off_moves_on_to_the_next_channel(
    herald: Harness, fakes: Fakes
) -> None:
    user = await herald.create_user(preferences=user_pb2.Preferences(email=False))
    nid = await herald.send(make_job(user, route=("email", "sms")))
    await herald.settled(nid)
    assert not fakes.sendgrid.requests
    first, second = await herald.trail(nid)
    assert (first.outcome, first.error) == (OUTCOME.ATTEMPT_OUTCOME_SKIPPED, "email preference off")
    assert (second.channel, second.provider) == (SMS, "twilio")


async def test_every_channel_refused_by_preference_is_suppressed(
    herald: Harness, fakes: Fakes
) -> None:
    user = await herald.create_user(preferences=user_pb2.Preferences(email=False, sms=False))
    nid = await herald.send(make_job(user, route=("email", "sms")))
    done = await herald.settled(nid, SUPPRESSED)
    assert done.status_reason == "sms preference off"
    assert not fakes.sendgrid.requests and not fakes.twilio.requests
    assert not await herald.dead_letters()


async def test_userd_down_falls_back_to_the_snapshot(herald: Harness, fakes: Fakes) -> None:
    user = await herald.create_user()
    herald.userd.faults.fail()
    nid = await herald.send(make_job(user))
    await herald.settled(nid)
    [attempt] = await herald.trail(nid)
    assert orjson.loads(attempt.detail)["recipient"] == "snapshot: userd unavailable (UNAVAILABLE)"
    assert fakes.sendgrid.deliveries[0]["to"] == user.email


async def test_push_reaches_every_device_and_removes_gone_ones(
    herald: Harness, fakes: Fakes
) -> None:
    subscription = fakes.webpush.subscribe()
    fakes.fcm.unregistered.add("fcm-gone")
    onesignal_id = "0c6f4a8e-5b2d-4f1a-9e3c-7d8b6a5f4e3d"
    user = await herald.create_user(
        push_targets=[
            user_pb2.PushTarget(platform=common_pb2.PUSH_PLATFORM_FCM, token="fcm-ok"),
            user_pb2.PushTarget(platform=common_pb2.PUSH_PLATFORM_FCM, token="fcm-gone"),
            user_pb2.PushTarget(platform=common_pb2.PUSH_PLATFORM_ONESIGNAL, token=onesignal_id),
            user_pb2.PushTarget(
                platform=common_pb2.PUSH_PLATFORM_WEBPUSH,
                web_push=user_pb2.WebPushSubscription(
                    endpoint=subscription.endpoint,
                    p256dh=subscription.p256dh,
                    auth=subscription.auth,
                ),
            ),
        ]
    )
    target_ids = {t.token or t.web_push.endpoint: t.id for t in user.push_targets}
    nid = await herald.send(make_job(user, route=("push",)))
    await herald.settled(nid)
    [fcm] = fakes.fcm.deliveries
    assert (fcm["token"], fcm["title"], fcm["body"]) == ("fcm-ok", "Welcome", "Hello Ana")
    [onesignal] = fakes.onesignal.deliveries
    assert (onesignal["subscription_id"], onesignal["body"]) == (onesignal_id, "Hello Ana")
    [web] = fakes.webpush.deliveries
    assert web["payload"]["title"] == "Welcome" and web["payload"]["data"] == {"screen": "home"}
    # userd no longer has the device FCM called unregistered.
    kept = (await herald.get_user(user.id)).push_targets
    assert sorted(t.id for t in kept) == sorted(
        target_ids[k] for k in ("fcm-ok", onesignal_id, subscription.endpoint)
    )
    [attempt] = await herald.trail(nid)
    assert attempt.provider == "fcm,onesignal,webpush"
    assert fcm["name"] in attempt.provider_message_id
    detail = orjson.loads(attempt.detail)
    assert detail["removed_devices"] == [target_ids["fcm-gone"]]
