"""Each provider class against its fake, with the real SDK on the wire.

Success carries the exact message and the provider's id; failures are classified:
transient (5xx, timeouts, refused connections, and anything about the provider account
or configuration: rejected credentials, an unknown domain, account or app id, a refused
sender) or permanent (invalid recipient, rejected content, a payload too large), and
gone push targets as such. A 429 is `Throttled`, with the answer's Retry-After, from
every HTTP provider.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from deliveryd.providers.base import (
    DEFAULT_RETRY_AFTER,
    EmailMessage,
    PermanentError,
    Platform,
    PushDevice,
    PushMessage,
    Sent,
    SmsMessage,
    TargetGone,
    Throttled,
    TransientError,
)
from deliveryd.providers.email.mailgun import MailgunProvider
from deliveryd.providers.email.sendgrid import SendGridProvider
from deliveryd.providers.email.smtp import SmtpProvider
from deliveryd.providers.push.fcm import FcmProvider
from deliveryd.providers.push.onesignal import OneSignalProvider
from deliveryd.providers.push.webpush import WebPushProvider
from deliveryd.providers.sandbox import SandboxProvider
from deliveryd.providers.sms.twilio import TwilioProvider
from mesh.outbound import OutboundRule
from tests.deliveryd.conftest import Fakes
from tests.fakes.base import FakeServer

SENDER = "Herald <no-reply@herald.test>"
TIMEOUT = 0.5


def email(to: str = "jane@example.com") -> EmailMessage:
    return EmailMessage(
        to=to,
        subject="Welcome, Jane",
        html="<p>Hello <b>Jane</b></p>",
        text="Hello Jane",
        key="n-1:1:email",
        notification_id="n-1",
        attempt_id="att-1",
    )


def sms(to: str = "+5511987654321") -> SmsMessage:
    return SmsMessage(
        to=to, text="Your code is 1234", key="n-2:1:sms", notification_id="n-2", attempt_id="att-2"
    )


def push(device: PushDevice, key: str = "n-3:1:push") -> PushMessage:
    return PushMessage(
        device=device,
        title="Hi",
        body="You have mail",
        data={"kind": "inbox"},
        key=key,
        notification_id="n-3",
    )


async def throttled_by_429s(fake: FakeServer, send: Callable[[], Awaitable[Sent]]) -> None:
    """A 429 from `fake` makes `send` raise `Throttled` waiting the answer's Retry-After
    (seconds, an HTTP date, or 1 s when there is none), and sends nothing; the next
    request, answered normally, sends."""
    when = datetime.now(UTC) + timedelta(seconds=30)
    for header, waits in ((7, 7.0), (None, DEFAULT_RETRY_AFTER), (format_datetime(when), 30.0)):
        delivered = len(fake.deliveries)
        fake.throttle_next(retry_after=header)
        with pytest.raises(Throttled) as caught:
            await send()
        assert caught.value.status == 429
        assert caught.value.retry_after == pytest.approx(waits, abs=1.5)
        assert len(fake.deliveries) == delivered
    await send()
    assert len(fake.deliveries) == delivered + 1


# --- SendGrid --------------------------------------------------------------------------


@pytest.fixture
def sendgrid(fakes: Fakes) -> SendGridProvider:
    return SendGridProvider(
        api_key=fakes.sendgrid.api_key, base_url=fakes.sendgrid.url, sender=SENDER, timeout=TIMEOUT
    )


async def test_sendgrid_sends_the_exact_message(fakes: Fakes, sendgrid: SendGridProvider) -> None:
    sent = await sendgrid.send(email())
    [delivery] = fakes.sendgrid.deliveries
    assert sent.message_id == delivery["message_id"]
    assert delivery["to"] == "jane@example.com"
    assert delivery["from"] == "no-reply@herald.test"
    assert (delivery["subject"], delivery["text"], delivery["html"]) == (
        "Welcome, Jane",
        "Hello Jane",
        "<p>Hello <b>Jane</b></p>",
    )
    # What the Event Webhook's events come back with, to be matched to the attempt.
    assert delivery["custom_args"] == {
        "herald_key": "n-1:1:email",
        "herald_notification_id": "n-1",
        "herald_attempt_id": "att-1",
    }


async def test_sendgrid_sends_no_attempt_id_outside_a_hop(
    fakes: Fakes, sendgrid: SendGridProvider
) -> None:
    await sendgrid.send(replace(email(), attempt_id=None))
    [delivery] = fakes.sendgrid.deliveries
    assert "herald_attempt_id" not in delivery["custom_args"]


@pytest.mark.parametrize("status", [500, 503])
async def test_sendgrid_server_errors_are_transient(
    fakes: Fakes, sendgrid: SendGridProvider, status: int
) -> None:
    fakes.sendgrid.fail_next(status=status)
    with pytest.raises(TransientError) as caught:
        await sendgrid.send(email())
    assert caught.value.status == status
    assert not fakes.sendgrid.deliveries


async def test_sendgrid_429_is_throttled(fakes: Fakes, sendgrid: SendGridProvider) -> None:
    await throttled_by_429s(fakes.sendgrid, lambda: sendgrid.send(email()))


async def test_sendgrid_invalid_recipient_is_permanent(
    fakes: Fakes, sendgrid: SendGridProvider
) -> None:
    fakes.sendgrid.invalid_recipients.add("nobody@example.com")
    with pytest.raises(PermanentError) as caught:
        await sendgrid.send(email("nobody@example.com"))
    assert caught.value.status == 400


async def test_sendgrid_rejected_key_is_transient(fakes: Fakes) -> None:
    provider = SendGridProvider(
        api_key="SG.wrong", base_url=fakes.sendgrid.url, sender=SENDER, timeout=TIMEOUT
    )
    with pytest.raises(TransientError, match="credentials"):
        await provider.send(email())


async def test_sendgrid_account_errors_are_transient_and_message_errors_permanent(
    fakes: Fakes, sendgrid: SendGridProvider
) -> None:
    fakes.sendgrid.fail_next(status=404)
    with pytest.raises(TransientError) as caught:
        await sendgrid.send(email())
    assert caught.value.status == 404
    unverified = {
        "errors": [{"message": "The from address is not verified", "field": "from", "help": None}]
    }
    fakes.sendgrid.fail_next(status=400, body=unverified)
    with pytest.raises(TransientError):
        await sendgrid.send(email())
    fakes.sendgrid.fail_next(status=413)
    with pytest.raises(PermanentError) as too_large:
        await sendgrid.send(email())
    assert too_large.value.status == 413


async def test_sendgrid_timeout_and_refusal_are_transient(
    fakes: Fakes, sendgrid: SendGridProvider
) -> None:
    fakes.sendgrid.delay_next(1, seconds=TIMEOUT * 3)
    with pytest.raises(TransientError, match="timed out"):
        await sendgrid.send(email())
    await fakes.sendgrid.refuse()
    with pytest.raises(TransientError, match="unreachable"):
        await sendgrid.send(email())


# --- Mailgun ---------------------------------------------------------------------------


@pytest.fixture
async def mailgun(fakes: Fakes) -> AsyncIterator[MailgunProvider]:
    provider = MailgunProvider(
        api_key=fakes.mailgun.api_key,
        domain=fakes.mailgun.domain,
        base_url=fakes.mailgun.url,
        sender=SENDER,
        timeout=TIMEOUT,
    )
    yield provider
    await provider.close()


async def test_mailgun_sends_the_exact_message(fakes: Fakes, mailgun: MailgunProvider) -> None:
    sent = await mailgun.send(email())
    [delivery] = fakes.mailgun.deliveries
    assert sent.message_id == delivery["message_id"]
    assert (delivery["to"], delivery["from"], delivery["subject"]) == (
        "jane@example.com",
        SENDER,
        "Welcome, Jane",
    )
    assert (delivery["text"], delivery["html"]) == ("Hello Jane", "<p>Hello <b>Jane</b></p>")
    assert delivery["variables"] == {
        "herald_key": "n-1:1:email",
        "herald_notification_id": "n-1",
        "herald_attempt_id": "att-1",
    }


async def test_mailgun_classifies_failures(fakes: Fakes, mailgun: MailgunProvider) -> None:
    fakes.mailgun.fail_next(status=502)
    with pytest.raises(TransientError):
        await mailgun.send(email())
    fakes.mailgun.invalid_recipients.add("bad@example.com")
    with pytest.raises(PermanentError):
        await mailgun.send(email("bad@example.com"))
    fakes.mailgun.delay_next(1, seconds=TIMEOUT * 3)
    with pytest.raises(TransientError, match="timed out"):
        await mailgun.send(email())
    await fakes.mailgun.refuse()
    with pytest.raises(TransientError, match="unreachable"):
        await mailgun.send(email())
    assert not fakes.mailgun.deliveries


async def test_mailgun_429_is_throttled(fakes: Fakes, mailgun: MailgunProvider) -> None:
    await throttled_by_429s(fakes.mailgun, lambda: mailgun.send(email()))


async def test_mailgun_account_errors_are_transient(fakes: Fakes) -> None:
    def mailgun(api_key: str, domain: str) -> MailgunProvider:
        return MailgunProvider(
            api_key=api_key,
            domain=domain,
            base_url=fakes.mailgun.url,
            sender=SENDER,
            timeout=TIMEOUT,
        )

    wrong_key = mailgun("key-wrong", fakes.mailgun.domain)
    with pytest.raises(TransientError, match="credentials") as forbidden:
        await wrong_key.send(email())
    assert forbidden.value.status == 401
    await wrong_key.close()
    wrong_domain = mailgun(fakes.mailgun.api_key, "mg.unknown.example")
    with pytest.raises(TransientError, match="Domain not found") as missing:
        await wrong_domain.send(email())
    assert missing.value.status == 404
    await wrong_domain.close()
    assert not fakes.mailgun.deliveries


async def test_mailgun_refused_sender_is_transient_and_large_message_permanent(
    fakes: Fakes, mailgun: MailgunProvider
) -> None:
    fakes.mailgun.fail_next(
        status=400,
        body={"message": "'from' parameter is not a valid address. please check documentation"},
    )
    with pytest.raises(TransientError):
        await mailgun.send(email())
    fakes.mailgun.fail_next(status=413)
    with pytest.raises(PermanentError):
        await mailgun.send(email())


# --- SMTP ------------------------------------------------------------------------------


@pytest.fixture
def smtp(fakes: Fakes) -> SmtpProvider:
    return SmtpProvider(
        host="127.0.0.1",
        port=fakes.smtp.port,
        username=None,
        password=None,
        start_tls=False,
        sender=SENDER,
        timeout=TIMEOUT,
    )


async def test_smtp_sends_the_exact_message(fakes: Fakes, smtp: SmtpProvider) -> None:
    sent = await smtp.send(email())
    [delivery] = fakes.smtp.deliveries
    assert delivery["to"] == ["jane@example.com"]
    assert delivery["mail_from"] == "no-reply@herald.test"
    assert delivery["subject"] == "Welcome, Jane"
    assert delivery["text"].strip() == "Hello Jane"
    assert delivery["html"].strip() == "<p>Hello <b>Jane</b></p>"
    assert sent.message_id == delivery["message_id"] == "<n-1.1.email@herald.test>"


async def test_smtp_classifies_failures(fakes: Fakes, smtp: SmtpProvider) -> None:
    fakes.smtp.invalid_recipients.add("ghost@example.com")
    with pytest.raises(PermanentError) as caught:
        await smtp.send(email("ghost@example.com"))
    assert caught.value.status == 550
    fakes.smtp.fail_next(1)
    with pytest.raises(TransientError) as temporary:
        await smtp.send(email())
    assert temporary.value.status == 451
    fakes.smtp.stall_ehlo(TIMEOUT * 3)
    with pytest.raises(TransientError, match="timed out"):
        await smtp.send(email())
    fakes.smtp.stall_ehlo(0)
    await fakes.smtp.refuse()
    with pytest.raises(TransientError):
        await smtp.send(email())
    assert not fakes.smtp.deliveries


async def test_smtp_relay_denied_is_transient_and_rejected_content_permanent(
    fakes: Fakes, smtp: SmtpProvider
) -> None:
    fakes.smtp.relay_denied = True
    with pytest.raises(TransientError, match="relay") as denied:
        await smtp.send(email())
    assert denied.value.status == 554
    fakes.smtp.relay_denied = False
    fakes.smtp.fail_next(1, "554 5.6.0 message content rejected")
    with pytest.raises(PermanentError) as rejected:
        await smtp.send(email())
    assert rejected.value.status == 554
    assert not fakes.smtp.deliveries


async def test_smtp_refusing_a_header_is_the_message_s_fault(
    fakes: Fakes, smtp: SmtpProvider
) -> None:
    injected = replace(email(), subject="x\r\nBcc: a@evil.example")
    with pytest.raises(PermanentError, match="cannot carry the message"):
        await smtp.send(injected)
    assert not fakes.smtp.deliveries


# --- Twilio ----------------------------------------------------------------------------


@pytest.fixture
def twilio(fakes: Fakes) -> TwilioProvider:
    return TwilioProvider(
        account_sid=fakes.twilio.account_sid,
        auth_token=fakes.twilio.auth_token,
        sender="+15550001111",
        base_url=fakes.twilio.url,
        timeout=TIMEOUT,
    )


async def test_twilio_sends_the_exact_sms(fakes: Fakes, twilio: TwilioProvider) -> None:
    sent = await twilio.send(sms())
    [delivery] = fakes.twilio.deliveries
    assert sent.message_id == delivery["sid"]
    assert sent.message_id.startswith("SM")
    assert delivery == {
        "sid": sent.message_id,
        "to": "+5511987654321",
        "from": "+15550001111",
        "body": "Your code is 1234",
        # No public URL configured: no status callbacks asked for.
        "status_callback": "",
    }


async def test_twilio_asks_for_status_callbacks_at_the_public_url(fakes: Fakes) -> None:
    provider = TwilioProvider(
        account_sid=fakes.twilio.account_sid,
        auth_token=fakes.twilio.auth_token,
        sender="+15550001111",
        base_url=fakes.twilio.url,
        timeout=TIMEOUT,
        receipts_base_url="https://herald.example.com/api",
    )
    await provider.send(sms())
    [delivery] = fakes.twilio.deliveries
    assert delivery["status_callback"] == (
        "https://herald.example.com/api/webhooks/twilio?attempt=att-2&notification=n-2"
    )


async def test_twilio_invalid_number_is_permanent(fakes: Fakes, twilio: TwilioProvider) -> None:
    fakes.twilio.invalid_numbers.add("+5511000000000")
    with pytest.raises(PermanentError, match="21211"):
        await twilio.send(sms("+5511000000000"))


async def test_twilio_transient_failures(fakes: Fakes, twilio: TwilioProvider) -> None:
    fakes.twilio.fail_next(status=500)
    with pytest.raises(TransientError):
        await twilio.send(sms())
    fakes.twilio.delay_next(1, seconds=TIMEOUT * 3)
    with pytest.raises(TransientError, match="timed out"):
        await twilio.send(sms())
    await fakes.twilio.refuse()
    with pytest.raises(TransientError, match="unreachable"):
        await twilio.send(sms())


async def test_twilio_429_is_throttled(fakes: Fakes, twilio: TwilioProvider) -> None:
    await throttled_by_429s(fakes.twilio, lambda: twilio.send(sms()))


async def test_twilio_account_errors_are_transient(fakes: Fakes) -> None:
    provider = TwilioProvider(
        account_sid=fakes.twilio.account_sid,
        auth_token="wrong-token",
        sender="+15550001111",
        base_url=fakes.twilio.url,
        timeout=TIMEOUT,
    )
    with pytest.raises(TransientError, match="credentials") as unauthenticated:
        await provider.send(sms())
    assert unauthenticated.value.status == 401


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (404, 20404),  # no such account
        (401, 20003),  # authentication
        (403, 20005),  # account not active
        (400, 21606),  # 'From' is not an SMS-capable number of the account
        (400, 21608),  # trial account, unverified number
    ],
)
async def test_twilio_account_codes_are_transient(
    fakes: Fakes, twilio: TwilioProvider, status: int, code: int
) -> None:
    fakes.twilio.fail_next(
        status=status, body={"code": code, "message": "fake", "more_info": "", "status": status}
    )
    with pytest.raises(TransientError) as caught:
        await twilio.send(sms())
    assert caught.value.status == status


async def test_twilio_too_long_body_is_permanent(fakes: Fakes, twilio: TwilioProvider) -> None:
    fakes.twilio.fail_next(
        status=400,
        body={"code": 21617, "message": "body exceeds 1600", "more_info": "", "status": 400},
    )
    with pytest.raises(PermanentError, match="21617"):
        await twilio.send(sms())


# --- FCM -------------------------------------------------------------------------------


@pytest.fixture
async def fcm(fakes: Fakes) -> AsyncIterator[FcmProvider]:
    provider = FcmProvider(
        credentials_file=str(fakes.fcm_credentials),
        project_id=None,
        base_url=fakes.fcm.url,
        timeout=TIMEOUT,
    )
    yield provider
    await provider.close()


def fcm_device(token: str = "fcm-token-1") -> PushDevice:
    return PushDevice(id="t-1", platform=Platform.FCM, token=token)


async def test_fcm_sends_with_its_oauth_token(fakes: Fakes, fcm: FcmProvider) -> None:
    sent = await fcm.send(push(fcm_device()))
    [delivery] = fakes.fcm.deliveries
    assert sent.message_id == delivery["name"]
    assert delivery["name"].startswith("projects/herald-test/messages/")
    assert (delivery["token"], delivery["title"], delivery["body"]) == (
        "fcm-token-1",
        "Hi",
        "You have mail",
    )
    assert delivery["data"]["kind"] == "inbox"
    assert fakes.fcm.requests[0].path == "/token"


async def test_fcm_unregistered_token_is_gone(fakes: Fakes, fcm: FcmProvider) -> None:
    fakes.fcm.unregistered.add("old-token")
    with pytest.raises(TargetGone):
        await fcm.send(push(fcm_device("old-token")))


async def test_fcm_failures_are_classified_without_sdk_retries(
    fakes: Fakes, fcm: FcmProvider
) -> None:
    await fcm.send(push(fcm_device()))  # fetches the token first
    before = len(fakes.fcm.requests)
    fakes.fcm.fail_next(status=503)
    with pytest.raises(TransientError):
        await fcm.send(push(fcm_device()))
    # One request: the SDK's own retry loop is off, Herald's policy retries.
    assert len(fakes.fcm.requests) == before + 1
    fakes.fcm.fail_next(status=400)
    with pytest.raises(PermanentError):
        await fcm.send(push(fcm_device()))
    await fakes.fcm.refuse()
    with pytest.raises(TransientError):
        await fcm.send(push(fcm_device()))


async def test_fcm_429_is_throttled(fakes: Fakes, fcm: FcmProvider) -> None:
    await fcm.send(push(fcm_device()))  # fetches the token: the 429s answer the sends
    await throttled_by_429s(fakes.fcm, lambda: fcm.send(push(fcm_device())))


async def test_fcm_rejected_token_fails_fast_and_is_fetched_again(
    fakes: Fakes, fcm: FcmProvider
) -> None:
    await fcm.send(push(fcm_device()))
    issued = len(fakes.fcm.tokens_issued)
    fakes.fcm.fail_next(status=401)
    began = time.monotonic()
    # The SDK would refresh the token on the event loop (blocking, up to 120 s) here.
    with pytest.raises(TransientError) as caught:
        async with asyncio.timeout(TIMEOUT):
            await fcm.send(push(fcm_device()))
    assert time.monotonic() - began < TIMEOUT
    assert caught.value.status == 401
    assert len(fakes.fcm.tokens_issued) == issued
    # The rejected token is dropped: the next send fetches another one, then sends with it.
    sent = await fcm.send(push(fcm_device()))
    assert len(fakes.fcm.tokens_issued) == issued + 1
    [*_, token_request, send_request] = fakes.fcm.requests
    assert token_request.path == "/token"
    assert send_request.headers["authorization"] == f"Bearer {fakes.fcm.tokens_issued[-1]}"
    assert sent.message_id == fakes.fcm.deliveries[-1]["name"]


async def test_fcm_slow_token_endpoint_times_out_off_the_loop(
    fakes: Fakes, fcm: FcmProvider
) -> None:
    fakes.fcm.delay_next(1, seconds=TIMEOUT * 4)
    began = time.monotonic()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    ticker = asyncio.create_task(tick())
    with pytest.raises(TransientError, match="token refresh timed out"):
        await fcm.send(push(fcm_device()))
    ticker.cancel()
    assert time.monotonic() - began < TIMEOUT * 2
    # The loop ran meanwhile: the token was fetched in a thread.
    assert ticks >= 5
    assert not fakes.fcm.deliveries


@pytest.mark.parametrize("status", [403, 404])
async def test_fcm_project_errors_are_transient(
    fakes: Fakes, fcm: FcmProvider, status: int
) -> None:
    await fcm.send(push(fcm_device()))
    fakes.fcm.fail_next(status=status)
    with pytest.raises(TransientError):
        await fcm.send(push(fcm_device()))


# --- OneSignal -------------------------------------------------------------------------


@pytest.fixture
async def onesignal(fakes: Fakes) -> AsyncIterator[OneSignalProvider]:
    provider = OneSignalProvider(
        app_id=fakes.onesignal.app_id,
        api_key=fakes.onesignal.api_key,
        base_url=fakes.onesignal.url,
        timeout=TIMEOUT,
    )
    yield provider
    await provider.close()


def onesignal_device(subscription: str = "sub-1") -> PushDevice:
    return PushDevice(id="t-2", platform=Platform.ONESIGNAL, token=subscription)


async def test_onesignal_sends_once_per_idempotency_key(
    fakes: Fakes, onesignal: OneSignalProvider
) -> None:
    first = await onesignal.send(push(onesignal_device()))
    again = await onesignal.send(push(onesignal_device()))
    [delivery] = fakes.onesignal.deliveries
    assert first.message_id == again.message_id == delivery["id"]
    assert again.detail == "idempotent replay"
    assert (delivery["subscription_id"], delivery["title"], delivery["body"]) == (
        "sub-1",
        "Hi",
        "You have mail",
    )
    # Another generation of the notification is another key: sent again.
    await onesignal.send(push(onesignal_device(), key="n-3:2:push"))
    assert len(fakes.onesignal.deliveries) == 2


async def test_onesignal_failures(fakes: Fakes, onesignal: OneSignalProvider) -> None:
    fakes.onesignal.unsubscribed.add("sub-gone")
    with pytest.raises(TargetGone):
        await onesignal.send(push(onesignal_device("sub-gone")))
    fakes.onesignal.fail_next(status=400)
    with pytest.raises(PermanentError):
        await onesignal.send(push(onesignal_device()))
    fakes.onesignal.delay_next(1, seconds=TIMEOUT * 3)
    with pytest.raises(TransientError, match="timed out"):
        await onesignal.send(push(onesignal_device()))


async def test_onesignal_429_is_throttled(fakes: Fakes, onesignal: OneSignalProvider) -> None:
    await throttled_by_429s(fakes.onesignal, lambda: onesignal.send(push(onesignal_device())))


async def test_onesignal_app_and_key_errors_are_transient(fakes: Fakes) -> None:
    def onesignal(app_id: str, api_key: str) -> OneSignalProvider:
        return OneSignalProvider(
            app_id=app_id, api_key=api_key, base_url=fakes.onesignal.url, timeout=TIMEOUT
        )

    unknown_app = onesignal("99999999-2222-3333-4444-555555555555", fakes.onesignal.api_key)
    with pytest.raises(TransientError, match="app_id not found") as caught:
        await unknown_app.send(push(onesignal_device()))
    assert caught.value.status == 400
    await unknown_app.close()
    wrong_key = onesignal(fakes.onesignal.app_id, "os-wrong")
    with pytest.raises(TransientError, match="credentials"):
        await wrong_key.send(push(onesignal_device()))
    await wrong_key.close()
    assert not fakes.onesignal.deliveries


# --- Web Push --------------------------------------------------------------------------


@pytest.fixture
async def webpush(fakes: Fakes) -> AsyncIterator[WebPushProvider]:
    provider = WebPushProvider(
        vapid_private_key=fakes.vapid_private_key,
        subject="mailto:ops@herald.test",
        ttl=60,
        timeout=TIMEOUT,
        outbound=OutboundRule(allow_loopback=True),  # the fake is on 127.0.0.1
    )
    yield provider
    await provider.close()


def webpush_device(fakes: Fakes) -> tuple[PushDevice, str]:
    subscription = fakes.webpush.subscribe()
    device = PushDevice(
        id="t-3",
        platform=Platform.WEBPUSH,
        endpoint=subscription.endpoint,
        p256dh=subscription.p256dh,
        auth=subscription.auth,
    )
    return device, subscription.id


async def test_webpush_delivers_an_encrypted_payload(
    fakes: Fakes, webpush: WebPushProvider
) -> None:
    device, sub_id = webpush_device(fakes)
    sent = await webpush.send(push(device))
    [delivery] = fakes.webpush.deliveries
    assert delivery["subscription"] == sub_id
    assert delivery["payload"] == {
        "title": "Hi",
        "body": "You have mail",
        "data": {"kind": "inbox"},
        "notification_id": "n-3",
    }
    assert delivery["vapid_sub"] == "mailto:ops@herald.test"
    assert sent.message_id.endswith(delivery["message_id"])


async def test_webpush_failures(fakes: Fakes, webpush: WebPushProvider) -> None:
    device, sub_id = webpush_device(fakes)
    fakes.webpush.gone.add(sub_id)
    with pytest.raises(TargetGone):
        await webpush.send(push(device))
    fakes.webpush.gone.clear()
    fakes.webpush.fail_next(status=503)
    with pytest.raises(TransientError):
        await webpush.send(push(device))
    fakes.webpush.fail_next(status=413)
    with pytest.raises(PermanentError):
        await webpush.send(push(device))
    fakes.webpush.delay_next(1, seconds=TIMEOUT * 3)
    with pytest.raises(TransientError, match="timed out"):
        await webpush.send(push(device))
    await fakes.webpush.refuse()
    with pytest.raises(TransientError, match="unreachable"):
        await webpush.send(push(device))


async def test_webpush_429_is_throttled(fakes: Fakes, webpush: WebPushProvider) -> None:
    device, _ = webpush_device(fakes)
    await throttled_by_429s(fakes.webpush, lambda: webpush.send(push(device)))


# --- Sandbox ---------------------------------------------------------------------------


async def test_sandbox_records_exactly_what_would_be_sent() -> None:
    sent = await SandboxProvider[EmailMessage](timeout=1).send(email())
    assert sent.message_id.startswith("sandbox-")
    assert '"subject":"Welcome, Jane"' in sent.detail
    assert '"html":"<p>Hello <b>Jane</b></p>"' in sent.detail
    assert '"to":"jane@example.com"' in sent.detail
    assert "att-1" not in sent.detail
