"""Providers at a glance: sends, failures and latency over the last 5 and 60 minutes (from
the delivery trail), their last errors, and their circuit breakers (`circuits`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from psycopg_pool import AsyncConnectionPool

from gateway.apikeys.scopes import Principal, Scope
from gateway.providers.circuits import Circuit, CircuitReader, WorkerView
from gateway.store import attempts
from gateway.store.attempts import Failure
from gateway.store.db import transaction

# The two windows, each cut into this many buckets for its chart.
WINDOWS = {"5 min": (timedelta(minutes=5), 10), "60 min": (timedelta(minutes=60), 30)}
LAST_ERRORS = 5


@dataclass(frozen=True)
class Series:
    """One window of one provider: totals and a value per bucket, oldest first."""

    window: str
    sends: int
    failures: int
    mean_ms: float
    p95_ms: float
    sends_per_bucket: tuple[int, ...]
    failures_per_bucket: tuple[int, ...]
    p95_per_bucket: tuple[float, ...]


@dataclass(frozen=True)
class ProviderView:
    name: str
    series: tuple[Series, ...]
    circuits: tuple[Circuit, ...]
    errors: tuple[Failure, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Overview:
    providers: tuple[ProviderView, ...]
    workers: tuple[WorkerView, ...]


class ProviderStats:
    """The Providers view over the trail and the workers' metrics (operator:read)."""

    def __init__(self, *, pool: AsyncConnectionPool, circuits: CircuitReader) -> None:
        self._pool = pool
        self._circuits = circuits

    async def overview(self, *, principal: Principal, now: datetime | None = None) -> Overview:
        """Every provider seen in the last hour or known to a worker's breakers."""
        principal.require(Scope.OPERATOR_READ)
        now = now or datetime.now(UTC)
        read: dict[str, list[attempts.Bucket]] = {}
        async with transaction(self._pool) as conn:
            for window, (span, count) in WINDOWS.items():
                seconds = int(span.total_seconds()) // count
                since = _floor(now - span, seconds)
                read[window] = await attempts.buckets(conn, since=since, seconds=seconds)
            errors = await attempts.last_errors(conn, since=now - timedelta(hours=1), limit=200)
        workers = await self._circuits.read()
        names = {b.provider for rows in read.values() for b in rows}
        names |= {c.provider for w in workers for c in w.circuits}
        views = []
        for name in sorted(names):
            series = tuple(
                _series(window, [b for b in read[window] if b.provider == name], now, span, count)
                for window, (span, count) in WINDOWS.items()
            )
            views.append(
                ProviderView(
                    name=name,
                    series=series,
                    circuits=tuple(c for w in workers for c in w.circuits if c.provider == name),
                    errors=tuple(e for e in errors if e.provider == name)[:LAST_ERRORS],
                )
            )
        return Overview(tuple(views), tuple(workers))


def _floor(moment: datetime, seconds: int) -> datetime:
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    return epoch + timedelta(seconds=(moment - epoch).total_seconds() // seconds * seconds)


def _series(
    window: str, rows: list[attempts.Bucket], now: datetime, span: timedelta, count: int
) -> Series:
    seconds = int(span.total_seconds()) // count
    first = _floor(now - span, seconds)
    slots: dict[int, attempts.Bucket] = {}
    whole = attempts.Bucket("", None, 0, 0, 0.0, 0.0)
    for row in rows:
        if row.start is None:
            whole = row
        else:
            slots[int((row.start - first).total_seconds()) // seconds] = row
    last = int((now - first).total_seconds()) // seconds
    sends = [slots[i].sends if i in slots else 0 for i in range(last + 1)]
    failures = [slots[i].failures if i in slots else 0 for i in range(last + 1)]
    p95 = [slots[i].p95_ms if i in slots else 0.0 for i in range(last + 1)]
    return Series(
        window=window,
        sends=whole.sends,
        failures=whole.failures,
        mean_ms=whole.mean_ms,
        p95_ms=whole.p95_ms,
        sends_per_bucket=tuple(sends),
        failures_per_bucket=tuple(failures),
        p95_per_bucket=tuple(p95),
    )
