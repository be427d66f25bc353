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

`HERALD_AMQP_QUEUE_TYPE=quorum` declares every queue a quorum queue (replicated over the
broker's nodes: losing one loses no message), dead-lettering at least once. Quorum queues
of RabbitMQ 3.x carry no per-message priority, so each channel gets a second work queue,
`<channel>.high.queue` (routing key `<channel>.high`), for high and critical jobs; the
worker consumes it beside the normal one with its own prefetch, so a high job never waits
behind the normal backlog. Retries come back through the delay queues to the normal one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractQueue, AbstractRobustConnection, ExchangeType
from aio_pika.exceptions import AMQPError

log = structlog.get_logger(__name__)

EXCHANGE = "notifications.direct"
CHANNELS = ("email", "sms", "push")
FAILED_QUEUE = "failed.queue"
FAILED_KEY = "failed"
ALERTS_QUEUE = "alerts.queue"
MAX_PRIORITY = 10
# How long a stopping consumer waits on the broker for one step (cancelling, closing): a
# robust channel waits for an absent broker to come back first, which may be never.
STOP_STEP_SECONDS = 2.0
QUEUE_TYPES = ("classic", "quorum")
# AMQP priority from which a job takes its channel's high queue in quorum mode (high: 6,
# critical: 9; gateway.outbox.AMQP_PRIORITY).
HIGH_PRIORITY = 6
DEFAULT_DELAY_TIERS = (1, 5, 30, 120, 600)


def queue_name(channel: str) -> str:
    """`email` → `email.queue`."""
    return f"{channel}.queue"


def high_queue_name(channel: str) -> str:
    """`email` → `email.high.queue` (quorum mode's high-priority queue)."""
    return f"{channel}.high.queue"


def high_routing_key(channel: str) -> str:
    return f"{channel}.high"


def work_routing_key(channel: str, priority: int, queue_type: str) -> str:
    """The routing key of a `channel` job of AMQP `priority`: the channel's own, or in
    quorum mode its high queue's for high and critical jobs."""
    if queue_type == "quorum" and priority >= HIGH_PRIORITY:
        return high_routing_key(channel)
    return channel


def work_queues(channel: str, queue_type: str) -> tuple[str, ...]:
    """The queues a `channel` worker consumes (the high one first in quorum mode)."""
    if queue_type == "quorum":
        return (high_queue_name(channel), queue_name(channel))
    return (queue_name(channel),)


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
    queue_type: str = "classic"


async def connect(url: str) -> AbstractRobustConnection:
    """A connection that reconnects and re-declares its channels after an outage."""
    return await aio_pika.connect_robust(url, timeout=5, client_properties={"product": "herald"})


def _queue_arguments(queue_type: str, **dead_letter: str) -> dict[str, Any]:
    """A queue's declare arguments: its type and where its dead letters go."""
    arguments: dict[str, Any] = {f"x-{key.replace('_', '-')}": v for key, v in dead_letter.items()}
    if queue_type == "quorum":
        arguments["x-queue-type"] = "quorum"
        if dead_letter:
            # At-least-once dead-lettering (a delayed retry or a dead letter is not lost
            # if a node fails while moving it) needs publishers refused, not old messages
            # dropped, when a queue is full.
            arguments["x-dead-letter-strategy"] = "at-least-once"
            arguments["x-overflow"] = "reject-publish"
    return arguments


async def declare_topology(
    channel: AbstractChannel,
    delay_tiers: Sequence[int] = DEFAULT_DELAY_TIERS,
    queue_type: str = "classic",
) -> Topology:
    """Declares the exchange, the work queues, the delay queues and the dead-letter queue
    (classic queues, or quorum queues with a high-priority work queue per channel)."""
    if queue_type not in QUEUE_TYPES:
        raise ValueError(f"queue_type must be one of {QUEUE_TYPES}, not {queue_type!r}")
    exchange = await channel.declare_exchange(EXCHANGE, ExchangeType.DIRECT, durable=True)
    for dead_letters in (FAILED_QUEUE, ALERTS_QUEUE):
        queue = await channel.declare_queue(
            dead_letters, durable=True, arguments=_queue_arguments(queue_type) or None
        )
        await queue.bind(exchange, routing_key=FAILED_KEY)
    to_failed = {"dead_letter_exchange": EXCHANGE, "dead_letter_routing_key": FAILED_KEY}
    for name in CHANNELS:
        work = [(queue_name(name), name)]
        if queue_type == "quorum":
            work.append((high_queue_name(name), high_routing_key(name)))
        for work_queue, key in work:
            arguments = _queue_arguments(queue_type, **to_failed)
            if queue_type == "classic":
                arguments["x-max-priority"] = MAX_PRIORITY
            queue = await channel.declare_queue(work_queue, durable=True, arguments=arguments)
            await queue.bind(exchange, routing_key=key)
        for tier in delay_tiers:
            delay = await channel.declare_queue(
                delay_queue_name(name, tier),
                durable=True,
                arguments=_queue_arguments(
                    queue_type, dead_letter_exchange=EXCHANGE, dead_letter_routing_key=name
                ),
            )
            await delay.bind(exchange, routing_key=delay_queue_name(name, tier))
    return Topology(
        exchange=exchange, delay_tiers=tuple(sorted(delay_tiers)), queue_type=queue_type
    )


async def ping(connection: AbstractRobustConnection) -> None:
    """Raises when the connection to RabbitMQ is not open."""
    if connection.is_closed or not connection.connected.is_set():
        raise ConnectionError("RabbitMQ connection is down")


async def cancel_consumer(queue: AbstractQueue, tag: str) -> None:
    """Stops consuming `queue`, waiting at most STOP_STEP_SECONDS for the broker (a stop
    with the broker away goes on: the broker drops the consumer with the connection)."""
    await _stop_step("could not cancel the consumer", queue.cancel(tag), queue=queue.name)


async def close_channel(channel: AbstractChannel) -> None:
    """Closes `channel`, waiting at most STOP_STEP_SECONDS for the broker."""
    if not channel.is_closed:
        await _stop_step("could not close the channel", channel.close())


async def _stop_step(failure: str, step: Awaitable[object], **context: str) -> None:
    """Awaits one step of a stop for at most STOP_STEP_SECONDS; a failure is logged as
    `failure`, never raised (the stop goes on)."""
    try:
        async with asyncio.timeout(STOP_STEP_SECONDS):
            await step
    except (AMQPError, ConnectionError, RuntimeError, TimeoutError) as exc:
        log.warning(failure, error=repr(exc), **context)
