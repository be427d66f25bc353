"""The queue topology on the run's own RabbitMQ vhost: routing, delays, dead letters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from mesh import amqp
from tests.support.infra import Isolation


@pytest.fixture
async def channel(isolation: Isolation) -> AsyncIterator[AbstractChannel]:
    connection = await amqp.connect(isolation.amqp_url)
    async with connection:
        ch = await connection.channel()
        await amqp.declare_topology(ch, delay_tiers=(1, 5))
        dead_letters = (amqp.FAILED_QUEUE, amqp.ALERTS_QUEUE)
        for name in (*(amqp.queue_name(c) for c in amqp.CHANNELS), *dead_letters):
            await (await ch.get_queue(name)).purge()
        yield ch


async def _get_one(queue: AbstractQueue, timeout: float = 5.0) -> AbstractIncomingMessage:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        message = await queue.get(fail=False, no_ack=False)
        if message is not None:
            return message
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"nothing arrived on {queue.name}")
        await asyncio.sleep(0.05)


async def test_declaring_twice_is_harmless(channel: AbstractChannel) -> None:
    await amqp.declare_topology(channel, delay_tiers=(1, 5))


async def test_each_channel_routes_to_its_queue(channel: AbstractChannel) -> None:
    exchange = await channel.get_exchange(amqp.EXCHANGE)
    for name in amqp.CHANNELS:
        await exchange.publish(aio_pika.Message(name.encode()), routing_key=name)
    for name in amqp.CHANNELS:
        message = await _get_one(await channel.get_queue(amqp.queue_name(name)))
        assert message.body == name.encode()
        await message.ack()


async def test_delay_queue_returns_the_message_to_its_channel(channel: AbstractChannel) -> None:
    exchange = await channel.get_exchange(amqp.EXCHANGE)
    started = asyncio.get_running_loop().time()
    await exchange.publish(
        aio_pika.Message(b"later", expiration=0.3), routing_key=amqp.delay_queue_name("sms", 1)
    )
    sms = await channel.get_queue(amqp.queue_name("sms"))
    assert await sms.get(fail=False) is None
    message = await _get_one(sms)
    assert message.body == b"later"
    assert asyncio.get_running_loop().time() - started >= 0.25
    await message.ack()


async def test_rejected_message_is_dead_lettered_to_failed_queue(channel: AbstractChannel) -> None:
    exchange = await channel.get_exchange(amqp.EXCHANGE)
    await exchange.publish(aio_pika.Message(b"doomed"), routing_key="push")
    message = await _get_one(await channel.get_queue(amqp.queue_name("push")))
    await message.reject(requeue=False)
    dead = await _get_one(await channel.get_queue(amqp.FAILED_QUEUE))
    assert dead.body == b"doomed"
    deaths = dead.headers["x-death"]
    assert isinstance(deaths, list) and isinstance(deaths[0], dict)
    assert deaths[0]["queue"] == "push.queue"
    await dead.ack()
    # alerts.queue gets a copy of every dead letter, for the workers' admin alerts.
    copy = await _get_one(await channel.get_queue(amqp.ALERTS_QUEUE))
    assert copy.body == b"doomed"
    await copy.ack()


async def test_higher_priority_is_consumed_first(channel: AbstractChannel) -> None:
    exchange = await channel.get_exchange(amqp.EXCHANGE)
    for priority in (1, 9, 3):
        await exchange.publish(
            aio_pika.Message(str(priority).encode(), priority=priority), routing_key="email"
        )
    email = await channel.get_queue(amqp.queue_name("email"))
    order = []
    for _ in range(3):
        message = await _get_one(email)
        order.append(int(message.body))
        await message.ack()
    assert order == [9, 3, 1]


def test_delay_tiers() -> None:
    assert amqp.pick_delay_tier(0.2, (1, 5, 30)) == 1
    assert amqp.pick_delay_tier(4.9, (30, 1, 5)) == 5
    assert amqp.pick_delay_tier(500, (1, 5, 30)) == 30
