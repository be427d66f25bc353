"""Receipts end to end: the stack of `e2e_stack` with SendGrid's and Twilio's receipts
configured; the fakes sign their callbacks as the providers do (keys made by the fakes)
and post them to the gateway's /webhooks routes.

An email SendGrid took is `sent` until a receipt settles it; a bounce fails the hop over
to SMS, whose Twilio delivery receipt makes it `delivered`.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from herald.v1 import common_pb2, delivery_pb2, notification_pb2, status_pb2, status_pb2_grpc
from tests.conftest import ServiceFactory
from tests.deliveryd.conftest import Fakes
from tests.deliveryd.e2e_stack import DELIVERED, FAILED, OUTCOME, Stack, open_stack
from tests.fakes.base import post_webhook
from tests.fakes.signing import SendGridSigner, mailgun_signature_block
from tests.gateway.http.conftest import create_key
from tests.support.infra import Isolation
from tests.support.waits import eventually

SENT = common_pb2.NOTIFICATION_STATUS_SENT
EMAIL, SMS = common_pb2.CHANNEL_EMAIL, common_pb2.CHANNEL_SMS


@pytest.fixture(scope="module")
async def stack(
    service_factory: ServiceFactory, isolation: Isolation, session_fakes: Fakes
) -> AsyncIterator[Stack]:
    gateway_env = {
        "HERALD_SENDGRID_WEBHOOK_PUBLIC_KEY": session_fakes.sendgrid.public_key,
        "HERALD_TWILIO_WEBHOOK_AUTH_TOKEN": session_fakes.twilio.auth_token,
        "HERALD_MAILGUN_WEBHOOK_SIGNING_KEY": session_fakes.mailgun.signing_key,
    }
    async with open_stack(
        service_factory, isolation, session_fakes, name="dlv-rcpt", gateway_env=gateway_env
    ) as built:
        # Twilio's StatusCallback points at the gateway's edge (known once it started).
        edge = f"http://127.0.0.1:{built.gateway.http_port}"
        await built.stop_worker("sms")
        await built.start_worker("sms", HERALD_RECEIPTS_BASE_URL=edge)
        yield built


@pytest.fixture
async def e2e(stack: Stack, fakes: Fakes) -> Stack:
    stack.webhook.reset()
    await stack.dead_letters()
    return stack


def _edge(stack: Stack, provider: str) -> str:
    return f"http://127.0.0.1:{stack.gateway.http_port}/webhooks/{provider}"


async def _sent(e2e: Stack, notification_id: str) -> notification_pb2.Notification:
    return await e2e.settled(notification_id, status=SENT)


def _receipts(found: notification_pb2.Notification) -> list[tuple[int, str, str]]:
    return [(a.channel, r.event, r.effect) for a in found.attempts for r in a.receipts]


async def test_a_bounced_email_fails_over_to_sms_and_its_receipt_delivers_it(
    e2e: Stack, fakes: Fakes
) -> None:
    user = await e2e.create_user()
    nid = await e2e.send(user)
    await _sent(e2e, nid)  # SendGrid took it; its receipts settle it
    [mail] = fakes.sendgrid.deliveries
    bounced = await fakes.sendgrid.send_event(
        _edge(e2e, "sendgrid"), mail["message_id"], "bounce", reason="550 5.1.1 no such user"
    )
    assert bounced.status == 200, bounced.text

    await eventually(lambda: fakes.twilio.deliveries)  # the route's next channel
    [sms] = fakes.twilio.deliveries
    await _sent(e2e, nid)  # Twilio took it
    answer = await fakes.twilio.status_callback(sms["sid"], "delivered")
    assert answer.status == 200, answer.text
    done = await e2e.settled(nid)

    assert done.status == DELIVERED and done.delivered_channel == SMS
    assert [(a.channel, a.outcome) for a in done.attempts] == [
        (EMAIL, OUTCOME.ATTEMPT_OUTCOME_DELIVERED),
        (SMS, OUTCOME.ATTEMPT_OUTCOME_DELIVERED),
    ]
    assert _receipts(done) == [
        (EMAIL, "bounced", "failed over to sms"),
        (SMS, "delivered", "delivered"),
    ]
    [bounce] = done.attempts[0].receipts
    assert "no such user" in bounce.reason


async def test_forged_stale_and_duplicated_callbacks(e2e: Stack, fakes: Fakes) -> None:
    user = await e2e.create_user()
    nid = await e2e.send(user)
    await _sent(e2e, nid)
    [mail] = fakes.sendgrid.deliveries
    url = _edge(e2e, "sendgrid")
    event = fakes.sendgrid.event(mail["message_id"], "delivered")

    # Forged: signed with another key. Stale: signed ten minutes ago. Nothing changes.
    body = orjson.dumps([event])
    headers = {"Content-Type": "application/json", **SendGridSigner().headers(body)}
    forged = await post_webhook(url, body, headers)
    stale = await fakes.sendgrid.post_events(url, [event], timestamp=str(int(time.time()) - 600))
    assert (forged.status, stale.status) == (401, 401), (forged.text, stale.text)
    assert (await e2e.notification(nid)).status == SENT

    # The same receipt twice: one effect.
    first = await fakes.sendgrid.post_events(url, [event])
    again = await fakes.sendgrid.post_events(url, [event])
    assert (first.status, again.status) == (200, 200)
    assert _counts(first.text) == {"applied": 1, "waiting": 0, "duplicate": 0, "unknown": 0}
    assert _counts(again.text)["duplicate"] == 1
    done = await e2e.settled(nid)
    assert _receipts(done) == [(EMAIL, "delivered", "delivered")]


async def test_twilio_undelivered_with_no_channel_left_fails_with_its_reason(
    e2e: Stack, fakes: Fakes
) -> None:
    user = await e2e.create_user()
    # Marketing (no fallback channel), its default quiet hours bypassed: at night they
    # would hold it (the test ran, and failed, at 22:00 UTC).
    nid = await e2e.send(
        user,
        channel=SMS,
        message_type=common_pb2.MESSAGE_TYPE_MARKETING,
        quiet_hours=notification_pb2.QUIET_HOURS_POLICY_BYPASS,
    )
    await _sent(e2e, nid)
    [sms] = fakes.twilio.deliveries
    answer = await fakes.twilio.status_callback(sms["sid"], "undelivered", error_code="30003")
    assert answer.status == 200, answer.text
    done = await e2e.settled(nid, status=FAILED)
    assert "undelivered" in done.status_reason and "30003" in done.status_reason
    assert _receipts(done) == [(SMS, "undelivered", "failed")]


async def test_a_receipt_for_an_unknown_message_is_taken_and_counted(
    e2e: Stack, fakes: Fakes
) -> None:
    unknown = {
        "email": "someone@example.com",
        "timestamp": int(time.time()),
        "event": "delivered",
        "sg_event_id": uuid.uuid4().hex,
        "sg_message_id": "not-sent-by-herald.filter0001.0",
    }
    answer = await fakes.sendgrid.post_events(_edge(e2e, "sendgrid"), [unknown])
    assert answer.status == 200, answer.text
    assert _counts(answer.text)["unknown"] == 1


def _counts(text: str) -> dict[str, Any]:
    counts: dict[str, Any] = json.loads(text)
    return counts


async def test_a_receipt_that_races_the_workers_report_is_applied_once_it_is_recorded(
    e2e: Stack, fakes: Fakes
) -> None:
    """The provider's callback can arrive before the worker reported the attempt it is
    about: it waits, and is applied as soon as the attempt is in the trail."""
    user = await e2e.create_user()
    async with e2e.replaced_worker("email"):  # no worker: this test plays it
        nid = await e2e.send(user)
        attempt_id = str(uuid.uuid4())
        early = {
            "email": user.email,
            "timestamp": int(time.time()),
            "event": "delivered",
            "sg_event_id": uuid.uuid4().hex,
            "sg_message_id": "raced-message.filter0001.0",
            "herald_attempt_id": attempt_id,
            "herald_notification_id": nid,
        }
        answer = await fakes.sendgrid.post_events(_edge(e2e, "sendgrid"), [early])
        assert answer.status == 200, answer.text
        assert _counts(answer.text)["waiting"] == 1
        assert (await e2e.notification(nid)).status == common_pb2.NOTIFICATION_STATUS_PENDING

        statuses = e2e.stub(e2e.gateway, status_pb2_grpc.StatusServiceStub)
        await statuses.ReportStatus(
            status_pb2.ReportStatusRequest(
                notification_id=nid,
                attempt=delivery_pb2.DeliveryAttempt(
                    id=attempt_id,
                    channel=EMAIL,
                    provider="sendgrid",
                    outcome=OUTCOME.ATTEMPT_OUTCOME_DELIVERED,
                    provider_message_id="raced-message",
                    attempt=1,
                    generation=1,
                    worker="test",
                ),
                awaits_receipt=True,  # SendGrid was given the attempt's id
            ),
            timeout=10,
        )
        done = await e2e.settled(nid)  # sent, then the waiting receipt delivers it
    assert _receipts(done) == [(EMAIL, "delivered", "delivered")]


async def test_a_bounced_address_is_suppressed_until_an_operator_lifts_it(
    e2e: Stack, fakes: Fakes
) -> None:
    user = await e2e.create_user()
    first = await e2e.send(user)
    await _sent(e2e, first)
    [mail] = fakes.sendgrid.deliveries
    await fakes.sendgrid.send_event(_edge(e2e, "sendgrid"), mail["message_id"], "bounce")
    await eventually(lambda: fakes.twilio.deliveries)

    # The next notification to that address skips email without calling SendGrid.
    second = await e2e.send(user)
    await eventually(lambda: len(fakes.twilio.deliveries) == 2)
    found = await _sent(e2e, second)
    assert len(fakes.sendgrid.requests) == 1
    skipped, by_sms = found.attempts
    assert (skipped.channel, skipped.outcome) == (EMAIL, OUTCOME.ATTEMPT_OUTCOME_SKIPPED)
    assert skipped.provider == "" and "suppressed (bounced" in skipped.error
    assert by_sms.channel == SMS

    # An operator sees the entry and lifts it; email is used again.
    key = await asyncio.to_thread(create_key, e2e.gateway, "e2e-ops", "admin")
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{e2e.gateway.http_port}",
        headers={"Authorization": f"Bearer {key['key']}"},
        timeout=10,
    ) as http:
        listed = await http.get(
            "/api/v1/suppressions/", params={"channel": "email", "contact": user.email.upper()}
        )
        assert listed.status_code == 200, listed.text
        [entry] = listed.json()["items"]
        assert (entry["contact"], entry["reason"], entry["provider"]) == (
            user.email.lower(),
            "bounced",
            "sendgrid",
        )
        assert entry["notification_id"] == first
        lifted = await http.request(
            "DELETE", f"/api/v1/suppressions/{entry['id']}", json={"reason": "mailbox fixed"}
        )
        assert lifted.status_code == 204, lifted.text
        again = await http.get(
            "/api/v1/suppressions/",
            params={"contact": user.email, "channel": "email", "include_removed": "true"},
        )
        [removed] = again.json()["items"]
        assert removed["remove_reason"] == "mailbox fixed"
        assert removed["removed_by"].startswith("apikey:")
    third = await e2e.send(user)
    await _sent(e2e, third)
    assert len(fakes.sendgrid.requests) == 2


async def test_a_complaint_suppresses_without_moving_the_notification(
    e2e: Stack, fakes: Fakes
) -> None:
    user = await e2e.create_user()
    nid = await e2e.send(user)
    await _sent(e2e, nid)
    [mail] = fakes.sendgrid.deliveries
    url = _edge(e2e, "sendgrid")
    await fakes.sendgrid.send_event(url, mail["message_id"], "delivered")
    complained = await fakes.sendgrid.send_event(url, mail["message_id"], "spamreport")
    assert complained.status == 200, complained.text
    done = await e2e.settled(nid)
    assert _receipts(done) == [
        (EMAIL, "delivered", "delivered"),
        (EMAIL, "complained", "recorded"),
    ]
    later = await e2e.send(user)
    await eventually(lambda: fakes.twilio.deliveries)
    found = await _sent(e2e, later)
    assert found.attempts[0].outcome == OUTCOME.ATTEMPT_OUTCOME_SKIPPED
    assert "complained" in found.attempts[0].error


async def test_mailgun_deferred_then_bounced_fails_over_and_a_replayed_token_is_refused(
    e2e: Stack, fakes: Fakes
) -> None:
    user = await e2e.create_user()
    async with e2e.replaced_worker("email", HERALD_EMAIL_PROVIDERS="mailgun"):
        nid = await e2e.send(user)
        await _sent(e2e, nid)
    [mail] = fakes.mailgun.deliveries
    url = _edge(e2e, "mailgun")

    # Mailgun signs its timestamp and token only: the same token again is a replay.
    signature = mailgun_signature_block(fakes.mailgun.signing_key, None)
    json_type = {"Content-Type": "application/json"}
    deferred = fakes.mailgun.event_data(mail, "failed", severity="temporary")
    body = {"signature": signature, "event-data": deferred}
    answer = await post_webhook(url, orjson.dumps(body), json_type)
    assert answer.status == 200, answer.text
    assert (await e2e.notification(nid)).status == SENT  # still trying: moves nothing
    body["event-data"] = fakes.mailgun.event_data(mail, "delivered")
    replayed = await post_webhook(url, orjson.dumps(body), json_type)
    assert replayed.status == 401, replayed.text

    bounced = await fakes.mailgun.send_event(url, mail, "failed", reason="bounce")
    assert bounced.status == 200, bounced.text
    await eventually(lambda: fakes.twilio.deliveries)
    [sms] = fakes.twilio.deliveries
    await _sent(e2e, nid)
    assert (await fakes.twilio.status_callback(sms["sid"], "delivered")).status == 200
    done = await e2e.settled(nid)
    assert done.delivered_channel == SMS
    assert _receipts(done) == [
        (EMAIL, "deferred", "recorded"),
        (EMAIL, "bounced", "failed over to sms"),
        (SMS, "delivered", "delivered"),
    ]
