"""Provider pacing: each provider's send rate, shared by every worker through Redis.

A provider with a configured rate (`HERALD_PROVIDER_RATES`, e.g. Twilio's per-number
rate, SendGrid's plan limit) is sent to only when a token of its GCRA bucket in Redis is
free: a worker that finds none sleeps until one is (throttled-py answers how long), so
however many workers run, the provider sees at most its rate (plus the burst).

When Redis does not answer, pacing fails open to a bucket of this process's own (the
same rate per worker): sends go on, each worker still paced, and a provider that then
answers 429 is waited out through its Retry-After (`chain.ProviderChain`). Stopping
every send for want of a shared counter would turn a cache outage into a delivery
outage, and nothing is lost by sending a little faster for a while.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import structlog
from throttled.asyncio import MemoryStore, RateLimiterType, Throttled

from deliveryd import metrics
from mesh.ratelimit import LimitsUnavailable, SharedLimits

log = structlog.get_logger(__name__)


class Pacer:
    """Waits for a free send slot of each paced provider."""

    def __init__(self, limits: SharedLimits, rates: Mapping[str, str]) -> None:
        self._limits = limits
        self._rates = dict(rates)
        self._local = {
            name: Throttled(using=RateLimiterType.GCRA.value, quota=quota, store=MemoryStore())
            for name, quota in self._rates.items()
        }

    def paces(self, provider: str) -> bool:
        return provider in self._rates

    async def wait(self, provider: str, *, deadline: float | None = None) -> float:
        """Waits until `provider` may be sent one message; answers the seconds waited.
        Gives up (answers at once) when the wait would pass `deadline` (monotonic)."""
        quota = self._rates.get(provider)
        if quota is None:
            return 0.0
        began = time.monotonic()
        while True:
            try:
                verdict = await self._limits.take(f"provider:{provider}", quota=quota)
                limited, retry_after = verdict.limited, verdict.retry_after
            except LimitsUnavailable:
                metrics.PACING_UNAVAILABLE.labels(provider).inc()
                result = await self._local[provider].limit(provider)
                limited, retry_after = result.limited, result.state.retry_after
            if not limited:
                return time.monotonic() - began
            if deadline is not None and time.monotonic() + retry_after > deadline:
                return time.monotonic() - began
            metrics.PACED.labels(provider).inc()
            await asyncio.sleep(retry_after)
