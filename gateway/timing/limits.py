"""The accept path's rate limits: each API key's send rate, and each user's frequency caps.

A key's rate is a token bucket (GCRA) in Redis, shared by every gateway: `rate` sends a
second, `burst` at once. A send over it is refused before anything is read or stored:
RESOURCE_EXHAUSTED with the time to wait (REST: 429 with Retry-After). A SendBatch takes
one token per item, all or none. Internal services (no API key) are not limited.

A frequency cap bounds how many notifications of one message type a user is sent per
fixed window (`{"marketing": "3/day"}`); one over it is stored `suppressed`, its reason
naming the cap. Caps count accepted notifications, scheduled ones included.

When Redis does not answer both fail open: a send goes through uncounted (and
`herald_rate_limit_unavailable_total` counts it). A key's rate protects Herald's capacity,
which a short Redis outage does not change, and refusing every send for it would turn a
cache outage into a delivery outage; a cap is a courtesy to the user, and suppressing a
notification on no evidence would lose it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from prometheus_client import Counter

from mesh.errors import ResourceExhausted
from mesh.ratelimit import LimitsUnavailable, SharedLimits

log = structlog.get_logger(__name__)

THROTTLED = Counter(
    "herald_throttled_total",
    "Sends a limit refused or stopped, by limit: client (an API key's rate, 429) or "
    "frequency_cap (a user's cap for a message type: suppressed).",
    ["limit"],
)
UNAVAILABLE = Counter(
    "herald_rate_limit_unavailable_total",
    "Limit checks Redis did not answer (the send went through uncounted), by limit.",
    ["limit"],
)


class ClientThrottled(ResourceExhausted):
    """An API key over its send rate."""


class ClientLimits:
    """Each API key's send rate, in Redis."""

    def __init__(self, limits: SharedLimits, *, default: tuple[int, int]) -> None:
        self._limits = limits
        self._default = default

    async def take(self, *, key: str, rate: tuple[int, int] | None, cost: int = 1) -> None:
        """Takes `cost` sends of `key`'s rate (None: the default); raises ClientThrottled
        when they would exceed it. No key, or a rate of 0: unlimited."""
        per_second, burst = rate or self._default
        if not key or per_second <= 0:
            return
        try:
            verdict = await self._limits.take(
                f"client:{key}", quota=f"{per_second}/s burst {max(burst, 1)}", cost=cost
            )
        except LimitsUnavailable as exc:
            UNAVAILABLE.labels("client").inc()
            log.warning("client rate not checked: redis unavailable", error=str(exc))
            return
        if verdict.limited:
            THROTTLED.labels("client").inc(cost)
            raise ClientThrottled(
                f"this API key may send {per_second} notifications a second (burst {burst}); "
                f"retry after {verdict.retry_after:.3f}s",
                retry_after=verdict.retry_after,
            )


class FrequencyCaps:
    """At most N notifications of a message type per user per window, in Redis."""

    def __init__(self, limits: SharedLimits, caps: Mapping[Any, str]) -> None:
        self._limits = limits
        self._caps: dict[str, str] = dict(caps)

    def applies(self, message_type: str) -> bool:
        return message_type in self._caps

    async def over(self, *, user_id: str, message_type: str) -> str | None:
        """Counts one notification of `message_type` for the user; the cap it exceeds
        (e.g. "3/day"), or None when it is within every cap (or none applies)."""
        cap = self._caps.get(message_type)
        if cap is None:
            return None
        try:
            verdict = await self._limits.take(
                f"cap:{message_type}:{user_id}", quota=cap, algorithm="fixed_window"
            )
        except LimitsUnavailable as exc:
            UNAVAILABLE.labels("frequency_cap").inc()
            log.warning("frequency cap not checked: redis unavailable", error=str(exc))
            return None
        if verdict.limited:
            THROTTLED.labels("frequency_cap").inc()
            return cap
        return None
