"""RabbitMQ: a robust (reconnecting) connection and Herald's queue topology.

Topology, declared idempotently by every process that publishes or consumes:
- exchange `notifications.direct` (direct, durable);
- `email.queue`, `sms.queue`, `push.queue`, bound with routing keys `email`, `sms`,
  `push`; classic durable queues with message priority, dead-lettering to `failed`;
- `failed.queue`, bound with `failed`: the dead letters, kept for inspection;
- `alerts.queue`, bound with `failed` too: a copy of every dead letter for the workers'
  admin alerts (consumed, so a worker crash between a failure and its alert loses
  nothing: the copy comes back);
- per channel and delay tier, `<channel>.delay.<seconds>s`: no consumer; a message sits
  there until its per-message expiration, then is dead-lettered back to
  `notifications.direct` with the channel's routing key. Tiers keep messages of similar
  delays together, so a long delay never blocks a short one at the queue's head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractRobustConnection, ExchangeType

EXCHANGE = "notifications.direct"
CHANNELS = ("email", "sms", "push")
FAILED_QUEUE = "failed.queue"
FAILED_KEY = "failed"
ALERTS_QUEUE = "alerts.queue"
MAX_PRIORITY = 10
DEFAULT_DELAY_TIERS = (1, 5, 30, 120, 600)


def queue_name(channel: str) -> str:
    """`email` → `email.queue`."""
    return f"{channel}.queue"


def delay_queue_name(channel: str, tier_seconds: int) -> str:
    """`email`, 5 → `email.delay.5s`."""
    return f"{channel}.delay.{tier_seconds}s"


def pick_delay_tier(delay_seconds: float, tiers: Sequence[int]) -> int:
    """The smallest tier that can hold a delay (the largest when none can)."""
    for tier in sorted(tiers):
        if delay_seconds <= tier:
            return tier
    return max(tiers)


@dataclass(frozen=True)
class Topology:
    """What `declare_topology` made: names a publisher or consumer needs."""

    exchange: aio_pika.abc.AbstractExchange
    delay_tiers: tuple[int, ...]


async def connect(url: str) -> AbstractRobustConnection:
    """A connection that reconnects and re-declares its channels after an outage."""
    return await aio_pika.connect_robust(url, timeout=5, client_properties={"product": "herald"})


async def declare_topology(
    channel: AbstractChannel, delay_tiers: Sequence[int] = DEFAULT_DELAY_TIERS
) -> Topology:
    """Declares the exchange, the work queues, the delay queues and the dead-letter queue."""
    exchange = await channel.declare_exchange(EXCHANGE, ExchangeType.DIRECT, durable=True)
    for dead_letters in (FAILED_QUEUE, ALERTS_QUEUE):
        queue = await channel.declare_queue(dead_letters, durable=True)
        await queue.bind(exchange, routing_key=FAILED_KEY)
    for name in CHANNELS:
        queue = await channel.declare_queue(
            queue_name(name),
            durable=True,
            arguments={
                "x-max-priority": MAX_PRIORITY,
                "x-dead-letter-exchange": EXCHANGE,
                "x-dead-letter-routing-key": FAILED_KEY,
            },
        )
        await queue.bind(exchange, routing_key=name)
        for tier in delay_tiers:
            delay = await channel.declare_queue(
                delay_queue_name(name, tier),
                durable=True,
                arguments={
                    "x-dead-letter-exchange": EXCHANGE,
                    "x-dead-letter-routing-key": name,
                },
            )
            await delay.bind(exchange, routing_key=delay_queue_name(name, tier))
    return Topology(exchange=exchange, delay_tiers=tuple(sorted(delay_tiers)))


async def ping(connection: AbstractRobustConnection) -> None:
    """Raises when the connection to RabbitMQ is not open."""
    if connection.is_closed or not connection.connected.is_set():
        raise ConnectionError("RabbitMQ connection is down")
