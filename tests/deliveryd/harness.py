"""What a worker test needs around real deliveryd processes: a vhost of its own on the
shared RabbitMQ, the real gateway StatusService and userd in process (databases and a
Redis prefix of their own), an alert webhook, and job builders.

A notification is registered as the gateway accepts it (its row, then its first hop
through the outbox); what happened to it is read back from the gateway's notifications.
"""

from __future__ import annotations

import asyncio
import uuid
import warnings
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import grpc
import redis.asyncio as aioredis

from bench.stages import scrape
from gateway.outbox import Publication
from gateway.store import db, notifications
from herald.v1 import (
    common_pb2,
    delivery_pb2,
    status_pb2,
    status_pb2_grpc,
    template_pb2,
    user_pb2,
    user_pb2_grpc,
)
from mesh import amqp
from mesh.client import internal_channel
from tests.deliveryd.conftest import Fakes
from tests.deliveryd.services import (
    Gateway,
    Userd,
    drop,
    start_gateway,
    start_userd,
)
from tests.deliveryd.webhook import AlertWebhook
from tests.support.infra import (
    REDIS_URL,
    SERVICE_TOKEN,
    Isolation,
    add_vhost,
    amqp_url,
    release_vhost,
)
from tests.support.processes import ServiceProcess
from tests.support.waits import eventually

CHANNELS = {
    "email": common_pb2.CHANNEL_EMAIL,
    "sms": common_pb2.CHANNEL_SMS,
    "push": common_pb2.CHANNEL_PUSH,
}
DELIVERED = common_pb2.NOTIFICATION_STATUS_DELIVERED
FAILED = common_pb2.NOTIFICATION_STATUS_FAILED
SUPPRESSED = common_pb2.NOTIFICATION_STATUS_SUPPRESSED
PENDING = common_pb2.NOTIFICATION_STATUS_PENDING
# The gateway methods a worker's claims and reports travel by (alone or coalesced).
CLAIMS = ("Claim", "BatchClaim")
REPORTS = ("ReportStatus", "BatchReportStatus")


def content() -> template_pb2.LocalizedContent:
    return template_pb2.LocalizedContent(
        language="en",
        email=template_pb2.EmailContent(
            subject="Welcome, Ana", html_body="<p>Hello <b>Ana</b></p>", text_body="Hello Ana"
        ),
        sms=template_pb2.SmsContent(text="Hello Ana, welcome"),
        push=template_pb2.PushContent(title="Welcome", body="Hello Ana", data={"screen": "home"}),
    )


def make_job(
    user: user_pb2.User,
    *,
    route: tuple[str, ...] = ("email",),
    priority: int = common_pb2.PRIORITY_NORMAL,
    message_type: int = common_pb2.MESSAGE_TYPE_TRANSACTIONAL,
) -> delivery_pb2.DeliveryJob:
    """The first hop as the gateway builds it (`gateway.jobs.first_job`)."""
    job = delivery_pb2.DeliveryJob(
        notification_id=str(uuid.uuid4()),
        channel=CHANNELS[route[0]],
        route=[CHANNELS[c] for c in route],
        route_index=0,
        attempt=1,
        generation=1,
        priority=priority,  # type: ignore[arg-type]
        message_type=message_type,  # type: ignore[arg-type]
        recipient=delivery_pb2.Recipient(
            user_id=user.id,
            email=user.email,
            phone=user.phone,
            push_targets=list(user.push_targets),
            locale=user.locale,
        ),
        content=content(),
        template_code="welcome",
        template_version=1,
        correlation_id=uuid.uuid4().hex,
    )
    now = datetime.now(UTC)
    job.create_time.FromDatetime(now)
    job.deadline.FromDatetime(now + timedelta(minutes=10))
    return job


async def jobs_counted(worker: ServiceProcess, *results: str) -> float:
    """How many jobs the worker settled with one of `results` (herald_delivery_jobs_total):
    "report failed", "report refused", "taken", "final"…"""
    channel = worker.args[1]
    url = f"http://127.0.0.1:{worker.env[f'HERALD_DELIVERYD_{channel.upper()}_METRICS_PORT']}"
    samples = await asyncio.to_thread(scrape, url, "herald_delivery_jobs", "result")
    return sum(samples.get(("herald_delivery_jobs_total", r), 0.0) for r in results)


def new_notification(job: delivery_pb2.DeliveryJob) -> notifications.NewNotification:
    """The row the gateway stores when it accepts the notification of `job`."""
    return notifications.NewNotification(
        id=uuid.UUID(job.notification_id),
        client_id="deliveryd-tests",
        request_id="",
        payload_hash=b"",
        correlation_id=job.correlation_id,
        user_id=uuid.UUID(job.recipient.user_id),
        channel=job.channel,
        route=tuple(job.route),
        template_code=job.template_code,
        template_version=job.template_version,
        language=job.content.language,
        priority=job.priority,
        message_type=job.message_type,
        metadata={},
        status="pending",
        status_reason="",
        job=job.SerializeToString(),
    )


