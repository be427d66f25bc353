"""What happened to a scenario's notifications, read from the gateway's database.

Only measurement reads it: every notification a scenario sends carries a request_id that
starts with the scenario's prefix, so one query answers how many were delivered and how
long each took. End-to-end latency is `deliver_time - create_time`: from the row's insert
(the moment Send made the notification durable, i.e. accepted it) to the delivery time
deliveryd reported (when the provider took the message); `recorded` is to when the
gateway wrote that outcome (`update_time`), i.e. when a client could see it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

QUANTILES = (0.5, 0.95, 0.99)


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50, p95, p99 (nearest rank) and max of `values`; None when there are none."""
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(values)
    last = len(ordered) - 1
    row: dict[str, float | None] = {
        f"p{round(q * 100)}": round(ordered[min(last, int(q * len(ordered)))], 2) for q in QUANTILES
    }
    row["max"] = round(ordered[-1], 2)
    return row


@dataclass
class Outcomes:
    """The statuses and timings of one scenario's notifications."""

    total: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    first_create: float | None = None  # epoch seconds
    first_deliver: float | None = None
    last_deliver: float | None = None
    e2e_ms: dict[str, float | None] = field(default_factory=lambda: percentiles([]))
    recorded_ms: dict[str, float | None] = field(default_factory=lambda: percentiles([]))
    providers: dict[str, int] = field(default_factory=dict)

    @property
    def delivered(self) -> int:
        return self.by_status.get("delivered", 0)

    @property
    def failed(self) -> int:
        return self.by_status.get("failed", 0)

    @property
    def pending(self) -> int:
        return self.by_status.get("pending", 0)


_COUNTS = """
SELECT status, count(*) FROM notifications WHERE starts_with(request_id, %s) GROUP BY status
"""

_TIMINGS = """
SELECT
  extract(epoch FROM min(create_time)),
  extract(epoch FROM min(deliver_time)),
  extract(epoch FROM max(deliver_time)),
  percentile_disc(ARRAY[0.5, 0.95, 0.99, 1.0]) WITHIN GROUP (ORDER BY e2e),
  percentile_disc(ARRAY[0.5, 0.95, 0.99, 1.0]) WITHIN GROUP (ORDER BY recorded)
FROM (
  SELECT create_time, deliver_time,
         extract(epoch FROM deliver_time - create_time) * 1000 AS e2e,
         extract(epoch FROM update_time - create_time) * 1000 AS recorded
  FROM notifications
  WHERE starts_with(request_id, %s) AND status = 'delivered'
) AS delivered
"""

_PROVIDERS = """
SELECT delivered_provider, count(*) FROM notifications
WHERE starts_with(request_id, %s) AND status = 'delivered' GROUP BY delivered_provider
"""


class Ledger:
    """Reads a scenario's outcomes; one connection for the whole run."""

    def __init__(self, dsn: str) -> None:
        self._conn = psycopg.connect(dsn, autocommit=True)

    def close(self) -> None:
        self._conn.close()

    def counts(self, prefix: str) -> dict[str, int]:
        rows = self._conn.execute(_COUNTS, (prefix,)).fetchall()
        return {str(status): int(count) for status, count in rows}

    def wait_settled(
        self, prefix: str, expected: int, timeout: float, interval: float = 0.5
    ) -> dict[str, int]:
        """Polls until `expected` notifications are no longer pending, or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while True:
            counts = self.counts(prefix)
            settled = sum(n for status, n in counts.items() if status != "pending")
            if settled >= expected or time.monotonic() > deadline:
                return counts
            time.sleep(interval)

    def outcomes(self, prefix: str) -> Outcomes:
        counts = self.counts(prefix)
        row = self._conn.execute(_TIMINGS, (prefix,)).fetchone()
        providers = self._conn.execute(_PROVIDERS, (prefix,)).fetchall()
        result = Outcomes(total=sum(counts.values()), by_status=counts)
        result.providers = {str(name): int(count) for name, count in providers}
        if row is None or row[0] is None:
            return result
        result.first_create = float(row[0])
        if row[1] is not None:
            result.first_deliver, result.last_deliver = float(row[1]), float(row[2])
            result.e2e_ms = _quantiles(row[3])
            result.recorded_ms = _quantiles(row[4])
        return result

    def delivered_between(self, prefix: str, start: float, end: float) -> int:
        """How many of the scenario's notifications were delivered in [start, end] (epoch s)."""
        row = self._conn.execute(
            "SELECT count(*) FROM notifications WHERE starts_with(request_id, %s) "
            "AND status = 'delivered' "
            "AND deliver_time BETWEEN to_timestamp(%s) AND to_timestamp(%s)",
            (prefix, start, end),
        ).fetchone()
        return int(row[0]) if row else 0

    def unpublished(self, prefix: str) -> int:
        """How many of the scenario's hops still wait for the outbox."""
        row = self._conn.execute(
            "SELECT count(*) FROM notifications WHERE starts_with(request_id, %s) "
            "AND publish_pending",
            (prefix,),
        ).fetchone()
        return int(row[0]) if row else 0


def _quantiles(values: Any) -> dict[str, float | None]:
    if not values:
        return percentiles([])
    p50, p95, p99, top = (round(float(v), 2) for v in values)
    return {"p50": p50, "p95": p95, "p99": p99, "max": top}
