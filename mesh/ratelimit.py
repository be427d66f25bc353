"""Rate limits shared by every process through Redis, from `throttled-py` (its GCRA and
fixed-window Lua scripts run atomically in Redis on Redis's own clock, so every gateway
or worker draws from the same bucket).

`SharedLimits.take` answers whether `cost` units may pass now and, when not, how long to
wait; it raises `LimitsUnavailable` when Redis does not answer in time. After a failure
it does not ask Redis again for `backoff` seconds (each caller then decides at once what
an unreachable Redis means for its limit: see docs/scheduling.md), so a Redis outage
costs the hot path no timeouts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from throttled import rate_limiter
from throttled.asyncio import RateLimiterType, RedisStore, Throttled

Algorithm = Literal["gcra", "fixed_window"]
_ALGORITHMS: dict[Algorithm, str] = {
    "gcra": RateLimiterType.GCRA.value,
    "fixed_window": RateLimiterType.FIXED_WINDOW.value,
}


class LimitsUnavailable(Exception):
    """Redis did not answer: the limit cannot be decided."""


def check_quota(text: str) -> str:
    """A quota as throttled-py reads it ('100/s burst 200', '3/day'); ValueError when not."""
    try:
        [quota] = rate_limiter.quota_parser.parse(text)
    except Exception as exc:  # the parser's DataError, or more than one rate
        raise ValueError(f"{text!r} is not a quota like '100/s burst 200' or '3/day'") from exc
    if quota.get_limit() < 1:
        raise ValueError(f"{text!r}: the limit must be at least 1")
    return text


@dataclass(frozen=True)
class Verdict:
    limited: bool
    # Seconds until `cost` units would pass (0 when not limited).
    retry_after: float


class SharedLimits:
    """Limits kept in Redis under `prefix`; one throttled-py limiter per quota."""

    def __init__(self, url: str, *, prefix: str, timeout: float, backoff: float = 1.0) -> None:
        self._store = RedisStore(
            server=url,
            options={"SOCKET_TIMEOUT": timeout, "SOCKET_CONNECT_TIMEOUT": timeout},
        )
        self._prefix = prefix.strip(":") or "herald"
        self._backoff = backoff
        self._down_until = 0.0
        self._limiters: dict[tuple[Algorithm, str], Throttled] = {}

    def _limiter(self, algorithm: Algorithm, quota: str) -> Throttled:
        limiter = self._limiters.get((algorithm, quota))
        if limiter is None:
            limiter = Throttled(
                using=_ALGORITHMS[algorithm],
                quota=quota,
                store=self._store,
                key_prefix=f"{self._prefix}:limits",
            )
            self._limiters[(algorithm, quota)] = limiter
        return limiter

    async def take(
        self, key: str, *, quota: str, cost: int = 1, algorithm: Algorithm = "gcra"
    ) -> Verdict:
        """Takes `cost` units of `key`'s `quota`, or says how long until they would pass."""
        if time.monotonic() < self._down_until:
            raise LimitsUnavailable("redis did not answer a moment ago")
        try:
            result = await self._limiter(algorithm, quota).limit(key, cost=cost)
        except Exception as exc:  # redis-py's connection and timeout errors, whatever they are
            self._down_until = time.monotonic() + self._backoff
            raise LimitsUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if not result.limited:
            return Verdict(False, 0.0)
        retry_after = result.state.retry_after or result.state.reset_after
        return Verdict(True, max(float(retry_after), 0.001))
