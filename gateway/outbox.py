"""The transactional outbox: delivery jobs reach RabbitMQ at least once, never zero times.

A hop to deliver is written in the notification's row (`job`, `publish_pending`) in the
same transaction as the state change that makes it. After the commit the request
publishes it inline with publisher confirms (`Publisher`); a confirmed hop is marked
published in batches (`PublishedMarks`: one UPDATE for many hops instead of one per
Send). Whatever was not confirmed — broker down, timeout, crash between commit and
publish or between confirm and mark — is published by the `Relay`, which takes rows
whose `publish_after` (commit time + a grace that leaves fresh hops to the inline
publish) has passed, with `FOR UPDATE SKIP LOCKED` so several gateways share the work.
A hop may thus be published twice; workers drop the copy through StatusService.Claim.

Messages: persistent protobuf `herald.v1.DeliveryJob` on `notifications.direct`, routing
key = channel, AMQP priority from the job's priority, header `x-correlation-id`,
`message_id` = `<id>:<generation>:<channel>:<attempt>`. A hop due later (retry backoff)
goes to the channel's delay queue with a per-message expiration. A failed notification's
last job goes, the same way, to `failed.queue` (routing key `failed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import aio_pika
import structlog
from aio_pika.abc import AbstractExchange, AbstractRobustConnection
from prometheus_client import Gauge
from psycopg_pool import AsyncConnectionPool

from gateway.store import db
from gateway.store.outbox import mark_published, oldest_due_seconds, postpone, take_unpublished
from gateway.wire import CHANNEL_NAMES
from herald.v1 import common_pb2, delivery_pb2
from mesh import amqp, tracing
from mesh.interceptors import CORRELATION_HEADER

log = structlog.get_logger(__name__)

RELAYED_UNTIL = Gauge(
    "herald_outbox_relayed_until_seconds",
    "Unix time up to which the relay has published every hop due (the start of its last "
    "whole pass); now minus this is how far the relay is behind.",
)

AMQP_PRIORITY: dict[int, int] = {
    common_pb2.PRIORITY_LOW: 1,
    common_pb2.PRIORITY_NORMAL: 3,
    common_pb2.PRIORITY_HIGH: 6,
    common_pb2.PRIORITY_CRITICAL: 9,
}
JOB_TYPE = "herald.v1.DeliveryJob"
LAG = Gauge(
    "herald_outbox_lag_seconds",
    "How long the oldest due hop has waited for the relay past its grace (0: none waiting).",
)


@dataclass(frozen=True)
class Publication:
    """One hop of one notification to put on RabbitMQ."""

    notification_id: UUID
    hop: int
    job: delivery_pb2.DeliveryJob
    deliver_after: datetime | None = None
    # A failed notification's last job, for failed.queue (the dead letters).
    dead: bool = False


def build_message(job: delivery_pb2.DeliveryJob, *, expiration: float | None) -> aio_pika.Message:
    """The AMQP message carrying `job`."""
    channel = CHANNEL_NAMES[job.channel]
    headers: dict[str, Any] = {"x-herald-channel": channel}
    if job.correlation_id:
        headers[CORRELATION_HEADER] = job.correlation_id
    return aio_pika.Message(
        job.SerializeToString(),
        content_type="application/x-protobuf",
        type=JOB_TYPE,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        priority=AMQP_PRIORITY.get(job.priority, AMQP_PRIORITY[common_pb2.PRIORITY_NORMAL]),
        message_id=f"{job.notification_id}:{job.generation}:{channel}:{job.attempt}",
        correlation_id=job.correlation_id or None,
        headers=headers,
        expiration=expiration,
        timestamp=datetime.now(UTC),
    )


class Publisher:
    """Publishes delivery jobs with publisher confirms on one robust channel."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        *,
        timeout: float,
        delay_tiers: Sequence[int] = amqp.DEFAULT_DELAY_TIERS,
        queue_type: str = "classic",
    ) -> None:
        self._connection = connection
        self._timeout = timeout
        self._delay_tiers = tuple(delay_tiers)
        self._queue_type = queue_type
        self._exchange: AbstractExchange | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None

    async def start(self) -> None:
        """Opens the confirm channel and declares the topology (re-declared on reconnect)."""
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        topology = await amqp.declare_topology(channel, self._delay_tiers, self._queue_type)
        self._channel = channel
        self._exchange = topology.exchange

    async def close(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    @property
    def ready(self) -> bool:
        """False while the broker is unreachable: publishing would only time out."""
        return (
            self._channel is not None
            and not self._channel.is_closed
            and self._connection.connected.is_set()
        )

    async def publish(self, publication: Publication) -> bool:
        """True once the broker confirmed the hop; False (logged) when it did not."""
        if self._exchange is None or not self.ready:
            return False
        job = publication.job
        channel = CHANNEL_NAMES[job.channel]
        priority = AMQP_PRIORITY.get(job.priority, AMQP_PRIORITY[common_pb2.PRIORITY_NORMAL])
        routing_key = (
            amqp.FAILED_KEY
            if publication.dead
            else amqp.work_routing_key(channel, priority, self._queue_type)
        )
        expiration: float | None = None
        if publication.deliver_after is not None and not publication.dead:
            remaining = (publication.deliver_after - datetime.now(UTC)).total_seconds()
            if remaining > 0.001:
                tier = amqp.pick_delay_tier(remaining, self._delay_tiers)
                routing_key = amqp.delay_queue_name(channel, tier)
                expiration = remaining
        message = build_message(job, expiration=expiration)
        try:
            with tracing.span(f"publish {routing_key}", kind=tracing.PRODUCER):
                if tracing.enabled():
                    tracing.inject(message.headers)
                async with asyncio.timeout(self._timeout):
                    await self._exchange.publish(message, routing_key, mandatory=True)
        except Exception as exc:  # any failure leaves the hop to the relay
            log.warning(
                "publish not confirmed",
                notification_id=str(publication.notification_id),
                routing_key=routing_key,
                error=repr(exc),
            )
            return False
        return True

    async def publish_many(self, publications: Sequence[Publication]) -> list[bool]:
        """Publishes concurrently (confirms pipelined on the channel)."""
        return list(await asyncio.gather(*(self.publish(p) for p in publications)))


class PublishedMarks:
    """Records confirmed hops in batches: one UPDATE per flush, not one per Send.

    A mark lost in a crash only means the relay publishes that hop once more.
    """

    def __init__(self, pool: AsyncConnectionPool, *, interval: float = 0.05) -> None:
        self._pool = pool
        self._interval = interval
        self._pending: dict[UUID, int] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add(self, notification_id: UUID, hop: int) -> None:
        self._pending[notification_id] = max(hop, self._pending.get(notification_id, 0))
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-marks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        try:
            async with db.transaction(self._pool) as conn:
                await mark_published(conn, list(batch.items()))
        except Exception as exc:  # the relay will publish these hops again: harmless
            log.warning("could not mark hops published", count=len(batch), error=repr(exc))

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self._interval)
            await self.flush()


