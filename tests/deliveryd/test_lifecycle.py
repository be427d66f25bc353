"""A worker's life: the sandbox default, circuit breakers seen from outside, SIGTERM with
jobs in flight, and SIGKILL mid-delivery (redelivery, lease takeover, duplicates).

Each test has its own vhost and its own worker processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import orjson
import pytest

from herald.v1 import common_pb2, status_pb2, user_pb2
from mesh import amqp
from mesh.health import NOT_SERVING, SERVING
from tests.conftest import ServiceFactory
from tests.deliveryd.conftest import Fakes
from tests.deliveryd.harness import DELIVERED, Harness, make_job
from tests.support.infra import Isolation
from tests.support.processes import ServiceProcess, health_status
from tests.support.waits import eventually

Spawn = Callable[[str, dict[str, str]], Awaitable[ServiceProcess]]


@pytest.fixture
async def harness(isolation: Isolation) -> AsyncIterator[Harness]:
    opened = await Harness.open(isolation)
    yield opened
    await opened.close()


@pytest.fixture
async def start(service_factory: ServiceFactory, harness: Harness) -> AsyncIterator[Spawn]:
    """Starts workers for this test; whatever still runs at its end is stopped."""
    started: list[ServiceProcess] = []

    async def spawn(channel: str, env: dict[str, str]) -> ServiceProcess:
        proc = await asyncio.to_thread(service_factory, "deliveryd", channel, env=env)
        started.append(proc)
        return proc

    yield spawn
    for proc in started:
        try:
            await asyncio.to_thread(proc.stop)
        except AssertionError:
            proc.kill()


async def test_the_sandbox_is_the_default_and_keeps_the_exact_message(
    harness: Harness, start: Spawn, fakes: Fakes
) -> None:
    env = harness.env(fakes)
    for name in ("HERALD_EMAIL_PROVIDERS", "HERALD_SMS_PROVIDERS", "HERALD_PUSH_PROVIDERS"):
        env.pop(name, None)
    worker = await start("email", env)
    user = await harness.create_user()
    nid = await harness.send(make_job(user))
    await harness.settled(nid)
    [attempt] = await harness.trail(nid)
    assert attempt.provider == "sandbox"
    assert attempt.provider_message_id.startswith("sandbox-")
    assert orjson.loads(attempt.detail)["sandbox"] == {
        "to": user.email,
        "subject": "Welcome, Ana",
        "html": "<p>Hello <b>Ana</b></p>",
        "text": "Hello Ana",
    }
    assert not fakes.sendgrid.requests
    assert await asyncio.to_thread(worker.stop) == 0


async def test_the_circuit_opens_skips_the_provider_and_closes_after_recovery(
    harness: Harness, start: Spawn, fakes: Fakes
) -> None:
    env = {
        **harness.env(fakes, email="sendgrid,mailgun"),
        "HERALD_DELIVERYD_BREAKER_THRESHOLD": "2",
        "HERALD_DELIVERYD_BREAKER_COOLDOWN_SECONDS": "2",
    }
    worker = await start("email", env)
    metrics_url = f"http://127.0.0.1:{env.get('HERALD_DELIVERYD_EMAIL_METRICS_PORT') or worker.env['HERALD_DELIVERYD_EMAIL_METRICS_PORT']}/metrics"  # noqa: E501
    user = await harness.create_user()

    async def deliver() -> str:
        done = await harness.settled(await harness.send(make_job(user)))
        return done.delivered_provider

    async def circuit() -> tuple[int | None, str]:
        health = await asyncio.to_thread(
            health_status, worker.grpc_port, "herald.provider.sendgrid"
        )
        async with httpx.AsyncClient() as client:
            text = (await client.get(metrics_url)).text
        gauge = next(
            line
            for line in text.splitlines()
            if line.startswith('herald_circuit_state{provider="sendgrid"}')
        )
        return health, gauge.split()[-1]

    assert await circuit() == (SERVING, "0.0")
    # SendGrid hangs: each send waits for its timeout, then Mailgun delivers.
    fakes.sendgrid.fail_always(status=None, delay=5)
    assert [await deliver() for _ in range(2)] == ["mailgun", "mailgun"]
    assert await circuit() == (NOT_SERVING, "2.0")
    # Open: the next notifications go straight to Mailgun; SendGrid is not called.
    assert [await deliver() for _ in range(3)] == ["mailgun"] * 3
    assert len(fakes.sendgrid.requests) == 2
    # SendGrid recovers; after the cool-down a probe goes through and closes the circuit
    # (until then each notification still goes to Mailgun).
    fakes.sendgrid.heal()

    async def probed() -> bool:
        return await deliver() == "sendgrid"

    await eventually(probed)
    assert await circuit() == (SERVING, "0.0")
    assert await deliver() == "sendgrid"
    assert await asyncio.to_thread(worker.stop) == 0


async def test_sigterm_finishes_jobs_in_flight_and_exits_zero(
    harness: Harness, start: Spawn, fakes: Fakes
) -> None:
    # A SendGrid timeout well above the fake's delay: a send timed out on a busy machine
    # would be retried, and the fake (which did take it) would count two deliveries.
    env = {**harness.env(fakes, email="sendgrid"), "HERALD_SENDGRID_TIMEOUT": "2.5"}
    worker = await start("email", env)
    user = await harness.create_user()
    fakes.sendgrid.delay_next(4, seconds=0.6)
    nids = [await harness.send(make_job(user)) for _ in range(4)]
    await eventually(lambda: len(fakes.sendgrid.requests) == 4)
    assert await asyncio.to_thread(worker.stop) == 0
    assert [await harness.status(n) for n in nids] == [DELIVERED] * 4
    trails = {n: [a.detail for a in await harness.trail(n)] for n in nids}
    assert len(fakes.sendgrid.deliveries) == 4, trails
    assert "Traceback" not in worker.logs()


async def test_sigkill_mid_delivery_redelivers_and_delivers_exactly_once(
    harness: Harness, start: Spawn, fakes: Fakes
) -> None:
    """Killed while connected to the SMTP server, before any message was handed over."""
    env = {**harness.env(fakes, email="smtp"), "HERALD_SMTP_TIMEOUT": "2"}
    env["HERALD_DELIVERYD_LEASE_SECONDS"] = "3"
    worker = await start("email", env)
    user = await harness.create_user()
    fakes.smtp.stall_ehlo(30)
    nids = [await harness.send(make_job(user)) for _ in range(3)]
    await eventually(lambda: fakes.smtp.connections == 3)
    worker.kill()
    fakes.smtp.stall_ehlo(0)
    replacement = await start("email", env)
    for nid in nids:
        await harness.settled(nid)
        # The redelivered job waited out the dead worker's lease (LEASED while it held;
        # none if the replacement took longer than the lease to start), then took it over.
        first, *waiting, takeover = harness.claims(nid)
        assert first == takeover == status_pb2.CLAIM_RESULT_GRANTED
        assert set(waiting) <= {status_pb2.CLAIM_RESULT_LEASED}
    delivered_ids = sorted(d["message_id"] for d in fakes.smtp.deliveries)
    assert delivered_ids == sorted(f"<{n}.1.email@herald.test>" for n in nids)
    assert await asyncio.to_thread(replacement.stop) == 0


async def test_sigkill_after_onesignal_took_the_message_sends_it_once(
    harness: Harness, start: Spawn, fakes: Fakes
) -> None:
    """Killed while OneSignal was processing: the takeover re-sends with the same
    idempotency key, and OneSignal answers with the first result instead of sending."""
    env = {**harness.env(fakes, push="onesignal"), "HERALD_ONESIGNAL_TIMEOUT": "2"}
    env["HERALD_DELIVERYD_LEASE_SECONDS"] = "3"
    worker = await start("push", env)
    target = user_pb2.PushTarget(
        platform=common_pb2.PUSH_PLATFORM_ONESIGNAL, token="3b9e6f2a-8c41-4d7e-a5f0-1e2d3c4b5a69"
    )
    user = await harness.create_user(push_targets=[target])
    fakes.onesignal.delay_next(3, seconds=1.5)
    nids = [await harness.send(make_job(user, route=("push",))) for _ in range(3)]
    await eventually(lambda: len(fakes.onesignal.requests) == 3)
    worker.kill()
    await eventually(lambda: len(fakes.onesignal.deliveries) == 3)
    replacement = await start("push", env)
    for nid in nids:
        await harness.settled(nid)
        [attempt] = await harness.trail(nid)
        assert orjson.loads(attempt.detail)["devices"][0]["outcome"] == "delivered"
    # Each notification was sent twice to OneSignal, and delivered once.
    assert len(fakes.onesignal.requests) == 6
    assert len(fakes.onesignal.deliveries) == 3
    assert len({d["idempotency_key"] for d in fakes.onesignal.deliveries}) == 3
    assert await asyncio.to_thread(replacement.stop) == 0


async def test_sigkill_after_sendgrid_took_the_message_is_a_marked_duplicate(
    harness: Harness, start: Spawn, fakes: Fakes
) -> None:
    """The limit of at-least-once: SendGrid has no idempotency key. A worker killed after
    SendGrid accepted the message but before the report leaves a send the takeover repeats;
    both copies carry the same `herald_key`, so the duplicate is identifiable downstream."""
    env = harness.env(fakes, email="sendgrid")
    env["HERALD_DELIVERYD_LEASE_SECONDS"] = "3"
    env["HERALD_SENDGRID_TIMEOUT"] = "2"
    worker = await start("email", env)
    user = await harness.create_user()
    fakes.sendgrid.delay_next(1, seconds=1.5)
    nid = await harness.send(make_job(user))
    await eventually(lambda: len(fakes.sendgrid.requests) == 1)
    worker.kill()
    replacement = await start("email", env)
    await harness.settled(nid)
    keys = [d["custom_args"]["herald_key"] for d in fakes.sendgrid.deliveries]
    assert keys == [f"{nid}:1:email", f"{nid}:1:email"]
    assert await asyncio.to_thread(replacement.stop) == 0


async def test_an_alert_waits_for_a_worker_and_only_critical_failures_page(
    harness: Harness, start: Spawn, fakes: Fakes
) -> None:
    """The failure was recorded (and dead-lettered) while no worker ran, as after a crash
    right after the report: the alert still goes out once a worker is back."""
    user = await harness.create_user()
    critical = make_job(user, message_type=common_pb2.MESSAGE_TYPE_ALERT)
    critical.last_error = "twilio: 30003 unreachable"
    routine = make_job(user, priority=common_pb2.PRIORITY_LOW)
    for job in (routine, critical):
        await harness.dead_letter(job)

    await start("sms", harness.env(fakes, sms="twilio"))

    # Both copies taken off alerts.queue (the routine one first, paging nobody).
    async def alerted() -> bool:
        return bool(harness.webhook.deliveries) and not await harness.ready(amqp.ALERTS_QUEUE)

    await eventually(alerted)
    [alert] = harness.webhook.deliveries
    assert (alert["notification_id"], alert["error"]) == (
        critical.notification_id,
        "twilio: 30003 unreachable",
    )
    # failed.queue keeps both dead letters for inspection.
    kept = await harness.dead_letters()
    assert {j.notification_id for j in kept} == {routine.notification_id, critical.notification_id}
