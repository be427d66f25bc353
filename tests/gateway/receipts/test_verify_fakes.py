"""The round trip end-to-end tests rely on: deliveryd's real senders carry Herald's ids
to the fake providers, whose receipts, posted over HTTP as the provider posts them, verify
and read back to the same attempt, notification and message."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

from deliveryd.providers.base import EmailMessage, SmsMessage
from deliveryd.providers.email.mailgun import MailgunProvider
from deliveryd.providers.email.sendgrid import SendGridProvider
from deliveryd.providers.sms.twilio import TwilioProvider
from gateway.receipts.model import ReceiptEvent
from gateway.receipts.verify import mailgun, sendgrid, twilio
from tests.fakes.mailgun import MailgunFake
from tests.fakes.sendgrid import SendGridFake
from tests.fakes.twilio import TwilioFake

TOLERANCE = timedelta(minutes=5)
SENDER = "Herald <no-reply@herald.test>"
ATTEMPT, NOTIFICATION = "6f1c2a4e-0c1d-4d1e-9a55-0b1f7d7f3e10", "n-42"


@dataclass
class Received:
    """What a webhook receiver on 127.0.0.1 got: the URL as called, headers, body."""

    url: str
    headers: dict[str, str]
    body: bytes
    form: dict[str, str] = field(default_factory=dict)


class Receiver:
    """Stands in for the gateway's webhook routes: answers 200 and keeps each request."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _take(self, request: web.Request) -> web.Response:
        body = await request.read()
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.received.append(Received(str(request.url), dict(request.headers), body, form))
        return web.Response(status=200)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._take)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    started = Receiver()
    await started.start()
    yield started
    await started.stop()


def email() -> EmailMessage:
    return EmailMessage(
        to="jane@example.com",
        subject="Hi",
        html="",
        text="Hello",
        key=f"{NOTIFICATION}:1:email",
        notification_id=NOTIFICATION,
        attempt_id=ATTEMPT,
    )


async def test_sendgrid_events_name_the_attempt(receiver: Receiver) -> None:
    fake = SendGridFake()
    await fake.start()
    try:
        provider = SendGridProvider(
            api_key=fake.api_key, base_url=fake.url, sender=SENDER, timeout=2
        )
        sent = await provider.send(email())
        answer = await fake.send_event(
            f"{receiver.url}/webhooks/sendgrid", sent.message_id, "bounce"
        )
    finally:
        await fake.stop()
    assert answer.status == 200
    [got] = receiver.received
    [receipt] = sendgrid.parse(
        got.body,
        got.headers[sendgrid.SIGNATURE_HEADER],
        got.headers[sendgrid.TIMESTAMP_HEADER],
        public_key=fake.public_key,
        now=datetime.now(UTC),
        tolerance=TOLERANCE,
    )
    assert receipt.event is ReceiptEvent.BOUNCED
    assert (receipt.attempt_id, receipt.notification_id) == (ATTEMPT, NOTIFICATION)
    assert (receipt.provider_message_id, receipt.contact) == (sent.message_id, "jane@example.com")


async def test_mailgun_events_name_the_attempt(receiver: Receiver) -> None:
    fake = MailgunFake()
    await fake.start()
    try:
        provider = MailgunProvider(
            api_key=fake.api_key, domain=fake.domain, base_url=fake.url, sender=SENDER, timeout=2
        )
        sent = await provider.send(email())
        url = f"{receiver.url}/webhooks/mailgun"
        answer = await fake.send_event(url, sent.message_id, "failed", severity="temporary")
    finally:
        await fake.stop()
    assert answer.status == 200
    [got] = receiver.received
    [receipt] = mailgun.parse(
        got.body, signing_key=fake.signing_key, now=datetime.now(UTC), tolerance=TOLERANCE
    )
    assert receipt.event is ReceiptEvent.DEFERRED
    assert (receipt.attempt_id, receipt.notification_id) == (ATTEMPT, NOTIFICATION)
    assert receipt.provider_message_id == sent.message_id.strip("<>")


async def test_twilio_callbacks_come_to_the_configured_url_and_name_the_attempt(
    receiver: Receiver,
) -> None:
    fake = TwilioFake()
    await fake.start()
    try:
        provider = TwilioProvider(
            account_sid=fake.account_sid,
            auth_token=fake.auth_token,
            sender="+15550001111",
            base_url=fake.url,
            timeout=2,
            receipts_base_url=receiver.url + "/",
        )
        message = SmsMessage(
            to="+5511987654321",
            text="Your code is 1234",
            key=f"{NOTIFICATION}:1:sms",
            notification_id=NOTIFICATION,
            attempt_id=ATTEMPT,
        )
        sent = await provider.send(message)
        answer = await fake.status_callback(sent.message_id, "undelivered", error_code="21610")
    finally:
        await fake.stop()
    assert answer.status == 200
    [got] = receiver.received
    assert (
        got.url == f"{receiver.url}/webhooks/twilio?attempt={ATTEMPT}&notification={NOTIFICATION}"
    )
    [receipt] = twilio.parse(
        got.url,
        got.form,
        got.headers[twilio.SIGNATURE_HEADER],
        auth_token=fake.auth_token,
        now=datetime.now(UTC),
    )
    assert receipt.event is ReceiptEvent.OPTED_OUT
    assert (receipt.attempt_id, receipt.notification_id) == (ATTEMPT, NOTIFICATION)
    assert (receipt.provider_message_id, receipt.code) == (sent.message_id, "21610")