@dataclass
class Harness:
    vhost: str
    databases: tuple[str, ...]
    redis_prefix: str
    connection: aio_pika.abc.AbstractRobustConnection
    channel: aio_pika.abc.AbstractChannel
    gateway: Gateway
    userd: Userd
    status_channel: grpc.aio.Channel
    users_channel: grpc.aio.Channel
    webhook: AlertWebhook

    @property
    def amqp_url(self) -> str:
        return amqp_url(self.vhost)

    @property
    def statuses(self) -> status_pb2_grpc.StatusServiceAsyncStub:
        """The gateway's StatusService, as a worker with the service token calls it."""
        return status_pb2_grpc.StatusServiceStub(self.status_channel)

    @property
    def users(self) -> user_pb2_grpc.UserServiceAsyncStub:
        """userd's API, as a client with the service token calls it."""
        return user_pb2_grpc.UserServiceStub(self.users_channel)

    @classmethod
    async def open(cls, isolation: Isolation) -> Harness:
        """Names of its own under the run's (`isolation`): the run's clean-up drops the
        databases and Redis keys a crashed test leaves."""
        name = f"dlv{uuid.uuid4().hex[:8]}"
        vhost = f"{isolation.vhost}-{name}"
        url = await asyncio.to_thread(add_vhost, vhost)
        connection = await aio_pika.connect_robust(url)
        channel = await connection.channel()
        await amqp.declare_topology(channel)
        notifications_db = isolation.database(f"{name}_notifications")
        users_db = isolation.database(f"{name}_users")
        prefix = f"{isolation.redis_prefix}{name}:"
        gateway = await start_gateway(database_name=notifications_db, connection=connection)
        userd = await start_userd(database_name=users_db, redis_prefix=prefix, allow_loopback=True)
        status_channel = internal_channel(gateway.served.address, SERVICE_TOKEN)
        users_channel = internal_channel(userd.served.address, SERVICE_TOKEN)
        webhook = AlertWebhook()
        await webhook.start()
        return cls(
            vhost,
            (notifications_db, users_db),
            prefix,
            connection,
            channel,
            gateway,
            userd,
            status_channel,
            users_channel,
            webhook,
        )

    async def close(self) -> None:
        """Stops what `open` started, one bounded step at a time. A teardown here outlasted
        its test's 120 s once (2026-12-08, a clean-clone run on a busy host; a setup in
        test_lifecycle did once before), and the timeout's dump could not say which step
        hung. A step that outlasts CLOSE_STEP_SECONDS is now named in a warning (the run's
        warnings summary) and the rest go on; the run's clean-up drops any database, vhost
        or key left."""
        await _bounded("the alert webhook's stop", self.webhook.stop())
        await _bounded("the status channel's close", self.status_channel.close())
        await _bounded("the users channel's close", self.users_channel.close())
        await _bounded("the gateway's stop", self.gateway.stop())
        await _bounded("userd's stop", self.userd.stop())
        await _bounded("the AMQP connection's close", self.connection.close())
        release_vhost(self.vhost)
        await _bounded("dropping the databases", drop(*self.databases))
        await _bounded("deleting the Redis keys", _delete_keys(f"{self.redis_prefix}*"))

    def env(self, fakes: Fakes, **chains: str) -> dict[str, str]:
        """deliveryd's environment: this vhost, gateway and userd, the fakes, short timings."""
        return {
            **fakes.env(**chains),
            "HERALD_AMQP_URL": self.amqp_url,
            "HERALD_GATEWAY_ADDR": self.gateway.served.address,
            "HERALD_USERD_ADDR": self.userd.served.address,
            "HERALD_REDIS_PREFIX": self.redis_prefix,
            "HERALD_DELIVERYD_LEASE_SECONDS": "4",
            "HERALD_DELIVERYD_RPC_TIMEOUT_SECONDS": "2",
            "HERALD_DELIVERYD_REPORT_RETRY_SECONDS": "1",
            "HERALD_DELIVERYD_REQUEUE_PAUSE_SECONDS": "0.2",
            "HERALD_DELIVERYD_BREAKER_THRESHOLD": "50",
            "HERALD_DELIVERYD_PREFETCH": "16",
            "HERALD_ALERT_WEBHOOK_URL": f"{self.webhook.url}/alerts",
            # The fake push service and the alert webhook listen on 127.0.0.1.
            "HERALD_OUTBOUND_ALLOW_LOOPBACK": "true",
        }

    async def create_user(self, **fields: Any) -> user_pb2.User:
        """A user created through userd's API (Ana, unless `fields` say otherwise)."""
        values: dict[str, Any] = {
            "name": "Ana",
            "email": f"ana.{uuid.uuid4().hex[:8]}@example.com",
            "phone": "+5511987654321",
            "password": "correct horse battery staple",
            **fields,
        }
        answer = await self.users.CreateUser(user_pb2.CreateUserRequest(**values), timeout=10)
        return answer.user

    async def get_user(self, user_id: str) -> user_pb2.User:
        answer = await self.users.GetUser(user_pb2.GetUserRequest(id=user_id), timeout=10)
        return answer.user

    async def accept(self, job: delivery_pb2.DeliveryJob) -> str:
        """Stores the notification of `job` as the gateway accepts it, not yet published
        (the relay publishes it after the outbox's grace unless `publish` does first)."""
        async with db.connection(self.gateway.pool) as conn:
            [inserted] = await notifications.insert(
                conn, [new_notification(job)], grace=self.gateway.outbox.grace
            )
        assert inserted
        return job.notification_id

    async def publish(self, job: delivery_pb2.DeliveryJob) -> None:
        """Publishes the first hop through the gateway's outbox (again, for a copy)."""
        publication = Publication(uuid.UUID(job.notification_id), 1, job)
        await self.gateway.outbox.dispatch([publication])

    async def send(self, job: delivery_pb2.DeliveryJob) -> str:
        """What the gateway does with an accepted Send: the row, then the first hop."""
        await self.accept(job)
        await self.publish(job)
        return job.notification_id

    async def dead_letter(self, job: delivery_pb2.DeliveryJob) -> None:
        """Puts a failed notification's last job on failed.queue, as the gateway does."""
        publication = Publication(uuid.UUID(job.notification_id), 1, job, dead=True)
        assert await self.gateway.outbox.publisher.publish(publication)

    async def notification(self, notification_id: str) -> status_pb2.GetStatusResponse:
        """Where the notification stands (StatusService.GetStatus)."""
        request = status_pb2.GetStatusRequest(notification_id=notification_id)
        return await self.statuses.GetStatus(request, timeout=10)

    async def status(self, notification_id: str) -> int:
        return (await self.notification(notification_id)).status

    async def settled(
        self, notification_id: str, status: int = DELIVERED
    ) -> status_pb2.GetStatusResponse:
        """Waits until the notification has `status`."""

        async def reached() -> bool:
            return await self.status(notification_id) == status

        await eventually(reached)
        return await self.notification(notification_id)

    async def trail(self, notification_id: str) -> list[notifications.AttemptRecord]:
        """The notification's delivery attempts as the gateway recorded them."""
        async with db.connection(self.gateway.pool) as conn:
            return await notifications.trail(conn, uuid.UUID(notification_id))

    def claims(self, notification_id: str) -> list[int]:
        """The gateway's answers to the claims of the notification's hops, in order
        (alone or in batch calls)."""
        results: list[int] = []
        for call in self.gateway.faults.answers(*CLAIMS):
            if call.method == "Claim":
                pairs = [(call.request, call.response)]
            else:
                pairs = [
                    (request, result.claimed)
                    for request, result in zip(
                        call.request.requests, call.response.results, strict=True
                    )
                    if result.HasField("claimed")
                ]
            results.extend(
                answer.result
                for request, answer in pairs
                if request.notification_id == notification_id
            )
        return results

    async def ghost_claim(self, job: delivery_pb2.DeliveryJob, lease_seconds: int) -> int:
        """Claims the job's hop for a worker that then dies holding it."""
        request = status_pb2.ClaimRequest(
            notification_id=job.notification_id,
            generation=job.generation,
            channel=job.channel,
            attempt=job.attempt,
            worker="ghost:1",
            lease_seconds=lease_seconds,
        )
        return (await self.statuses.Claim(request, timeout=10)).result

    async def ready(self, queue_name: str) -> int:
        """How many messages wait in the queue (not counting those a consumer holds)."""
        queue = await self.channel.declare_queue(queue_name, passive=True)
        assert queue.declaration_result.message_count is not None
        return queue.declaration_result.message_count

    async def dead_letters(self) -> list[delivery_pb2.DeliveryJob]:
        """Takes every message out of failed.queue."""
        queue = await self.channel.get_queue(amqp.FAILED_QUEUE)
        jobs = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            jobs.append(delivery_pb2.DeliveryJob.FromString(message.body))
        return jobs


CLOSE_STEP_SECONDS = 15.0


async def _bounded(step: str, closing: Awaitable[object]) -> None:
    try:
        await asyncio.wait_for(closing, CLOSE_STEP_SECONDS)
    except TimeoutError:
        warnings.warn(
            f"Harness.close: {step} did not end in {CLOSE_STEP_SECONDS} s (went on)", stacklevel=2
        )


async def _delete_keys(pattern: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    async with client:
        async for key in client.scan_iter(match=pattern, count=1000):
            await client.delete(key)
