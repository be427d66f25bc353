"""A channel's ordered provider chain, each provider behind its own circuit breaker.

The chain tries its providers in order until one accepts the message. A transient
failure moves on to the next provider; a permanent one stops the chain (the message is
at fault, not the provider). A provider whose circuit is open is skipped at once, without
waiting on it; after the cool-down the breaker lets traffic probe it again (half-open) and
closes on the first success.

Breakers come from `purgatory` (asyncio, in memory, per process): only transient failures
count against them; a permanent failure proves the provider is up.

Pacing (`deliveryd.pacing`): a provider with a shared rate is sent to only when a slot is
free. A provider's own 429 (`Throttled`) is neither a failure of the provider (the
breaker does not count it) nor of the attempt: the chain waits its Retry-After and sends
again, as long as the hop's time allows (at most `throttle_wait` seconds in all); only
then is it a transient failure like any other.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import structlog
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from deliveryd import metrics
from deliveryd.pacing import Pacer
from deliveryd.providers.base import (
    M,
    PermanentError,
    Provider,
    Sent,
    TargetGone,
    Throttled,
    TransientError,
)
from mesh import tracing

log = structlog.get_logger(__name__)
T = TypeVar("T")

# purgatory's state names, and what the gauge says for each.
CLOSED, HALF_OPEN, OPEN = "closed", "half-opened", "opened"
STATE_VALUES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}
StateListener = Callable[[str, str], Awaitable[None]]


class CircuitOpen(Exception):
    """The provider's circuit is open: it is not called."""


class Breakers:
    """One circuit breaker per provider name; reports every state change to a listener."""

    def __init__(
        self, *, threshold: int, cooldown: float, listener: StateListener | None = None
    ) -> None:
        self._factory = AsyncCircuitBreakerFactory(
            default_threshold=threshold,
            default_ttl=cooldown,
            exclude=[PermanentError, Throttled, asyncio.CancelledError],
        )
        self._listener = listener
        self._states: dict[str, str] = {}

    def state(self, name: str) -> str:
        """The state as of the breaker's last use (`closed` before any)."""
        return self._states.get(name, CLOSED)

    async def register(self, name: str) -> None:
        """Creates the breaker and publishes its (closed) state."""
        breaker = await self._factory.get_breaker(name)
        await self._publish(name, breaker.context.state, force=True)

    async def call(self, name: str, call: Callable[[], Awaitable[T]]) -> T:
        """Runs `call` through `name`'s breaker; raises `CircuitOpen` instead when open."""
        breaker = await self._factory.get_breaker(name)
        try:
            async with breaker:
                # A probe after the cool-down shows as half-open while it runs.
                await self._publish(name, breaker.context.state)
                return await call()
        except OpenedState:
            raise CircuitOpen(name) from None
        finally:
            await self._publish(name, breaker.context.state)

    async def _publish(self, name: str, state: str, *, force: bool = False) -> None:
        if not force and self._states.get(name) == state:
            return
        previous = self._states.get(name)
        self._states[name] = state
        metrics.CIRCUIT_STATE.labels(provider=name).set(STATE_VALUES.get(state, 2))
        if previous is not None:
            log.warning("circuit changed", provider=name, state=state, previous=previous)
        if self._listener is not None:
            await self._listener(name, state)


class Outcome(enum.StrEnum):
    DELIVERED = "delivered"
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Try:
    """One provider's part in a send."""

    provider: str
    outcome: Outcome
    start: datetime
    duration: float
    message_id: str = ""
    error: str = ""
    detail: str = ""
    gone: bool = False
    awaits_receipt: bool = False
    # The provider's 429s waited out, and the seconds spent waiting (its Retry-After and
    # the shared pacing).
    throttled: int = 0
    waited: float = 0.0

    def summary(self) -> dict[str, Any]:
        """The try as the trail's detail shows it."""
        row: dict[str, Any] = {
            "provider": self.provider,
            "outcome": self.outcome.value,
            "ms": round(self.duration * 1000, 1),
        }
        if self.message_id:
            row["message_id"] = self.message_id
        if self.error:
            row["error"] = self.error
        if self.throttled:
            row["throttled"] = self.throttled
        if self.waited >= 0.001:
            row["waited_s"] = round(self.waited, 3)
        return row


@dataclass(frozen=True)
class ChainResult:
    """Every try of one send, in order."""

    tries: tuple[Try, ...] = field(default_factory=tuple)

    @property
    def outcome(self) -> Outcome:
        outcomes = {t.outcome for t in self.tries}
        if Outcome.DELIVERED in outcomes:
            return Outcome.DELIVERED
        if Outcome.PERMANENT in outcomes:
            return Outcome.PERMANENT
        # Nothing tried at all means no provider can carry this message.
        return Outcome.TRANSIENT if self.tries else Outcome.SKIPPED

    @property
    def decisive(self) -> Try | None:
        """The try that settled the send: the delivery, else the last provider reached."""
        reached = [t for t in self.tries if t.outcome is not Outcome.SKIPPED] or self.tries
        return reached[-1] if reached else None

    @property
    def error(self) -> str:
        return "; ".join(f"{t.provider}: {t.error}" for t in self.tries if t.error)


