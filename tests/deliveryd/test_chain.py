"""The provider chain, its circuit breakers, a provider's 429, pacing (Redis down too),
the deadline check and what is critical."""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import UTC, datetime, timedelta

import pytest

from deliveryd.alerts import is_critical
from deliveryd.chain import CLOSED, HALF_OPEN, OPEN, Breakers, Outcome, ProviderChain
from deliveryd.deadline import deadline_passed
from deliveryd.pacing import Pacer
from deliveryd.providers.base import (
    PermanentError,
    Provider,
    Sent,
    SmsMessage,
    Throttled,
    TransientError,
)
from herald.v1 import common_pb2, delivery_pb2
from mesh.ratelimit import SharedLimits
from tests.support.infra import free_port
from tests.support.metrics import sample
from tests.support.waits import eventually

MESSAGE = SmsMessage(to="+5511987654321", text="hi", key="n:1:sms", notification_id="n")
THROTTLE_SECONDS = 0.05


class Scripted(Provider[SmsMessage]):
    """A provider that answers from a script: "ok", "transient", "permanent", "hang" or
    "throttled" (a 429 with Retry-After: THROTTLE_SECONDS)."""

    def __init__(self, name: str, *script: str, timeout: float = 0.2) -> None:
        super().__init__(timeout=timeout)
        self.name = name  # type: ignore[misc]
        self.script = deque(script)
        self.calls = 0

    async def send(self, message: SmsMessage) -> Sent:
        self.calls += 1
        step = self.script.popleft() if self.script else "ok"
        if step == "transient":
            raise TransientError("503 from fake")
        if step == "permanent":
            raise PermanentError("invalid number")
        if step == "hang":
            await asyncio.sleep(10)
        if step == "throttled":
            raise Throttled("429 from fake", retry_after=THROTTLE_SECONDS)
        return Sent(message_id=f"{self.name}-{self.calls}")


def chain(
    *providers: Scripted, threshold: int = 3, cooldown: float = 60
) -> ProviderChain[SmsMessage]:
    return ProviderChain("sms", providers, Breakers(threshold=threshold, cooldown=cooldown))


async def test_transient_failure_fails_over_to_the_next_provider() -> None:
    first, second = Scripted("a", "transient"), Scripted("b")
    result = await chain(first, second).send(MESSAGE)
    assert result.outcome is Outcome.DELIVERED
    assert [t.outcome for t in result.tries] == [Outcome.TRANSIENT, Outcome.DELIVERED]
    assert result.decisive is not None and result.decisive.message_id == "b-1"


async def test_permanent_failure_stops_the_chain() -> None:
    first, second = Scripted("a", "permanent"), Scripted("b")
    result = await chain(first, second).send(MESSAGE)
    assert result.outcome is Outcome.PERMANENT
    assert second.calls == 0
    assert "invalid number" in result.error


async def test_a_provider_that_hangs_times_out_as_transient() -> None:
    result = await chain(Scripted("a", "hang"), Scripted("b")).send(MESSAGE)
    assert result.tries[0].outcome is Outcome.TRANSIENT
    assert "timed out" in result.tries[0].error
    assert result.outcome is Outcome.DELIVERED


async def test_every_provider_failing_is_transient() -> None:
    result = await chain(Scripted("a", "transient"), Scripted("b", "transient")).send(MESSAGE)
    assert result.outcome is Outcome.TRANSIENT
    assert result.error == "a: 503 from fake; b: 503 from fake"


async def test_the_circuit_opens_skips_then_probes_and_closes() -> None:
    changes: list[tuple[str, str]] = []

    async def listener(name: str, state: str) -> None:
        changes.append((name, state))

    breakers = Breakers(threshold=2, cooldown=0.3, listener=listener)
    flaky = Scripted("a", "transient", "transient")
    backup = Scripted("b")
    providers = ProviderChain("sms", [flaky, backup], breakers)
    await providers.start()
    for _ in range(2):
        await providers.send(MESSAGE)
    assert breakers.state("a") == OPEN
    # Open: the provider is not called at all.
    result = await providers.send(MESSAGE)
    assert flaky.calls == 2
    assert result.tries[0].outcome is Outcome.SKIPPED
    assert result.tries[0].error == "circuit open"
    assert result.outcome is Outcome.DELIVERED
    # After the cool-down one probe goes through (until then "b" takes each send); its
    # success closes the circuit.
    results = []

    async def probed() -> bool:
        results.append(await providers.send(MESSAGE))
        return flaky.calls == 3

    await eventually(probed, timeout=10, what="the cool-down to let a probe through", interval=0.02)
    result = results[-1]
    assert result.decisive is not None and result.decisive.provider == "a"
    assert breakers.state("a") == CLOSED
    assert ("a", OPEN) in changes
    assert ("a", HALF_OPEN) in changes
    assert changes[-1] == ("a", CLOSED)


