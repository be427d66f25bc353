"""HERALD_AMQP_QUEUE_TYPE=quorum on the local RabbitMQ (a vhost of this module): every queue
is a quorum queue, and priority is kept by each channel's high queue, which the worker
consumes beside the normal one, so a critical job does not wait behind the backlog."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from deliveryd.pipeline import Action, Pipeline, Verdict
from deliveryd.worker import Consumer
from gateway.outbox import Publication, Publisher
from herald.v1 import common_pb2, delivery_pb2
from mesh import amqp
from tests.support.infra import Isolation, add_vhost, release_vhost

DELAY_TIERS = (1,)


@pytest.fixture(scope="module")
async def broker(isolation: Isolation) -> AsyncIterator[tuple[str, AbstractRobustConnection]]:
    vhost = f"{isolation.vhost}-quorum-{uuid.uuid4().hex[:6]}"
    url = await asyncio.to_thread(add_vhost, vhost)
    connection = await amqp.connect(url)
    async with connection:
        channel = await connection.channel()
        await amqp.declare_topology(channel, DELAY_TIERS, queue_type="quorum")
        await channel.close()
        yield vhost, connection
    release_vhost(vhost)


@pytest.fixture
async def publisher(broker: tuple[str, AbstractRobustConnection]) -> AsyncIterator[Publisher]:
    publisher = Publisher(broker[1], timeout=5, delay_tiers=DELAY_TIERS, queue_type="quorum")
    await publisher.start()
    yield publisher
    await publisher.close()


@pytest.fixture
async def channel(broker: tuple[str, AbstractRobustConnection]) -> AsyncIterator[AbstractChannel]:
    ch = await broker[1].channel()
    for name in (amqp.queue_name("email"), amqp.high_queue_name("email"), amqp.FAILED_QUEUE):
        await (await ch.get_queue(name)).purge()
    yield ch
    await ch.close()


def publication(priority: int = common_pb2.PRIORITY_NORMAL, **fields: object) -> Publication:
    job = delivery_pb2.DeliveryJob(
        notification_id=str(uuid.uuid4()),
        channel=common_pb2.CHANNEL_EMAIL,
        priority=priority,  # type: ignore[arg-type]
        attempt=1,
    )
    return Publication(notification_id=uuid.UUID(job.notification_id), hop=1, job=job, **fields)  # type: ignore[arg-type]


async def ready(channel: AbstractChannel, queue: str, count: int) -> list[str]:
    """Takes `count` messages off `queue` as they arrive; returns their notification ids
    (and fails if a further one is there)."""
    q = await channel.get_queue(queue)
    ids: list[str] = []
    deadline = asyncio.get_running_loop().time() + 10
    while len(ids) < count and asyncio.get_running_loop().time() < deadline:
        message = await q.get(fail=False, no_ack=True)
        if message is None:
            await asyncio.sleep(0.05)
        else:
            ids.append(delivery_pb2.DeliveryJob.FromString(message.body).notification_id)
    assert await q.get(fail=False, no_ack=True) is None
    assert len(ids) == count, f"{queue}: {len(ids)} messages, wanted {count}"
    return ids


def test_every_queue_is_a_quorum_queue(broker: tuple[str, AbstractRobustConnection]) -> None:
    listed = subprocess.run(
        [
            "rabbitmqctl",
            "-q",
            "list_queues",
            "-p",
            broker[0],
            "name",
            "type",
            "--formatter",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    types = {q["name"]: q["type"] for q in json.loads(listed.stdout)}
    expected = {amqp.FAILED_QUEUE, amqp.ALERTS_QUEUE}
    for name in amqp.CHANNELS:
        expected |= {amqp.queue_name(name), amqp.high_queue_name(name)}
        expected |= {amqp.delay_queue_name(name, tier) for tier in DELAY_TIERS}
    assert set(types) == expected
    assert set(types.values()) == {"quorum"}


async def test_high_and_critical_jobs_take_the_high_queue(
    publisher: Publisher, channel: AbstractChannel
) -> None:
    levels = {
        common_pb2.PRIORITY_LOW: amqp.queue_name("email"),
        common_pb2.PRIORITY_NORMAL: amqp.queue_name("email"),
        common_pb2.PRIORITY_HIGH: amqp.high_queue_name("email"),
        common_pb2.PRIORITY_CRITICAL: amqp.high_queue_name("email"),
    }
    sent = {level: publication(level) for level in levels}
    assert all(await publisher.publish_many(list(sent.values())))

    normal = await ready(channel, amqp.queue_name("email"), 2)
    high = await ready(channel, amqp.high_queue_name("email"), 2)

    for level, queue in levels.items():
        assert sent[level].job.notification_id in (high if "high" in queue else normal)


async def test_a_delayed_job_comes_back_and_a_dead_one_is_kept(
    publisher: Publisher, channel: AbstractChannel
) -> None:
    later = publication(deliver_after=datetime.now(UTC) + timedelta(seconds=0.3))
    dead = publication(dead=True)
    assert all(await publisher.publish_many([later, dead]))

    assert await ready(channel, amqp.FAILED_QUEUE, 1) == [dead.job.notification_id]
    # Per-message expiration on a quorum delay queue, then at-least-once dead-lettering.
    assert await ready(channel, amqp.queue_name("email"), 1) == [later.job.notification_id]


class Recorder:
    """Stands in for the delivery pipeline: records the order jobs reach it, acks each."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.all_in = asyncio.Event()
        self.expected = 0

    async def handle(self, body: bytes, correlation_id: str) -> Verdict:
        self.order.append(delivery_pb2.DeliveryJob.FromString(body).notification_id)
        await asyncio.sleep(0.01)  # a send takes a moment: the backlog is real
        if len(self.order) == self.expected:
            self.all_in.set()
        return Verdict(Action.ACK)


async def test_a_critical_job_does_not_wait_behind_the_backlog(
    broker: tuple[str, AbstractRobustConnection], publisher: Publisher, channel: AbstractChannel
) -> None:
    backlog = [publication() for _ in range(40)]
    assert all(await publisher.publish_many(backlog))
    critical = publication(common_pb2.PRIORITY_CRITICAL)
    assert all(await publisher.publish_many([critical]))
    # Confirmed: every job is in its queue before the worker starts.

    recorder = Recorder()
    recorder.expected = len(backlog) + 1
    consumer = Consumer(
        connection=broker[1],
        channel="email",
        pipeline=cast(Pipeline, recorder),
        prefetch=1,
        grace_seconds=5,
        requeue_pause=0,
        queue_type="quorum",
    )
    await consumer.start()
    try:
        await asyncio.wait_for(recorder.all_in.wait(), 60)
    finally:
        await consumer.stop()

    # Consumed beside the normal queue, not after it: among the first jobs handled.
    assert recorder.order.index(critical.job.notification_id) <= 1, recorder.order[:5]
    assert sorted(recorder.order) == sorted(p.job.notification_id for p in [*backlog, critical])


def test_classic_queues_stay_one_per_channel() -> None:
    # The default is as before: one work queue per channel, priority by x-max-priority.
    assert amqp.work_queues("email", "classic") == (amqp.queue_name("email"),)
    assert amqp.work_routing_key("email", 9, "classic") == "email"
