"""Admin alerts for critical notifications that failed for good.

Always an error log line; then, as configured, a JSON POST to a webhook and/or an email
through the email provider chain. An alert never carries the message's content or the
user's contact points, only what an operator needs to find the notification.

The alerts come from `alerts.queue`, where the gateway's outbox puts a copy of every
failed notification's last job (in the same transaction as the failed status): each
worker consumes it (`AlertConsumer`) and acknowledges a copy only once its alert went
out, so a crash loses no alert (at worst one is sent twice).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from google.protobuf.message import DecodeError

from deliveryd import metrics
from deliveryd.chain import Outcome, ProviderChain
from deliveryd.channels import CHANNEL_NAMES
from deliveryd.providers.base import EmailMessage
from herald.v1 import common_pb2, delivery_pb2
from mesh import amqp
from mesh.logging import bind_correlation_id

log = structlog.get_logger(__name__)


def is_critical(job: delivery_pb2.DeliveryJob) -> bool:
    """Alerts and high priorities page an admin when they fail."""
    return (
        job.message_type == common_pb2.MESSAGE_TYPE_ALERT
        or job.priority >= common_pb2.PRIORITY_HIGH
    )


class Alerter:
    """Sends one alert per failed critical notification to every configured route."""

    def __init__(
        self,
        *,
        webhook_url: str | None,
        email: str | None,
        email_chain: ProviderChain[EmailMessage] | None,
        timeout: float,
    ) -> None:
        self._webhook_url = webhook_url
        self._email = email
        self._email_chain = email_chain
        self._http = httpx.AsyncClient(timeout=timeout) if webhook_url else None

    @staticmethod
    def payload(job: delivery_pb2.DeliveryJob, error: str) -> dict[str, Any]:
        return {
            "event": "notification.failed",
            "notification_id": job.notification_id,
            "generation": job.generation,
            "error": error,
            "channel": CHANNEL_NAMES.get(job.channel, ""),
            "route": [CHANNEL_NAMES.get(c, "") for c in job.route],
            "priority": common_pb2.Priority.Name(job.priority),
            "message_type": common_pb2.MessageType.Name(job.message_type),
            "template_code": job.template_code,
            "user_id": job.recipient.user_id,
            "correlation_id": job.correlation_id,
            "time": datetime.now(UTC).isoformat(),
        }

    async def notify(self, job: delivery_pb2.DeliveryJob, error: str) -> None:
        """Alerts on every route; failures are logged, never raised."""
        payload = self.payload(job, error)
        log.error(
            "critical notification failed", **{k: v for k, v in payload.items() if k != "event"}
        )
        if self._http is not None and self._webhook_url:
            try:
                response = await self._http.post(self._webhook_url, json=payload)
                response.raise_for_status()
                metrics.ALERTS.labels("webhook", "sent").inc()
            except httpx.HTTPError as exc:
                metrics.ALERTS.labels("webhook", "failed").inc()
                log.error("admin alert webhook failed", error=repr(exc))
        if self._email and self._email_chain is not None:
            text = "\n".join(f"{key}: {value}" for key, value in payload.items())
            message = EmailMessage(
                to=self._email,
                subject=f"[Herald] critical notification {job.notification_id} failed",
                html="",
                text=text,
                key=f"alert:{job.notification_id}:{job.generation}:{uuid.uuid4().hex[:8]}",
                notification_id=job.notification_id,
            )
            result = await self._email_chain.send(message)
            sent = result.outcome is Outcome.DELIVERED
            metrics.ALERTS.labels("email", "sent" if sent else "failed").inc()
            if not sent:
                log.error("admin alert email failed", error=result.error)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()


class AlertConsumer:
    """Consumes `alerts.queue`: an alert for each critical failure, then the ack."""

    def __init__(
        self,
        *,
        connection: AbstractRobustConnection,
        alerter: Alerter,
        queue_type: str = "classic",
    ) -> None:
        self._connection = connection
        self._queue_type = queue_type
        self._alerter = alerter
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None

    async def start(self) -> None:
        self._channel = await self._connection.channel()
        await self._channel.set_qos(prefetch_count=4)
        await amqp.declare_topology(self._channel, queue_type=self._queue_type)
        self._queue = await self._channel.get_queue(amqp.ALERTS_QUEUE)
        self._tag = await self._queue.consume(self._on_message)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        async with message.process(requeue=True):
            try:
                job = delivery_pb2.DeliveryJob.FromString(message.body)
            except DecodeError:
                log.error("unreadable dead letter: no alert", size=len(message.body))
                return
            if is_critical(job):
                bind_correlation_id(job.correlation_id or job.notification_id)
                await self._alerter.notify(job, job.last_error or "delivery failed")

    async def stop(self) -> None:
        """Stops taking dead letters; an alert in progress finishes (or comes back)."""
        if self._queue is not None and self._tag is not None:
            await amqp.cancel_consumer(self._queue, self._tag)
        if self._channel is not None:
            await amqp.close_channel(self._channel)
