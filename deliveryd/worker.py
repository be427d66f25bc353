"""The consumer of one channel's queue: one task per message, up to the prefetch.

Every message gets its own task, so a slow provider never holds up the others; RabbitMQ's
prefetch bounds how many are in flight. A dropped connection does not stop a job: it
finishes and reports, its ack fails, and the copy RabbitMQ redelivers finds it done.

The pipeline's verdict decides the message's fate: ack, dead-letter (reject
without requeue: the queue's DLX routes it to `failed.queue`), requeue after a pause, or
defer (re-publish a copy to a delay queue, with publisher confirms, then ack).

On `stop()` the consumer is cancelled first (no new deliveries), jobs in flight get the
grace period to finish, and whatever is left goes back to the queue when the channel closes.
"""

from __future__ import annotations

import asyncio

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.exceptions import AMQPError

from deliveryd.pipeline import Action, Pipeline, Verdict
from mesh import amqp, tracing
from mesh.interceptors import CORRELATION_HEADER

log = structlog.get_logger(__name__)


class Consumer:
    """Consumes `<channel>.queue` into a pipeline (and, with quorum queues, first of all
    `<channel>.high.queue`: each queue its own consumer, each up to the prefetch)."""

    def __init__(
        self,
        *,
        connection: AbstractRobustConnection,
        channel: str,
        pipeline: Pipeline,
        prefetch: int,
        grace_seconds: float,
        requeue_pause: float,
        queue_type: str = "classic",
    ) -> None:
        self._connection = connection
        self._queue_type = queue_type
        self._channel_name = channel
        self._pipeline = pipeline
        self._prefetch = prefetch
        self._grace = grace_seconds
        self._requeue_pause = requeue_pause
        self._amqp: AbstractChannel | None = None
        self._topology: amqp.Topology | None = None
        self._consuming: list[tuple[AbstractQueue, str]] = []
        self._tasks: set[asyncio.Task[object]] = set()
        self._stopping = False

    async def start(self) -> None:
        """Declares the topology and starts consuming."""
        self._amqp = await self._connection.channel(publisher_confirms=True)
        await self._amqp.set_qos(prefetch_count=self._prefetch)
        self._topology = await amqp.declare_topology(self._amqp, queue_type=self._queue_type)
        for name in amqp.work_queues(self._channel_name, self._queue_type):
            queue = await self._amqp.get_queue(name)
            self._consuming.append((queue, await queue.consume(self._on_message)))
            log.info("consuming", queue=name, prefetch=self._prefetch)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        # aiormq runs this callback in a task of the channel's and cancels it when the
        # connection drops. A job must not stop half-way (a provider may have taken the
        # message, and only the report tells the redelivered copy so): it runs in a task of
        # our own, which only `stop()` cancels.
        job = asyncio.create_task(self._process(message))
        self._tasks.add(job)
        job.add_done_callback(self._tasks.discard)
        await asyncio.shield(job)

    async def _process(self, message: AbstractIncomingMessage) -> None:
        if self._stopping:
            await self._settle(message, Verdict(Action.REQUEUE, reason="stopping"), pause=False)
            return
        header = (message.headers or {}).get(CORRELATION_HEADER)
        correlation_id = header.decode() if isinstance(header, bytes) else str(header or "")
        try:
            with tracing.span(
                f"process {message.routing_key}",
                kind=tracing.CONSUMER,
                parent=message.headers or {},
            ):
                verdict = await self._pipeline.handle(message.body, correlation_id)
        except Exception:
            log.exception("job failed unexpectedly: requeued")
            verdict = Verdict(Action.REQUEUE, reason="error")
        await self._settle(message, verdict)

    async def _settle(
        self, message: AbstractIncomingMessage, verdict: Verdict, *, pause: bool = True
    ) -> None:
        try:
            if verdict.action is Action.ACK:
                await message.ack()
            elif verdict.action is Action.DEAD_LETTER:
                await message.reject(requeue=False)
            elif verdict.action is Action.DEFER:
                await self._defer(message, verdict.delay)
                await message.ack()
            else:
                if pause and self._requeue_pause:
                    await asyncio.sleep(self._requeue_pause)
                await message.nack(requeue=True)
        except (AMQPError, ConnectionError, RuntimeError) as exc:
            # The channel went away: RabbitMQ redelivers the message; its claim says what's done.
            log.warning("could not settle message", action=verdict.action.value, error=repr(exc))

    async def _defer(self, message: AbstractIncomingMessage, delay: float) -> None:
        """Publishes the same job to the channel's delay queue, to come back after `delay`."""
        assert self._topology is not None
        tier = amqp.pick_delay_tier(delay, self._topology.delay_tiers)
        copy = aio_pika.Message(
            body=message.body,
            headers=dict(message.headers or {}),
            content_type=message.content_type,
            correlation_id=message.correlation_id,
            message_id=message.message_id,
            priority=message.priority,
            type=message.type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            expiration=max(delay, 0.001),
        )
        await self._topology.exchange.publish(
            copy, routing_key=amqp.delay_queue_name(self._channel_name, tier)
        )

    async def stop(self) -> None:
        """Stops taking messages, lets jobs in flight finish (up to the grace), closes."""
        self._stopping = True
        for queue, tag in self._consuming:
            await amqp.cancel_consumer(queue, tag)
        if self._tasks:
            log.info("waiting for jobs in flight", jobs=len(self._tasks))
            _, pending = await asyncio.wait(set(self._tasks), timeout=self._grace)
            for task in pending:
                task.cancel()
            if pending:
                log.warning(
                    "jobs still running at the end of the grace: returned", jobs=len(pending)
                )
                await asyncio.wait(pending, timeout=1.0)
        if self._amqp is not None:
            await amqp.close_channel(self._amqp)
        log.info("consumer stopped")
