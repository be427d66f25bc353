"""Accepted means durable: through a crash or a broker outage; a database outage refuses."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aio_pika
import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2

from bench.stages import scrape
from herald.v1 import notification_pb2_grpc
from mesh import amqp
from tests.conftest import ServiceFactory
from tests.gateway.core.conftest import gateway_env
from tests.gateway.core.helpers import (
    CLIENT,
    Queues,
    fail_every_channel,
    send_request,
)
from tests.gateway.core.own_postgres import OwnPostgres
from tests.gateway.core.peers import Peers
from tests.support.infra import Isolation
from tests.support.metrics import relay_passed
from tests.support.processes import SERVING, ServiceProcess, health_status, wait_for_health
from tests.support.rabbit import OwnRabbit

EMAIL = amqp.queue_name("email")
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def test_a_hop_left_unpublished_by_a_crash_is_published_by_the_relay(
    notifications,
    queues: Queues,
    peers: Peers,
    db: psycopg.Connection[dict[str, Any]],
    gateway: ServiceProcess,
) -> None:
    user = peers.users.add()
    sent = await notifications.Send(send_request(user.id), metadata=CLIENT)
    await queues.wait_for(EMAIL, 1)
    await published(db, sent.notification_id)
    # As if the process died between the commit and the publish: the row is all there is.
    db.execute(
        """UPDATE notifications SET publish_pending = true, publish_after = now(),
               published_at = NULL WHERE id = %s""",
        (sent.notification_id,),
    )

    [again] = await queues.wait_for(EMAIL, 1)

    assert again.job.notification_id == sent.notification_id
    assert again.message.message_id == f"{sent.notification_id}:1:email:1"
    await published(db, sent.notification_id)
    await relay_passed(gateway)  # a whole pass after the mark
    assert await queues.take(EMAIL) == []  # once relayed and marked, not again


async def test_a_dead_letter_left_unpublished_by_a_crash_is_published_by_the_relay(
    notifications,
    statuses,
    queues: Queues,
    peers: Peers,
    db: psycopg.Connection[dict[str, Any]],
) -> None:
    user = peers.users.add()
    sent = await notifications.Send(send_request(user.id), metadata=CLIENT)
    await queues.wait_for(EMAIL, 1)
    await fail_every_channel(notifications, statuses, sent.notification_id)
    [dead] = await queues.wait_for(amqp.FAILED_QUEUE, 1)
    await published(db, sent.notification_id)
    # As if the gateway died between the commit of `failed` and the dead letter's publish.
    db.execute(
        """UPDATE notifications SET publish_pending = true, publish_after = now(),
               published_at = NULL WHERE id = %s""",
        (sent.notification_id,),
    )

    [again] = await queues.wait_for(amqp.FAILED_QUEUE, 1)

    assert again.job.notification_id == dead.job.notification_id == sent.notification_id
    assert again.job.last_error == "every provider refused"
    await published(db, sent.notification_id)
    assert await queues.take(EMAIL) == []  # a failed notification's hop is not re-sent


async def published(db: psycopg.Connection[dict[str, Any]], notification_id: str) -> None:
    """Waits until the outbox has marked the notification's hop published."""
    deadline = time.monotonic() + 10
    while True:
        row = db.execute(
            "SELECT publish_pending FROM notifications WHERE id = %s", (notification_id,)
        ).fetchone()
        assert row is not None
        if not row["publish_pending"]:
            return
        assert time.monotonic() < deadline, "the hop was never marked published"
        await asyncio.sleep(0.05)


async def _connect(url: str, timeout: float = 30.0) -> aio_pika.abc.AbstractConnection:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await aio_pika.connect(url)
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _outbox_lag(http_port: int | None, wanted: Callable[[float], bool]) -> None:
    """Waits until the gateway's herald_outbox_lag_seconds is as `wanted`."""
    deadline = time.monotonic() + 30
    while True:
        samples = await asyncio.to_thread(
            scrape, f"http://127.0.0.1:{http_port}", "herald_outbox_lag", "quantile"
        )
        lag = samples.get(("herald_outbox_lag_seconds", ""))
        if lag is not None and wanted(lag):
            return
        assert time.monotonic() < deadline, f"outbox lag {lag}"
        await asyncio.sleep(0.2)


