"""The sandbox's receipts end to end, as `make up` runs them: the email and SMS workers'
chains are the sandbox, which posts signed receipts for its reserved contact points to the
gateway's /webhooks/sandbox (the route, verification and ingestion every provider's
receipts take). No fake provider is involved."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator

import httpx
import pytest

from herald.v1 import common_pb2, notification_pb2
from tests.conftest import ServiceFactory
from tests.deliveryd.conftest import Fakes
from tests.deliveryd.e2e_stack import DELIVERED, FAILED, OUTCOME, Stack, open_sandbox_stack
from tests.gateway.http.conftest import create_key
from tests.support.infra import Isolation

EMAIL, SMS = common_pb2.CHANNEL_EMAIL, common_pb2.CHANNEL_SMS
SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()
BOUNCE = "bounce@simulator.herald.example"
COMPLAINT = "complaint@simulator.herald.example"
DELIVERS, UNREACHABLE = "+14155550190", "+14155550191"


@pytest.fixture(scope="module")
async def stack(
    service_factory: ServiceFactory, isolation: Isolation, session_fakes: Fakes
) -> AsyncIterator[Stack]:
    async with open_sandbox_stack(
        service_factory, isolation, session_fakes, name="dlv-sbx", secret=SECRET
    ) as built:
        yield built


def _trail(found: notification_pb2.Notification) -> list[tuple[int, int, str, list[str]]]:
    return [
        (a.channel, a.outcome, a.provider, [f"{r.event}: {r.effect}" for r in a.receipts])
        for a in found.attempts
    ]


async def test_a_bounce_fails_over_to_sms_then_the_address_is_skipped(stack: Stack) -> None:
    user = await stack.create_user(email=BOUNCE, phone=DELIVERS)
    first = await stack.settled(await stack.send(user))
    assert first.delivered_channel == SMS
    assert _trail(first) == [
        (EMAIL, OUTCOME.ATTEMPT_OUTCOME_DELIVERED, "sandbox", ["bounced: failed over to sms"]),
        (SMS, OUTCOME.ATTEMPT_OUTCOME_DELIVERED, "sandbox", ["delivered: delivered"]),
    ]
    [bounce] = first.attempts[0].receipts
    assert bounce.code == "550" and "does not exist" in bounce.reason

    # The address is suppressed: the next notification skips email without a send.
    second = await stack.settled(await stack.send(user))
    [(channel, outcome, provider, receipts), sms] = _trail(second)
    assert (channel, provider, receipts) == (EMAIL, "", [])
    assert outcome != OUTCOME.ATTEMPT_OUTCOME_DELIVERED
    assert "suppressed" in second.attempts[0].error
    assert sms == (SMS, OUTCOME.ATTEMPT_OUTCOME_DELIVERED, "sandbox", ["delivered: delivered"])


async def test_a_complaint_suppresses_the_address(stack: Stack) -> None:
    user = await stack.create_user(email=COMPLAINT)
    found = await stack.settled(await stack.send(user))
    assert found.delivered_channel == EMAIL

    key = await asyncio.to_thread(create_key, stack.gateway, "sandbox-ops", "admin")
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{stack.gateway.http_port}",
        headers={"Authorization": f"Bearer {key['key']}"},
        timeout=10,
    ) as http:

        async def listed() -> list[dict[str, str]]:
            answer = await http.get("/api/v1/suppressions/", params={"contact": COMPLAINT})
            assert answer.status_code == 200, answer.text
            items: list[dict[str, str]] = answer.json()["items"]
            return items

        for _ in range(100):  # the complaint comes after the delivery receipt
            if await listed():
                break
            await asyncio.sleep(0.1)
        [entry] = await listed()
    assert (entry["reason"], entry["provider"]) == ("complained", "sandbox")
    done = await stack.notification(found.id)
    assert done.status == DELIVERED  # a complaint after delivery changes no status
    assert [r.event for r in done.attempts[0].receipts] == ["delivered", "complained"]


async def test_an_undelivered_sms_with_no_channel_left_fails(stack: Stack) -> None:
    user = await stack.create_user(phone=UNREACHABLE)
    # Marketing (no fallback channel), its default quiet hours bypassed (at night they
    # would hold it).
    nid = await stack.send(
        user,
        channel=SMS,
        message_type=common_pb2.MESSAGE_TYPE_MARKETING,
        quiet_hours=notification_pb2.QUIET_HOURS_POLICY_BYPASS,
    )
    done = await stack.settled(nid, status=FAILED)
    assert "30003" in done.status_reason
    assert _trail(done) == [
        (SMS, OUTCOME.ATTEMPT_OUTCOME_DELIVERED, "sandbox", ["undelivered: failed"]),
    ]


async def test_any_other_address_is_delivered_without_receipts(stack: Stack) -> None:
    user = await stack.create_user()  # ada.…@example.com
    done = await stack.settled(await stack.send(user))
    assert _trail(done) == [(EMAIL, OUTCOME.ATTEMPT_OUTCOME_DELIVERED, "sandbox", [])]
