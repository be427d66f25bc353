"""What a worker test needs around a real deliveryd process: a vhost of its own on the
shared RabbitMQ, the fake gateway/userd, an alert webhook, and job builders."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aio_pika

from herald.v1 import common_pb2, delivery_pb2, template_pb2, user_pb2
from mesh import amqp
from tests.deliveryd.conftest import Fakes
from tests.deliveryd.fake_mesh import AlertWebhook, FakeMesh, publish
from tests.support.infra import AMQP_HOST, AMQP_PASSWORD, AMQP_USER, rabbitmqctl

CHANNELS = {
    "email": common_pb2.CHANNEL_EMAIL,
    "sms": common_pb2.CHANNEL_SMS,
    "push": common_pb2.CHANNEL_PUSH,
}
DELIVERED = common_pb2.NOTIFICATION_STATUS_DELIVERED
FAILED = common_pb2.NOTIFICATION_STATUS_FAILED
SUPPRESSED = common_pb2.NOTIFICATION_STATUS_SUPPRESSED
PENDING = common_pb2.NOTIFICATION_STATUS_PENDING


def content() -> template_pb2.LocalizedContent:
    return template_pb2.LocalizedContent(
        language="en",
        email=template_pb2.EmailContent(
            subject="Welcome, Ana", html_body="<p>Hello <b>Ana</b></p>", text_body="Hello Ana"
        ),
        sms=template_pb2.SmsContent(text="Hello Ana, welcome"),
        push=template_pb2.PushContent(title="Welcome", body="Hello Ana", data={"screen": "home"}),
    )


def make_user(**fields: Any) -> user_pb2.User:
    user = user_pb2.User(
        id=str(uuid.uuid4()), name="Ana", email="ana@example.com", phone="+5511987654321"
    )
    for name, value in fields.items():
        if name == "preferences":
            user.preferences.CopyFrom(value)
        elif name == "push_targets":
            user.push_targets.extend(value)
        else:
            setattr(user, name, value)
    return user


def make_job(
    user: user_pb2.User,
    *,
    route: tuple[str, ...] = ("email",),
    priority: int = common_pb2.PRIORITY_NORMAL,
    message_type: int = common_pb2.MESSAGE_TYPE_TRANSACTIONAL,
) -> delivery_pb2.DeliveryJob:
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
        ),
        content=content(),
        template_code="welcome",
        template_version=1,
        correlation_id=uuid.uuid4().hex,
    )
    job.create_time.GetCurrentTime()
    return job


@dataclass
class Harness:
    vhost: str
    connection: aio_pika.abc.AbstractRobustConnection
    exchange: aio_pika.abc.AbstractExchange
    channel: aio_pika.abc.AbstractChannel
    mesh: FakeMesh
    webhook: AlertWebhook

    @property
    def amqp_url(self) -> str:
        return f"amqp://{AMQP_USER}:{AMQP_PASSWORD}@{AMQP_HOST}/{quote(self.vhost, safe='')}"

    @classmethod
    async def open(cls) -> Harness:
        vhost = f"herald-dlv-{uuid.uuid4().hex[:8]}"
        await asyncio.to_thread(rabbitmqctl, "add_vhost", vhost)
        await asyncio.to_thread(
            rabbitmqctl, "set_permissions", "-p", vhost, AMQP_USER, ".*", ".*", ".*"
        )
        url = f"amqp://{AMQP_USER}:{AMQP_PASSWORD}@{AMQP_HOST}/{quote(vhost, safe='')}"
        connection = await aio_pika.connect_robust(url)
        channel = await connection.channel()
        topology = await amqp.declare_topology(channel)
        mesh = await FakeMesh.start(topology.exchange)
        webhook = AlertWebhook()
        await webhook.start()
        return cls(vhost, connection, topology.exchange, channel, mesh, webhook)

    async def close(self) -> None:
        await self.webhook.stop()
        await self.mesh.stop()
        await self.connection.close()
        await asyncio.to_thread(rabbitmqctl, "delete_vhost", self.vhost)

    def env(self, fakes: Fakes, **chains: str) -> dict[str, str]:
        """deliveryd's environment: this vhost, the fake mesh, the fakes, short timings."""
        return {
            **fakes.env(**chains),
            "HERALD_AMQP_URL": self.amqp_url,
            "HERALD_GATEWAY_ADDR": self.mesh.address,
            "HERALD_USERD_ADDR": self.mesh.address,
            "HERALD_DELIVERYD_LEASE_SECONDS": "4",
            "HERALD_DELIVERYD_RPC_TIMEOUT_SECONDS": "2",
            "HERALD_DELIVERYD_BACKOFF_BASE_SECONDS": "0.3",
            "HERALD_DELIVERYD_BACKOFF_MAX_SECONDS": "3",
            "HERALD_DELIVERYD_REPORT_RETRY_SECONDS": "1",
            "HERALD_DELIVERYD_REQUEUE_PAUSE_SECONDS": "0.2",
            "HERALD_DELIVERYD_BREAKER_THRESHOLD": "50",
            "HERALD_DELIVERYD_PREFETCH": "16",
            "HERALD_EMAIL_MAX_ATTEMPTS": "3",
            "HERALD_SMS_MAX_ATTEMPTS": "2",
            "HERALD_PUSH_MAX_ATTEMPTS": "2",
            "HERALD_ALERT_WEBHOOK_URL": f"{self.webhook.url}/alerts",
        }

    async def send(self, job: delivery_pb2.DeliveryJob) -> str:
        """Registers the notification with the fake gateway and publishes its first job."""
        self.mesh.status.add(job)
        await publish(self.exchange, job)
        return job.notification_id

    async def publish(self, job: delivery_pb2.DeliveryJob) -> None:
        await publish(self.exchange, job)

    async def dead_letters(self) -> list[delivery_pb2.DeliveryJob]:
        """Takes every message out of failed.queue."""
        queue = await self.channel.get_queue(amqp.FAILED_QUEUE)
        jobs = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            jobs.append(delivery_pb2.DeliveryJob.FromString(message.body))
        return jobs
