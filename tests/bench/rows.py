"""A bench row made by hand, for the report's tests that need no stack."""

from __future__ import annotations

from typing import Any

from bench.measure import percentiles
from bench.model import Row


def row(name: str, rate: float, p50: float, notes: dict[str, Any] | None = None) -> Row:
    latency = percentiles([p50])
    return Row(
        scenario=name,
        kind="rest",
        method="open loop",
        offered_rate=rate,
        concurrency=512,
        duration_s=10,
        batch_size=1,
        requests=1,
        ok=1,
        late=0,
        accepted=1,
        achieved_rate=rate,
        accepted_per_s=rate,
        delivered=1,
        failed=0,
        pending=0,
        delivered_per_s=rate,
        delivered_per_s_in_load=rate,
        accept_latency_ms=latency,
        e2e_latency_ms=latency,
        e2e_recorded_latency_ms=latency,
        errors={},
        error_count=0,
        resources={},
        cpu_ms_per_notification=1.0,
        notes=notes or {},
    )