async def test_a_broker_outage_never_loses_an_accepted_notification(
    service_factory: ServiceFactory, peers: Peers, isolation: Isolation, tmp_path: Path
) -> None:
    rabbit = OwnRabbit(tmp_path / "rabbit")
    await asyncio.to_thread(rabbit.start)
    proc = None
    try:
        env = gateway_env(
            peers,
            HERALD_AMQP_URL=rabbit.amqp_url,
            HERALD_GATEWAY_DATABASE=isolation.database("notifications_outage"),
            HERALD_PUBLISH_TIMEOUT_SECONDS="1",
        )
        proc = await asyncio.to_thread(service_factory, "gateway", env=env)
        channel = proc.channel()
        stub = notification_pb2_grpc.NotificationServiceStub(channel)
        user = peers.users.add()
        before = await stub.Send(send_request(user.id), metadata=CLIENT)

        await asyncio.to_thread(rabbit.stop)
        accepted: list[str] = []
        refused = 0
        for _ in range(6):
            try:
                answer = await stub.Send(send_request(user.id), metadata=CLIENT, timeout=15)
            except grpc.aio.AioRpcError as exc:  # failing cleanly is allowed, losing is not
                assert exc.code() == grpc.StatusCode.UNAVAILABLE
                refused += 1
            else:
                accepted.append(answer.notification_id)
        assert accepted, "with PostgreSQL up, a broker outage should not refuse Sends"
        # The process keeps serving; only its optional broker dependency is down.
        assert health_status(proc.grpc_port) == SERVING
        assert health_status(proc.grpc_port, "herald.dependency.rabbitmq") == NOT_SERVING
        # The outbox falls behind, and says so (HeraldOutboxBehind alerts on it).
        await _outbox_lag(proc.http_port, lambda lag: lag > 0)

        await asyncio.to_thread(rabbit.start)
        connection = await _connect(rabbit.amqp_url)
        try:
            queues = Queues(await connection.channel())
            got = await queues.wait_for(EMAIL, 1 + len(accepted), timeout=60)
            ids = sorted(d.job.notification_id for d in got)
            assert ids == sorted([before.notification_id, *accepted])  # each exactly once
            # Until anything left unmarked through the outage would be relayed again.
            await relay_passed(proc, grace=float(env["HERALD_OUTBOX_GRACE_SECONDS"]))
            assert await queues.take(EMAIL) == []
        finally:
            await connection.close()
        await _outbox_lag(proc.http_port, lambda lag: lag == 0)

        # And publishing works inline again after the broker came back.
        after = await stub.Send(send_request(user.id), metadata=CLIENT)
        connection = await _connect(rabbit.amqp_url)
        try:
            queues = Queues(await connection.channel())
            [latest] = await queues.wait_for(EMAIL, 1)
            assert latest.job.notification_id == after.notification_id
        finally:
            await connection.close()
        await channel.close()
    finally:
        if proc is not None:
            await asyncio.to_thread(proc.stop)
        await asyncio.to_thread(rabbit.stop)


async def test_with_the_database_down_send_fails_cleanly_then_recovers(
    service_factory: ServiceFactory,
    peers: Peers,
    core_amqp_url: str,
    queues: Queues,
) -> None:
    postgres = await asyncio.to_thread(OwnPostgres)
    await asyncio.to_thread(postgres.start)
    proc = None
    try:
        env = gateway_env(
            peers,
            HERALD_POSTGRES_URL=postgres.url,
            HERALD_AMQP_URL=core_amqp_url,
        )
        proc = await asyncio.to_thread(service_factory, "gateway", env=env)
        channel = proc.channel()
        stub = notification_pb2_grpc.NotificationServiceStub(channel)
        user = peers.users.add()
        first = await stub.Send(send_request(user.id), metadata=CLIENT)
        await queues.wait_for(EMAIL, 1)

        await asyncio.to_thread(postgres.stop)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Send(send_request(user.id), metadata=CLIENT, timeout=30)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert await queues.take(EMAIL) == []  # nothing half-accepted went out
        await asyncio.to_thread(wait_for_health, proc.grpc_port, NOT_SERVING)

        await asyncio.to_thread(postgres.start)
        await asyncio.to_thread(wait_for_health, proc.grpc_port, SERVING)
        again = await stub.Send(send_request(user.id), metadata=CLIENT, timeout=30)
        assert again.notification_id != first.notification_id
        got = await queues.wait_for_ids(EMAIL, {again.notification_id})
        # The first one may come again: its "published" mark may have missed the database.
        assert {d.job.notification_id for d in got} <= {
            first.notification_id,
            again.notification_id,
        }
        await channel.close()
    finally:
        if proc is not None:
            await asyncio.to_thread(proc.stop)
        await asyncio.to_thread(postgres.remove)