class Outbox:
    """What a request does after its transaction commits: publish, then mark confirmed."""

    def __init__(self, publisher: Publisher, marks: PublishedMarks, *, grace: float) -> None:
        self.publisher = publisher
        self.marks = marks
        self.grace = grace

    async def dispatch(self, publications: Sequence[Publication]) -> None:
        """Publishes committed hops; the unconfirmed ones stay due for the relay."""
        if not publications:
            return
        confirmed = await self.publisher.publish_many(publications)
        for publication, ok in zip(publications, confirmed, strict=True):
            if ok:
                self.marks.add(publication.notification_id, publication.hop)


class Relay:
    """Publishes hops whose inline publish did not complete, every `interval` seconds."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        publisher: Publisher,
        *,
        interval: float,
        grace: float,
        batch_size: int,
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self._interval = interval
        self._grace = grace
        self._batch_size = batch_size
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def run_once(self) -> int:
        """Publishes one batch of due hops; returns how many were confirmed."""
        if not self._publisher.ready:
            return 0
        async with db.transaction(self._pool) as conn:
            due = await take_unpublished(conn, limit=self._batch_size)
            if not due:
                return 0
            publications = [
                Publication(
                    notification_id=row.notification_id,
                    hop=row.hop,
                    job=delivery_pb2.DeliveryJob.FromString(row.job),
                    deliver_after=row.deliver_after,
                    dead=row.dead,
                )
                for row in due
            ]
            confirmed = await self._publisher.publish_many(publications)
            done = [
                (p.notification_id, p.hop)
                for p, ok in zip(publications, confirmed, strict=True)
                if ok
            ]
            failed = [
                p.notification_id for p, ok in zip(publications, confirmed, strict=True) if not ok
            ]
            await mark_published(conn, done)
            await postpone(conn, failed, seconds=max(self._interval, self._grace))
        log.info("outbox relayed", published=len(done), failed=len(failed))
        return len(done)

    async def _run(self) -> None:
        while True:
            began = time.time()
            try:
                while await self.run_once() >= self._batch_size:
                    pass
                if self._publisher.ready:
                    RELAYED_UNTIL.set(began)
                async with db.connection(self._pool) as conn:
                    LAG.set(await oldest_due_seconds(conn))
            except Exception as exc:  # the database or broker is down: try again later
                log.warning("outbox relay pass failed", error=repr(exc))
            await asyncio.sleep(self._interval)


@dataclass(frozen=True)
class RunningOutbox:
    """The outbox and its background tasks, as the gateway runs them."""

    outbox: Outbox
    relay: Relay

    async def stop(self) -> None:
        """The relay first, then the last published-marks, then the publisher's channel."""
        await self.relay.stop()
        await self.outbox.marks.stop()
        await self.outbox.publisher.close()


async def start_outbox(
    pool: AsyncConnectionPool,
    connection: AbstractRobustConnection,
    *,
    publish_timeout: float,
    interval: float,
    grace: float,
    batch_size: int,
    queue_type: str = "classic",
) -> RunningOutbox:
    """Opens the publisher and starts the batched marks and the relay."""
    publisher = Publisher(connection, timeout=publish_timeout, queue_type=queue_type)
    await publisher.start()
    marks = PublishedMarks(pool)
    marks.start()
    relay = Relay(pool, publisher, interval=interval, grace=grace, batch_size=batch_size)
    relay.start()
    return RunningOutbox(Outbox(publisher, marks, grace=grace), relay)
