"""Web Push goes only where `mesh.outbound` allows, judged on what names resolve to.

The real provider (pywebpush over aiohttp) against the fake push service on 127.0.0.1: a
refused endpoint is the target's fault (permanent, not counted by the circuit breaker),
and the fake never hears of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from deliveryd.chain import CLOSED, Breakers, Outcome, ProviderChain
from deliveryd.providers.base import PermanentError, Platform, PushDevice, PushMessage
from deliveryd.providers.push.webpush import WebPushProvider
from mesh.outbound import OutboundRefused, OutboundRule
from mesh.public_http import PublicResolver
from tests.deliveryd.conftest import Fakes

TIMEOUT = 2.0
STRICT = OutboundRule()
LOOPBACK = OutboundRule(allow_loopback=True)

Provide = Callable[[OutboundRule], WebPushProvider]


@pytest.fixture
async def provider(fakes: Fakes) -> AsyncIterator[Provide]:
    """Web Push providers under a given rule, closed after the test."""
    made: list[WebPushProvider] = []

    def make(rule: OutboundRule) -> WebPushProvider:
        made.append(
            WebPushProvider(
                vapid_private_key=fakes.vapid_private_key,
                subject="mailto:ops@herald.test",
                ttl=60,
                timeout=TIMEOUT,
                outbound=rule,
            )
        )
        return made[-1]

    yield make
    for each in made:
        await each.close()


def message(fakes: Fakes, endpoint: str = "") -> PushMessage:
    """A push to a fresh subscription of the fake, at `endpoint` ({port} and {id} filled)."""
    subscription = fakes.webpush.subscribe()
    url = endpoint.format(port=fakes.webpush.port, id=subscription.id)
    device = PushDevice(
        id="t-1",
        platform=Platform.WEBPUSH,
        endpoint=url or subscription.endpoint,
        p256dh=subscription.p256dh,
        auth=subscription.auth,
    )
    return PushMessage(device=device, title="Hi", body="There", key="n:1:push", notification_id="n")


async def test_a_name_resolving_to_loopback_is_refused_and_never_contacted(
    fakes: Fakes, provider: Provide
) -> None:
    # `localhost` passes the URL check (names are the resolver's); its addresses do not.
    with pytest.raises(PermanentError, match=r"resolves to no public address.*127\.0\.0\.1"):
        await provider(STRICT).send(message(fakes, "https://localhost:{port}/push/{id}"))
    assert fakes.webpush.requests == []


async def test_a_name_resolving_to_loopback_is_delivered_when_loopback_is_allowed(
    fakes: Fakes, provider: Provide
) -> None:
    await provider(LOOPBACK).send(message(fakes, "http://localhost:{port}/push/{id}"))
    [delivery] = fakes.webpush.deliveries
    assert delivery["payload"]["title"] == "Hi"


@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [
        ("http://127.0.0.1:{port}/push/{id}", "loopback"),
        ("https://[::ffff:127.0.0.1]:{port}/push/{id}", "loopback"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://10.0.0.1/push/{id}", "private"),
        ("http://push.example.net/push/{id}", "must be an https URL"),
        ("https://]", "not a valid URL"),
    ],
)
async def test_address_literals_and_bad_urls_are_refused_before_any_connection(
    fakes: Fakes, provider: Provide, endpoint: str, reason: str
) -> None:
    with pytest.raises(PermanentError, match=f"webpush endpoint refused: .*{reason}"):
        await provider(STRICT).send(message(fakes, endpoint))
    assert fakes.webpush.requests == []


async def test_a_redirect_to_a_private_address_is_not_followed(
    fakes: Fakes, provider: Provide
) -> None:
    fakes.webpush.fail_next(status=307, body="", headers={"Location": "https://10.0.0.1/push/x"})
    with pytest.raises(PermanentError, match="private address"):
        await provider(LOOPBACK).send(message(fakes))
    assert len(fakes.webpush.requests) == 1  # the first, answered with the redirect


async def test_a_refused_endpoint_never_opens_the_circuit(fakes: Fakes, provider: Provide) -> None:
    breakers = Breakers(threshold=1, cooldown=60)
    chain = ProviderChain("push", [provider(STRICT)], breakers)
    await chain.start()
    for _ in range(3):
        result = await chain.send(message(fakes, "https://localhost:{port}/push/{id}"))
        assert result.outcome is Outcome.PERMANENT
        assert "webpush endpoint refused" in result.error
    assert breakers.state("webpush") == CLOSED
    # The provider still delivers to an endpoint the rule allows.
    allowed = ProviderChain("push", [provider(LOOPBACK)], breakers)
    assert (await allowed.send(message(fakes))).outcome is Outcome.DELIVERED


async def test_the_resolver_keeps_only_the_addresses_the_rule_allows() -> None:
    strict = PublicResolver(STRICT)
    with pytest.raises(OutboundRefused, match="no public address"):
        await strict.resolve("localhost", 443)
    await strict.close()
    allowing = PublicResolver(LOOPBACK)
    found = await allowing.resolve("localhost", 443)
    await allowing.close()
    assert found
    assert {result["host"] for result in found} <= {"127.0.0.1", "::1"}