async def test_permanent_failures_do_not_open_the_circuit() -> None:
    breakers = Breakers(threshold=2, cooldown=60)
    provider = Scripted("a", "permanent", "permanent", "permanent")
    providers = ProviderChain("sms", [provider], breakers)
    for _ in range(3):
        await providers.send(MESSAGE)
    assert breakers.state("a") == CLOSED
    assert provider.calls == 3


async def test_a_providers_429_is_waited_out_without_a_failure_or_another_attempt() -> None:
    """Two 429s, then the send: one try, delivered, the waits in it; the breaker (which
    would open at one failure) never counts them, and the throttles are counted."""
    breakers = Breakers(threshold=1, cooldown=60)
    provider = Scripted("busy", "throttled", "throttled")
    throttled_before = sample("herald_provider_throttled_total", provider="busy")
    result = await ProviderChain("sms", [provider], breakers).send(MESSAGE)
    [tried] = result.tries
    assert (tried.outcome, tried.throttled, provider.calls) == (Outcome.DELIVERED, 2, 3)
    assert tried.waited >= 2 * THROTTLE_SECONDS
    assert breakers.state("busy") == CLOSED
    assert sample("herald_provider_throttled_total", provider="busy") == throttled_before + 2
    assert sample("herald_provider_failures_total", provider="busy", kind="transient") == 0


async def test_a_429_outlasting_the_throttle_wait_is_a_transient_failure() -> None:
    breakers = Breakers(threshold=1, cooldown=60)
    provider = Scripted("slow-down", "throttled")
    result = await ProviderChain(
        "sms", [provider], breakers, throttle_wait=THROTTLE_SECONDS / 2
    ).send(MESSAGE)
    assert result.outcome is Outcome.TRANSIENT
    assert result.tries[0].error == "429 from fake"
    assert provider.calls == 1
    assert breakers.state("slow-down") == CLOSED  # still not the provider's failure


async def test_pacing_with_redis_unreachable_falls_back_to_the_workers_own_bucket() -> None:
    """Redis refuses connections: every send still goes (none is lost), counted as
    unpaced by Redis, and the worker paces itself at the provider's rate: 2 a second with
    a burst of 2 lets two through at once and makes the third wait."""
    limits = SharedLimits(f"redis://127.0.0.1:{free_port()}/0", prefix="tests-pacing", timeout=0.5)
    pacer = Pacer(limits, {"paced": "2/s burst 2"})
    provider = Scripted("paced")
    providers = ProviderChain("sms", [provider], Breakers(threshold=3, cooldown=60), pacer=pacer)

    def counted() -> tuple[float, float]:
        return (
            sample("herald_provider_pacing_unavailable_total", provider="paced"),
            sample("herald_provider_paced_total", provider="paced"),
        )

    unavailable, paced = counted()
    burst = [await providers.send(MESSAGE) for _ in range(2)]
    assert [r.outcome for r in burst] == [Outcome.DELIVERED] * 2
    assert counted() == (unavailable + 2, paced)  # within the burst: no wait
    third = await providers.send(MESSAGE)
    assert third.outcome is Outcome.DELIVERED
    now_unavailable, now_paced = counted()
    assert now_paced >= paced + 1 and now_unavailable >= unavailable + 3
    assert third.tries[0].waited > 0
    assert provider.calls == 3


async def test_no_time_left_in_the_lease_skips_providers() -> None:
    provider = Scripted("a")
    result = await chain(provider).send(MESSAGE, deadline=0.0)
    assert provider.calls == 0
    assert result.outcome is Outcome.TRANSIENT
    assert result.tries[0].error == "no time left"


def test_a_job_past_its_deadline_is_too_late_to_send() -> None:
    now = datetime.now(UTC)
    late = job()
    late.deadline.FromDatetime(now - timedelta(seconds=1))
    assert deadline_passed(late, now)
    assert not deadline_passed(job(), now)  # no deadline at all
    soon = job()
    soon.deadline.FromDatetime(now + timedelta(seconds=5))
    assert not deadline_passed(soon, now)


def job(**fields: object) -> delivery_pb2.DeliveryJob:
    base = delivery_pb2.DeliveryJob(
        notification_id="n-1",
        channel=common_pb2.CHANNEL_EMAIL,
        route=[common_pb2.CHANNEL_EMAIL, common_pb2.CHANNEL_SMS],
    )
    for name, value in fields.items():
        setattr(base, name, value)
    return base


@pytest.mark.parametrize(
    ("message_type", "priority", "critical"),
    [
        (common_pb2.MESSAGE_TYPE_ALERT, common_pb2.PRIORITY_LOW, True),
        (common_pb2.MESSAGE_TYPE_TRANSACTIONAL, common_pb2.PRIORITY_HIGH, True),
        (common_pb2.MESSAGE_TYPE_TRANSACTIONAL, common_pb2.PRIORITY_CRITICAL, True),
        (common_pb2.MESSAGE_TYPE_MARKETING, common_pb2.PRIORITY_NORMAL, False),
    ],
)
def test_critical_notifications(message_type: int, priority: int, critical: bool) -> None:
    assert is_critical(job(message_type=message_type, priority=priority)) is critical
