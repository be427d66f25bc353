"""Time-aware delivery end to end, every process real (userd, templated, gateways,
deliveryd email and sms) on real PostgreSQL, Redis and RabbitMQ, the providers faked:
scheduled sends survive a gateway restart and go out once with two gateways, Cancel over
REST, an API key over its rate (REST and gRPC), providers paced across workers, a
provider's 429; and the metrics each of these moves, read from the processes."""

from __future__ import annotations

import asyncio
import collections
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import httpx
import psycopg
import pytest
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from bench.stages import scrape
from gateway.callers import API_KEY_HEADER
from herald.v1 import common_pb2, notification_pb2
from tests.conftest import ServiceFactory
from tests.deliveryd.conftest import Fakes
from tests.deliveryd.e2e_stack import DELIVERED, OUTCOME, TEMPLATE, Stack, open_stack
from tests.gateway.http.conftest import apikeys, bearer
from tests.support.infra import POSTGRES_URL, Isolation
from tests.support.processes import ServiceProcess

NAME = "timeaware"
SMS = common_pb2.CHANNEL_SMS
# Twilio as the fake enforces it on the workers: 4 a second, no burst beyond one.
TWILIO_RATE = "4/s burst 1"


@pytest.fixture(scope="module")
async def stack(
    service_factory: ServiceFactory, isolation: Isolation, session_fakes: Fakes
) -> AsyncIterator[Stack]:
    async with open_stack(
        service_factory,
        isolation,
        session_fakes,
        name=NAME,
        gateway_env={"HERALD_GATEWAY_API_KEY_CACHE_SECONDS": "0"},
        worker_env={
            "HERALD_PROVIDER_RATES": json.dumps({"twilio": TWILIO_RATE}),
            "HERALD_DELIVERYD_LEASE_SECONDS": "20",
        },
        workers=("email", "sms"),
    ) as built:
        yield built


@pytest.fixture
async def e2e(stack: Stack, fakes: Fakes) -> Stack:
    return stack


@pytest.fixture(scope="module")
def admin_key(stack: Stack) -> dict[str, str]:
    """An admin key, made once with the CLI; the tests make other keys with it over REST."""
    done = apikeys(stack.gateway, "create", "--name", "admin", "--scopes", "admin", "--json")
    assert done.returncode == 0, done.stderr
    created: dict[str, str] = json.loads(done.stdout)
    return created


def database(isolation: Isolation) -> str:
    return f"{POSTGRES_URL}/{isolation.database(f'notifications_{NAME}')}"


async def counted(url: str, name: str, label: str, value: str) -> float:
    """A counter of the process at `url`, by its one label (0 before its first count)."""
    samples = await asyncio.to_thread(scrape, url, name.removesuffix("_total"), label)
    return samples.get((name, value), 0.0)


def sms_metrics(worker: ServiceProcess) -> str:
    return f"http://127.0.0.1:{worker.env['HERALD_DELIVERYD_SMS_METRICS_PORT']}"


def at(seconds: float) -> notification_pb2.SendRequest:
    """A send_at `seconds` from now, as the Send field."""
    request = notification_pb2.SendRequest()
    request.send_at.FromDatetime(datetime.now(UTC) + timedelta(seconds=seconds))
    return request


async def test_a_scheduled_notification_survives_a_gateway_restart(e2e: Stack) -> None:
    user = await e2e.create_user()
    send_at = at(5).send_at
    notification_id = await e2e.send(user, send_at=send_at)
    assert (await e2e.notification(notification_id)).status == (
        common_pb2.NOTIFICATION_STATUS_SCHEDULED
    )
    # The gateway stops and starts again while the notification waits: nothing of it was
    # held in a process.
    assert await asyncio.to_thread(e2e.gateway.stop) == 0
    await asyncio.to_thread(e2e.gateway.start)
    delivered = await e2e.settled(notification_id, timeout=30)
    due = send_at.ToDatetime(UTC)
    attempt = delivered.attempts[-1]
    assert [a.outcome for a in delivered.attempts] == [
        OUTCOME.ATTEMPT_OUTCOME_HELD,
        OUTCOME.ATTEMPT_OUTCOME_RELEASED,
        OUTCOME.ATTEMPT_OUTCOME_DELIVERED,
    ]
    # After its time, never before: the release, and the worker's send.
    assert delivered.attempts[1].start_time.ToDatetime(UTC) >= due
    assert attempt.start_time.ToDatetime(UTC) >= due
    assert delivered.send_at == send_at


