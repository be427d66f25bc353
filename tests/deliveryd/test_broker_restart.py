"""A RabbitMQ restart under a stream of notifications, every process real.

userd, templated, the gateway and `deliveryd email` run against a RabbitMQ node of this
test's own (the shared broker never goes down). Notifications keep coming while the node
stops and starts again: each Send is either refused cleanly or accepted, and every
accepted one ends `delivered`, handed to the provider exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import grpc
from google.protobuf import struct_pb2

from herald.v1 import (
    common_pb2,
    notification_pb2,
    notification_pb2_grpc,
    template_pb2,
    template_pb2_grpc,
    user_pb2,
    user_pb2_grpc,
)
from tests.conftest import ServiceFactory
from tests.deliveryd.conftest import Fakes
from tests.support.infra import Isolation
from tests.support.metrics import relay_passed
from tests.support.rabbit import OwnRabbit
from tests.support.stack import start_core
from tests.support.waits import eventually

STREAM = 60  # notifications
SPACING_SECONDS = 0.1  # between two Sends: the stream lasts longer than the restart
RESTART_AFTER = 15  # Sends before the broker goes down
DELIVERED = common_pb2.NOTIFICATION_STATUS_DELIVERED
# The suite's HERALD_GRACE_SECONDS (5), and a margin: a stop that waits on the broker never ends.
STOP_WITH_BROKER_AWAY = 10.0


async def _create_user_and_template(userd: grpc.aio.Channel, templated: grpc.aio.Channel) -> str:
    users = user_pb2_grpc.UserServiceStub(userd)
    user = await users.CreateUser(
        user_pb2.CreateUserRequest(
            name="Ada",
            email="ada.restart@example.com",
            password="correct horse battery staple",
        ),
        timeout=10,
    )
    await template_pb2_grpc.TemplateServiceStub(templated).CreateTemplate(
        template_pb2.CreateTemplateRequest(
            code="restart/numbered",
            name="Numbered",
            default_language="en",
            contents=[
                template_pb2.LocalizedContent(
                    language="en",
                    email=template_pb2.EmailContent(
                        subject="Message {{ n }}", text_body="This is message {{ n }}."
                    ),
                )
            ],
            author="tests@example.com",
        ),
        timeout=10,
    )
    return str(user.user.id)


async def _stream(
    stub: notification_pb2_grpc.NotificationServiceAsyncStub,
    user_id: str,
    restart_wanted: asyncio.Event,
) -> tuple[dict[str, int], int]:
    """Sends STREAM notifications; returns {notification id: n} accepted, and refusals."""
    accepted: dict[str, int] = {}
    refused = 0
    for n in range(STREAM):
        if n == RESTART_AFTER:
            restart_wanted.set()
        variables = struct_pb2.Struct()
        variables.update({"n": n})
        request = notification_pb2.SendRequest(
            user_id=user_id,
            channel=common_pb2.CHANNEL_EMAIL,
            template_code="restart/numbered",
            variables=variables,
            request_id=f"restart-{n}",
        )
        try:
            answer = await stub.Send(request, timeout=15)
        except grpc.aio.AioRpcError as exc:  # refusing cleanly is allowed; losing is not
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
            refused += 1
        else:
            accepted[answer.notification_id] = n
        await asyncio.sleep(SPACING_SECONDS)
    return accepted, refused


async def test_a_rabbitmq_restart_under_a_stream_loses_and_repeats_nothing(
    service_factory: ServiceFactory, isolation: Isolation, fakes: Fakes, tmp_path: Path
) -> None:
    rabbit = OwnRabbit(tmp_path / "rabbit")
    await asyncio.to_thread(rabbit.start)
    channels: list[grpc.aio.Channel] = []
    try:
        core = await start_core(
            service_factory,
            isolation,
            name="restart",
            amqp_url=rabbit.amqp_url,
            allow_loopback=False,
            gateway_env={
                "HERALD_PUBLISH_TIMEOUT_SECONDS": "1",
                "HERALD_OUTBOX_GRACE_SECONDS": "1",
                "HERALD_OUTBOX_INTERVAL_SECONDS": "0.2",
            },
        )
        userd, templated, gateway = core.userd, core.templated, core.gateway
        worker = await asyncio.to_thread(
            service_factory,
            "deliveryd",
            "email",
            env={
                **fakes.env(email="sendgrid"),
                "HERALD_AMQP_URL": rabbit.amqp_url,
                "HERALD_GATEWAY_ADDR": gateway.address,
                "HERALD_USERD_ADDR": userd.address,
                "HERALD_DELIVERYD_LEASE_SECONDS": "4",
            },
        )
        channels = [userd.channel(), templated.channel(), gateway.channel()]
        user_id = await _create_user_and_template(channels[0], channels[1])
        stub = notification_pb2_grpc.NotificationServiceStub(channels[2])

        restart_wanted = asyncio.Event()
        stream = asyncio.create_task(_stream(stub, user_id, restart_wanted))
        await restart_wanted.wait()
        await asyncio.to_thread(rabbit.restart)
        accepted, refused = await stream
        assert len(accepted) + refused == STREAM
        assert len(accepted) >= RESTART_AFTER

        deadline = time.monotonic() + 120
        pending = set(accepted)
        while pending:
            for notification_id in list(pending):
                found = await stub.GetNotification(
                    notification_pb2.GetNotificationRequest(id=notification_id), timeout=10
                )
                if found.notification.status == DELIVERED:
                    pending.discard(notification_id)
            assert time.monotonic() < deadline, f"never delivered: {sorted(pending)}"
            await asyncio.sleep(0.5)

        # Nothing can come twice now: the outbox holds no hop to publish again, and the
        # broker no message to deliver again (none ready, none unacknowledged).
        await relay_passed(gateway, grace=1.0)

        async def broker_empty() -> bool:
            return await asyncio.to_thread(rabbit.messages) == 0

        await eventually(broker_empty, timeout=60, what="every message acknowledged")
        handed_over = Counter(d["subject"] for d in fakes.sendgrid.deliveries)
        assert handed_over == Counter(f"Message {n}" for n in accepted.values())
        assert worker.process is not None and worker.process.poll() is None
        # Told to stop while its broker is away, a worker still stops within its grace
        # (it waited for the broker to come back before cancelling its consumer: forever).
        await asyncio.to_thread(rabbit.stop)
        assert await asyncio.to_thread(worker.stop, STOP_WITH_BROKER_AWAY) == 0
    finally:
        for channel in channels:
            await channel.close()
        await asyncio.to_thread(rabbit.stop)
