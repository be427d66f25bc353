"""Helpers of the gateway core tests: requests, RabbitMQ queue inspection, metadata."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from google.protobuf import struct_pb2

from herald.v1 import common_pb2, delivery_pb2, notification_pb2
from mesh import amqp
from mesh.interceptors import CLIENT_HEADER
from tests.support.reports import failing_every_channel

CLIENT_ID = "client-a"
CLIENT = ((CLIENT_HEADER, CLIENT_ID),)
WELCOME = {
    "subject": "Hello {{ name }}",
    "html": "<p>Welcome, {{ name }}!</p>",
    "text": "Welcome, {{ name }}!",
    "sms": "Hi {{ name }}, welcome",
    "title": "Welcome",
    "body": "Hi {{ name }}",
}


def struct(**values: Any) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


def send_request(user_id: str, **fields: Any) -> notification_pb2.SendRequest:
    """A valid Send of the `welcome` template by email; `fields` override."""
    values: dict[str, Any] = {
        "user_id": user_id,
        "channel": common_pb2.CHANNEL_EMAIL,
        "template_code": "welcome",
        "variables": struct(name="Ada"),
        "request_id": f"req-{uuid.uuid4().hex}",
    }
    values.update(fields)
    return notification_pb2.SendRequest(**values)


@dataclass
class Delivered:
    """A message taken off a queue, with its decoded job."""

    message: AbstractIncomingMessage
    job: delivery_pb2.DeliveryJob


class Queues:
    """Looks into the gateway's queues (no consumer runs in these tests)."""

    def __init__(self, channel: AbstractChannel) -> None:
        self.channel = channel

    async def purge(self) -> None:
        names = [amqp.queue_name(c) for c in amqp.CHANNELS] + [amqp.FAILED_QUEUE]
        names += [
            amqp.delay_queue_name(c, t) for c in amqp.CHANNELS for t in amqp.DEFAULT_DELAY_TIERS
        ]
        for name in names:
            queue = await self.channel.get_queue(name, ensure=False)
            await queue.purge()

    async def take(self, name: str) -> list[Delivered]:
        """Every message now in queue `name` (removed from it)."""
        queue = await self.channel.get_queue(name, ensure=False)
        out: list[Delivered] = []
        while True:
            message = await queue.get(no_ack=True, fail=False)
            if message is None:
                return out
            out.append(Delivered(message, delivery_pb2.DeliveryJob.FromString(message.body)))

    async def wait_for(self, name: str, count: int, timeout: float = 20.0) -> list[Delivered]:
        """Takes messages from `name` until `count` arrived (fails after `timeout`)."""
        got: list[Delivered] = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            got.extend(await self.take(name))
            if len(got) >= count:
                break
            assert time.monotonic() < deadline, f"{name}: {len(got)} of {count} messages"
            await asyncio.sleep(0.1)
        return got

    async def wait_for_ids(
        self, name: str, ids: set[str], timeout: float = 20.0
    ) -> list[Delivered]:
        """Takes messages from `name` until one for each notification id arrived."""
        got: list[Delivered] = []
        deadline = time.monotonic() + timeout
        while not ids <= {d.job.notification_id for d in got}:
            assert time.monotonic() < deadline, (
                f"{name}: missing {ids - {d.job.notification_id for d in got}}"
            )
            got.extend(await self.take(name))
            await asyncio.sleep(0.1)
        return got


async def open_queues(url: str) -> tuple[aio_pika.abc.AbstractConnection, Queues]:
    connection = await aio_pika.connect(url)
    channel = await connection.channel()
    return connection, Queues(channel)


def initial_metadata(call_metadata: Any) -> dict[str, str]:
    return {k: v for k, v in (call_metadata or ())}


async def fail_every_channel(notifications: Any, statuses: Any, notification_id: str) -> None:
    """Makes a notification `failed` as workers would: a permanent failure of each channel
    of its route in turn."""
    got = await notifications.GetNotification(
        notification_pb2.GetNotificationRequest(id=notification_id)
    )
    for report in failing_every_channel(notification_id, got.notification.route):
        await statuses.ReportStatus(report)