async def test_a_thousand_scheduled_for_one_second_go_out_once_with_two_gateways(
    e2e: Stack, service_factory: ServiceFactory, isolation: Isolation, fakes: Fakes
) -> None:
    second = await asyncio.to_thread(service_factory, "gateway", env=e2e.gateway.env)
    try:
        # Health answered on the shared port may be the first gateway's: wait for the
        # second's own scheduler to listen.
        deadline = time.monotonic() + 30
        while "herald_scheduled" not in second.logs():
            assert time.monotonic() < deadline, second.logs()
            await asyncio.sleep(0.1)
        user = await e2e.create_user()
        send_at = at(6).send_at
        variables = struct_pb2.Struct()
        variables.update({"name": "Ada"})
        ids: list[str] = []
        for _ in range(2):
            requests = [
                notification_pb2.SendRequest(
                    user_id=user.id,
                    channel=common_pb2.CHANNEL_EMAIL,
                    template_code=TEMPLATE,
                    request_id=f"thousand-{uuid.uuid4().hex}",
                    variables=variables,
                    send_at=send_at,
                )
                for _ in range(500)
            ]
            answer = await e2e.notifications.SendBatch(
                notification_pb2.SendBatchRequest(requests=requests), timeout=30
            )
            assert all(r.HasField("accepted") for r in answer.results), answer.results[0]
            ids += [r.accepted.notification_id for r in answer.results]
        assert len(set(ids)) == 1000

        def all_delivered() -> bool:
            with psycopg.connect(database(isolation)) as conn:
                row = conn.execute(
                    """SELECT count(*) FROM notifications
                       WHERE id = ANY(%s) AND status = 'delivered'""",
                    ([uuid.UUID(i) for i in ids],),
                ).fetchone()
            return bool(row and row[0] == 1000)

        deadline = time.monotonic() + 120
        while not await asyncio.to_thread(all_delivered):
            assert time.monotonic() < deadline, "not all 1000 delivered in 2 minutes"
            await asyncio.sleep(0.5)
        with psycopg.connect(database(isolation)) as conn:
            released = conn.execute(
                """SELECT notification_id, count(*) FROM delivery_attempts
                   WHERE notification_id = ANY(%s) AND outcome = %s GROUP BY 1""",
                ([uuid.UUID(i) for i in ids], OUTCOME.ATTEMPT_OUTCOME_RELEASED),
            ).fetchall()
            early = conn.execute(
                """SELECT count(*) FROM delivery_attempts
                   WHERE notification_id = ANY(%s) AND outcome = %s AND start_time < %s""",
                (
                    [uuid.UUID(i) for i in ids],
                    OUTCOME.ATTEMPT_OUTCOME_DELIVERED,
                    send_at.ToDatetime(UTC),
                ),
            ).fetchone()
        assert len(released) == 1000 and {count for _, count in released} == {1}
        assert early == (0,)
        # The provider was asked once per notification.
        sent = collections.Counter(
            d["custom_args"].get("herald_notification_id") for d in fakes.sendgrid.deliveries
        )
        assert sum(sent[i] for i in ids) == 1000 and all(sent[i] == 1 for i in ids)
    finally:
        assert await asyncio.to_thread(second.stop) == 0


