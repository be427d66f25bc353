"""The end-to-end stack of the worker tests: userd, templated, the gateway and deliveryd
email/sms/push as real processes on real PostgreSQL, Redis and RabbitMQ, the providers
faked (`tests.deliveryd.conftest.Fakes`), and the clients the tests use."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import grpc
from google.protobuf import struct_pb2

from herald.v1 import (
    common_pb2,
    delivery_pb2,
    notification_pb2,
    notification_pb2_grpc,
    template_pb2,
    template_pb2_grpc,
    user_pb2,
    user_pb2_grpc,
)
from mesh import amqp
from mesh.interceptors import CLIENT_HEADER
from tests.conftest import ServiceFactory
from tests.deliveryd.conftest import Fakes
from tests.deliveryd.webhook import AlertWebhook
from tests.support.infra import Isolation, add_vhost, release_vhost
from tests.support.processes import ServiceProcess
from tests.support.stack import start_core

TEMPLATE = "e2e/welcome"
ONESIGNAL_SUBSCRIPTION = "7f4d9c2e-1b3a-4e5f-9a8b-0c1d2e3f4a5b"
DELIVERED = common_pb2.NOTIFICATION_STATUS_DELIVERED
FAILED = common_pb2.NOTIFICATION_STATUS_FAILED
OUTCOME = delivery_pb2.AttemptOutcome
ROUTES = {"transactional": ["email", "sms"], "alert": ["email", "sms"], "marketing": []}


@dataclass
class Stack:
    """Every process of the module, and the clients the tests use."""

    factory: ServiceFactory
    fakes: Fakes
    amqp_url: str
    userd: ServiceProcess
    templated: ServiceProcess
    gateway: ServiceProcess
    worker_env: dict[str, str]
    webhook: AlertWebhook
    workers: dict[str, ServiceProcess] = field(default_factory=dict)
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    def stub(self, proc: ServiceProcess, stub: Any) -> Any:
        channel = proc.channel()
        self.channels.append(channel)
        return stub(channel)

    @property
    def notifications(self) -> notification_pb2_grpc.NotificationServiceAsyncStub:
        return self.stub(self.gateway, notification_pb2_grpc.NotificationServiceStub)  # type: ignore[no-any-return]

    async def start_worker(self, channel: str, **overrides: str) -> ServiceProcess:
        env = {**self.worker_env, **overrides}
        proc = await asyncio.to_thread(self.factory, "deliveryd", channel, env=env)
        self.workers[channel] = proc
        return proc

    async def stop_worker(self, channel: str) -> None:
        proc = self.workers.pop(channel)
        assert await asyncio.to_thread(proc.stop) == 0

    @contextlib.asynccontextmanager
    async def replaced_worker(self, channel: str, **overrides: str) -> AsyncIterator[None]:
        """Runs the test with another configuration of the channel's worker (and only it):
        started here with `overrides`, or by the test itself when there are none."""
        await self.stop_worker(channel)
        try:
            if overrides:
                await self.start_worker(channel, **overrides)
            yield
        finally:
            if channel in self.workers:
                proc = self.workers.pop(channel)
                try:
                    await asyncio.to_thread(proc.stop)
                except AssertionError:
                    proc.kill()
            await self.start_worker(channel)

    async def create_user(self, **fields: Any) -> user_pb2.User:
        users = self.stub(self.userd, user_pb2_grpc.UserServiceStub)
        values: dict[str, Any] = {
            "name": "Ada",
            "email": f"ada.{uuid.uuid4().hex[:8]}@example.com",
            "phone": "+14155550100",
            "password": "correct horse battery staple",
        }
        values.update(fields)
        answer = await users.CreateUser(user_pb2.CreateUserRequest(**values), timeout=10)
        return answer.user  # type: ignore[no-any-return]

    async def send(
        self,
        user: user_pb2.User,
        channel: int = common_pb2.CHANNEL_EMAIL,
        client: str = "",
        **fields: Any,
    ) -> str:
        """Sends as a service acting for `client` (default: the "internal" client)."""
        variables = struct_pb2.Struct()
        variables.update({"name": "Ada"})
        request = notification_pb2.SendRequest(
            user_id=user.id,
            channel=channel,  # type: ignore[arg-type]
            template_code=TEMPLATE,
            variables=variables,
            request_id=f"e2e-{uuid.uuid4().hex}",
            **fields,
        )
        answer = await self.notifications.Send(
            request, metadata=((CLIENT_HEADER, client),) if client else None, timeout=10
        )
        return answer.notification_id

    async def notification(
        self, notification_id: str, client: str = ""
    ) -> notification_pb2.Notification:
        """The notification as a service acting for `client` reads it (default: the
        "internal" client, which `send` sends as)."""
        answer = await self.notifications.GetNotification(
            notification_pb2.GetNotificationRequest(id=notification_id),
            metadata=((CLIENT_HEADER, client),) if client else None,
            timeout=10,
        )
        return answer.notification

    async def settled(
        self, notification_id: str, status: int = DELIVERED, timeout: float = 45, client: str = ""
    ) -> notification_pb2.Notification:
        """Waits until the notification has `status`; returns it with its trail."""
        deadline = time.monotonic() + timeout
        while True:
            found = await self.notification(notification_id, client)
            if found.status == status:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{notification_id} is {found.status}, not {status}: {found}")
            await asyncio.sleep(0.1)

    async def dead_letters(self) -> list[delivery_pb2.DeliveryJob]:
        connection = await aio_pika.connect(self.amqp_url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.get_queue(amqp.FAILED_QUEUE)
            jobs = []
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                jobs.append(delivery_pb2.DeliveryJob.FromString(message.body))
            return jobs


@contextlib.asynccontextmanager
async def open_stack(
    service_factory: ServiceFactory,
    isolation: Isolation,
    session_fakes: Fakes,
    *,
    name: str,
    gateway_env: dict[str, str] | None = None,
    worker_env: dict[str, str] | None = None,
    workers: tuple[str, ...] = ("email", "sms", "push"),
) -> AsyncIterator[Stack]:
    """userd, templated, the gateway and a worker per channel of `workers`, on a vhost and
    databases of their own (`name`), the fakes as providers; `gateway_env` and
    `worker_env` add to the processes' environments."""
    vhost = f"{isolation.vhost}-{name}"
    amqp_url = await asyncio.to_thread(add_vhost, vhost)
    webhook = AlertWebhook()
    await webhook.start()
    core = await start_core(
        service_factory,
        isolation,
        name=name,
        amqp_url=amqp_url,
        allow_loopback=True,  # the fake push service is on 127.0.0.1
        gateway_env={
            "HERALD_OUTBOX_GRACE_SECONDS": "1",
            "HERALD_OUTBOX_INTERVAL_SECONDS": "0.2",
            "HERALD_ROUTE_POLICY": json.dumps(ROUTES),
            "HERALD_DELIVERY_DEADLINE_SECONDS": "600",
            "HERALD_RETRY_BACKOFF_BASE_SECONDS": "0.3",
            "HERALD_RETRY_BACKOFF_MAX_SECONDS": "3",
            "HERALD_EMAIL_MAX_ATTEMPTS": "3",
            "HERALD_SMS_MAX_ATTEMPTS": "2",
            "HERALD_PUSH_MAX_ATTEMPTS": "2",
            **(gateway_env or {}),
        },
    )
    userd, templated, gateway = core.userd, core.templated, core.gateway
    worker_env = {
        **session_fakes.env(
            email="sendgrid,mailgun,smtp", sms="twilio", push="fcm,onesignal,webpush"
        ),
        "HERALD_AMQP_URL": amqp_url,
        "HERALD_GATEWAY_ADDR": gateway.address,
        "HERALD_USERD_ADDR": userd.address,
        "HERALD_DELIVERYD_LEASE_SECONDS": "4",
        "HERALD_DELIVERYD_BREAKER_THRESHOLD": "50",
        "HERALD_ALERT_WEBHOOK_URL": f"{webhook.url}/alerts",
        "HERALD_OUTBOUND_ALLOW_LOOPBACK": "true",  # the fakes and the webhook are local
        **(worker_env or {}),
    }
    built = Stack(
        service_factory, session_fakes, amqp_url, userd, templated, gateway, worker_env, webhook
    )
    templates = built.stub(templated, template_pb2_grpc.TemplateServiceStub)
    await templates.CreateTemplate(
        template_pb2.CreateTemplateRequest(
            code=TEMPLATE,
            name="Welcome",
            default_language="en",
            contents=[
                template_pb2.LocalizedContent(
                    language="en",
                    email=template_pb2.EmailContent(
                        subject="Hello {{ name }}",
                        html_body="<p>Welcome, <b>{{ name }}</b>!</p>",
                        text_body="Welcome, {{ name }}!",
                    ),
                    sms=template_pb2.SmsContent(text="Hi {{ name }}, welcome"),
                    push=template_pb2.PushContent(
                        title="Welcome", body="Hi {{ name }}", data={"screen": "home"}
                    ),
                )
            ],
            author="tests@example.com",
        ),
        timeout=10,
    )
    await asyncio.gather(*(built.start_worker(channel) for channel in workers))
    try:
        yield built
    finally:
        await _close(built, core, webhook, vhost)