class ProviderChain(Generic[M]):
    """The ordered providers of one channel."""

    def __init__(
        self,
        channel: str,
        providers: Sequence[Provider[M]],
        breakers: Breakers,
        *,
        pacer: Pacer | None = None,
        throttle_wait: float = 30.0,
    ) -> None:
        self.channel = channel
        self.providers = tuple(providers)
        self._breakers = breakers
        self._pacer = pacer
        self._throttle_wait = throttle_wait

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.providers)

    def accepts(self, message: M) -> bool:
        """Whether any provider of the chain can carry `message`."""
        return any(p.accepts(message) for p in self.providers)

    async def start(self) -> None:
        for provider in self.providers:
            await self._breakers.register(provider.name)

    async def close(self) -> None:
        for provider in self.providers:
            await provider.close()

    async def send(self, message: M, *, deadline: float | None = None) -> ChainResult:
        """Tries each provider that accepts `message` until one takes it.

        `deadline` (a `time.monotonic()` instant) stops the chain before a provider it
        could not wait for: the hop's lease must not run out mid-send.
        """
        tries: list[Try] = []
        for provider in self.providers:
            if not provider.accepts(message):
                continue
            if deadline is not None and time.monotonic() + provider.timeout > deadline:
                tries.append(
                    Try(
                        provider.name, Outcome.SKIPPED, datetime.now(UTC), 0.0, error="no time left"
                    )
                )
                continue
            attempt = await self._try(provider, message, deadline)
            tries.append(attempt)
            if attempt.outcome in (Outcome.DELIVERED, Outcome.PERMANENT):
                break
        return ChainResult(tuple(tries))

    async def _try(self, provider: Provider[M], message: M, deadline: float | None) -> Try:
        start = datetime.now(UTC)
        began = time.monotonic()
        outcome, sent, error, gone = Outcome.TRANSIENT, None, "", False
        throttled, waited = 0, 0.0
        # Waits (pacing, a 429's Retry-After) may last until then, leaving the send its time.
        wait_until = began + self._throttle_wait
        if deadline is not None:
            wait_until = min(wait_until, deadline - provider.timeout)
        try:
            while True:
                if self._pacer is not None:
                    waited += await self._pacer.wait(provider.name, deadline=wait_until)
                try:
                    sent = await self._breakers.call(
                        provider.name, lambda: _bounded(provider, message)
                    )
                    break
                except Throttled as exc:
                    if time.monotonic() + exc.retry_after > wait_until:
                        raise
                    throttled += 1
                    metrics.THROTTLED.labels(provider.name).inc()
                    log.info(
                        "provider throttled",
                        provider=provider.name,
                        retry_after=round(exc.retry_after, 3),
                    )
                    await asyncio.sleep(exc.retry_after)
                    waited += exc.retry_after
            outcome = Outcome.DELIVERED
        except CircuitOpen:
            outcome, error = Outcome.SKIPPED, "circuit open"
        except TargetGone as exc:
            outcome, error, gone = Outcome.PERMANENT, exc.message, True
        except PermanentError as exc:
            outcome, error = Outcome.PERMANENT, exc.message
        except TransientError as exc:
            error = exc.message
        duration = time.monotonic() - began - waited
        metrics.ATTEMPTS.labels(self.channel, provider.name, outcome.value).inc()
        if outcome is not Outcome.SKIPPED:
            metrics.SEND_SECONDS.labels(provider.name).observe(duration)
        if outcome in (Outcome.TRANSIENT, Outcome.PERMANENT):
            kind = "gone" if gone else outcome.value
            metrics.FAILURES.labels(provider.name, kind).inc()
        return Try(
            provider=provider.name,
            outcome=outcome,
            start=start,
            duration=duration,
            message_id=sent.message_id if sent else "",
            error=error,
            detail=sent.detail if sent else "",
            gone=gone,
            awaits_receipt=sent.awaits_receipt if sent else False,
            throttled=throttled,
            waited=waited,
        )


async def _bounded(provider: Provider[M], message: M) -> Sent:
    """One send under the provider's timeout; anything unclassified counts as transient."""
    try:
        # A little over the provider's own timeout, so that its own error usually wins.
        async with asyncio.timeout(provider.timeout + 0.5):
            with tracing.span(f"send {provider.name}", kind=tracing.CLIENT):
                return await provider.send(message)
    except (TransientError, PermanentError):
        raise
    except TimeoutError:
        raise TransientError(f"{provider.name} timed out after {provider.timeout}s") from None
    except Exception as exc:
        log.exception("provider raised an unclassified error", provider=provider.name)
        raise TransientError(
            f"{provider.name} failed: {exc.__class__.__name__}: {exc}"[:300]
        ) from exc