async def test_cancel_before_dispatch_wins_after_delivery_conflicts(
    e2e: Stack, admin_key: dict[str, str]
) -> None:
    key = admin_key
    user = await e2e.create_user()
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{e2e.gateway.http_port}",
        headers=bearer(key["key"]),
        timeout=10,
    ) as http:
        body = {
            "notification_type": "email",
            "user_id": user.id,
            "template_code": TEMPLATE,
            "variables": {"name": "Ada"},
        }
        later = await http.post(
            "/api/v1/notifications/",
            json={**body, "send_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
        )
        assert later.status_code == 202 and later.json()["status"] == "scheduled", later.text
        scheduled_id = later.json()["notification_id"]
        cancelled = await http.post(
            f"/api/v1/notifications/{scheduled_id}/cancel", json={"reason": "plans changed"}
        )
        assert cancelled.status_code == 200, cancelled.text
        answer = cancelled.json()
        assert answer["status"] == "cancelled"
        assert answer["attempts"][-1]["outcome"] == "cancelled"
        assert answer["attempts"][-1]["worker"].startswith(f"apikey:{key['id']}:")

        now = await http.post("/api/v1/notifications/", json=body)
        assert now.status_code == 202, now.text
        sent_id = now.json()["notification_id"]
        await e2e.settled(sent_id, client=key["client_id"])
        late = await http.post(f"/api/v1/notifications/{sent_id}/cancel")
        assert late.status_code == 409, late.text
        assert f"notification {sent_id} is delivered" in late.json()["error"]["message"]


async def test_a_client_over_its_rate_gets_429_and_others_do_not(
    e2e: Stack, admin_key: dict[str, str]
) -> None:
    # A client's own scopes (an admin key would list every client's notifications).
    scopes = "notifications:send,notifications:read"
    rate = ("--rate", "1", "--burst", "2")
    made = apikeys(e2e.gateway, "create", "--name", "slow", "--scopes", scopes, *rate, "--json")
    assert made.returncode == 0, made.stderr
    slow = json.loads(made.stdout)
    gateway_url = f"http://127.0.0.1:{e2e.gateway.http_port}"
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as http:
        created = await http.post(
            "/api/v1/api-keys/",
            json={"name": "other", "scopes": scopes.split(",")},
            headers=bearer(admin_key["key"]),
        )
        assert created.status_code == 201, created.text
    other = created.json()
    user = await e2e.create_user()
    throttled = await counted(gateway_url, "herald_throttled_total", "limit", "client")
    body = {
        "notification_type": "email",
        "user_id": user.id,
        "template_code": TEMPLATE,
        "variables": {"name": "Ada"},
        "send_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
    }
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{e2e.gateway.http_port}", timeout=10
    ) as http:
        answers = [
            await http.post("/api/v1/notifications/", json=body, headers=bearer(slow["key"]))
            for _ in range(3)
        ]
        assert [a.status_code for a in answers] == [202, 202, 429], answers[-1].text
        assert int(answers[2].headers["Retry-After"]) >= 1
        assert answers[2].json()["error"]["code"] == "RESOURCE_EXHAUSTED"
        # Nothing was stored for the refused one: the client has two notifications.
        listed = await http.get("/api/v1/notifications/", headers=bearer(slow["key"]))
        assert len(listed.json()["items"]) == 2
        # Another key of the same machine is unaffected.
        for _ in range(3):
            ok = await http.post("/api/v1/notifications/", json=body, headers=bearer(other["key"]))
            assert ok.status_code == 202, ok.text

    # Over gRPC the key's Sends at once, five against its burst of two, are refused with
    # RESOURCE_EXHAUSTED and google.rpc.RetryInfo in the status details.
    variables = struct_pb2.Struct()
    variables.update({"name": "Ada"})
    sent = await asyncio.gather(
        *(
            e2e.notifications.Send(
                notification_pb2.SendRequest(
                    user_id=user.id,
                    channel=common_pb2.CHANNEL_EMAIL,
                    template_code=TEMPLATE,
                    variables=variables,
                    send_at=at(3600).send_at,
                ),
                metadata=((API_KEY_HEADER, slow["key"]),),
                timeout=10,
            )
            for _ in range(5)
        ),
        return_exceptions=True,
    )
    refused = [r for r in sent if isinstance(r, grpc.aio.AioRpcError)]
    assert len(refused) >= 3, sent
    assert {r.code() for r in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    error = refused[0]
    assert "grpc-status-details-bin" in {key for key, _ in error.trailing_metadata() or ()}
    status = rpc_status.from_call(error)
    assert status is not None and status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    [detail] = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
    retry = error_details_pb2.RetryInfo()
    detail.Unpack(retry)
    assert retry.retry_delay.ToTimedelta() > timedelta(0)
    # Each refusal counted once: the REST one and the gRPC ones.
    assert await counted(gateway_url, "herald_throttled_total", "limit", "client") == (
        throttled + 1 + len(refused)
    )


async def test_twilio_never_sees_more_than_its_rate_across_two_sms_workers(
    e2e: Stack, fakes: Fakes
) -> None:
    second = await asyncio.to_thread(e2e.factory, "deliveryd", "sms", env=e2e.worker_env)
    workers = (e2e.workers["sms"], second)

    async def pacing(name: str) -> float:
        return sum([await counted(sms_metrics(w), name, "provider", "twilio") for w in workers])

    try:
        paced = await pacing("herald_provider_paced_total")
        unavailable = await pacing("herald_provider_pacing_unavailable_total")
        user = await e2e.create_user()
        ids = await asyncio.gather(*(e2e.send(user, SMS) for _ in range(16)))
        for notification_id in ids:
            await e2e.settled(notification_id, timeout=60)
        # The workers waited for the shared rate, which Redis kept for both all along.
        assert await pacing("herald_provider_paced_total") > paced
        assert await pacing("herald_provider_pacing_unavailable_total") == unavailable
    finally:
        assert await asyncio.to_thread(second.stop) == 0
    assert len(fakes.twilio.sends()) == 16
    # GCRA at 4/s with a burst of 1: at most 1 + 4 in any second, whichever worker sent.
    assert fakes.twilio.busiest(1.0) <= 5, fakes.twilio.sends()


async def test_a_429_is_retried_after_its_retry_after_without_a_failure(
    e2e: Stack, fakes: Fakes
) -> None:
    sms_worker = sms_metrics(e2e.workers["sms"])
    throttled = await counted(sms_worker, "herald_provider_throttled_total", "provider", "twilio")
    fakes.twilio.throttle_next(1, retry_after=1)
    user = await e2e.create_user()
    notification_id = await e2e.send(user, SMS)
    delivered = await e2e.settled(notification_id, timeout=30)
    [attempt] = delivered.attempts
    # One attempt, delivered: the 429 used up no attempt and was no failure.
    assert (attempt.attempt, attempt.outcome, attempt.provider) == (
        1,
        OUTCOME.ATTEMPT_OUTCOME_DELIVERED,
        "twilio",
    )
    [tried] = json.loads(attempt.detail)["tries"]
    assert tried["throttled"] == 1 and tried["waited_s"] >= 1.0
    first, again = fakes.twilio.sends()
    assert again - first >= 1.0
    assert delivered.status == DELIVERED
    assert await counted(sms_worker, "herald_provider_throttled_total", "provider", "twilio") == (
        throttled + 1
    )