@contextlib.asynccontextmanager
async def open_sandbox_stack(
    service_factory: ServiceFactory,
    isolation: Isolation,
    session_fakes: Fakes,
    *,
    name: str,
    secret: str,
    gateway_env: dict[str, str] | None = None,
    worker_env: dict[str, str] | None = None,
) -> AsyncIterator[Stack]:
    """The stack as `make up` runs it: the sandbox is the email and SMS chains, and posts
    its receipts (signed with `secret`) to the gateway's /webhooks/sandbox. No push
    worker. `worker_env` adds to the workers' environment."""
    async with open_stack(
        service_factory,
        isolation,
        session_fakes,
        name=name,
        gateway_env={"HERALD_SANDBOX_RECEIPTS_SECRET": secret, **(gateway_env or {})},
        worker_env=worker_env,
        workers=(),
    ) as built:
        env = {
            "HERALD_EMAIL_PROVIDERS": "sandbox",
            "HERALD_SMS_PROVIDERS": "sandbox",
            "HERALD_SANDBOX_RECEIPTS_SECRET": secret,
            "HERALD_SANDBOX_RECEIPT_DELAY_SECONDS": "0.2",
            # The gateway's edge, known once it started.
            "HERALD_RECEIPTS_BASE_URL": f"http://127.0.0.1:{built.gateway.http_port}",
        }
        for channel in ("email", "sms"):
            await built.start_worker(channel, **env)
        yield built


async def _close(built: Stack, core: Any, webhook: AlertWebhook, vhost: str) -> None:
    workers = [built.workers.pop(channel) for channel in list(built.workers)]
    if workers:
        codes = await asyncio.to_thread(workers[0].stop_together, *workers[1:])
        assert codes == [0] * len(workers), dict(zip([w.name for w in workers], codes, strict=True))
    await asyncio.to_thread(core.stop)
    for grpc_channel in built.channels:
        await grpc_channel.close()
    await webhook.stop()
    release_vhost(vhost)
