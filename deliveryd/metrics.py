"""deliveryd's Prometheus metrics: jobs, attempts per provider, circuit state."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

JOBS = Counter(
    "herald_delivery_jobs_total",
    "Delivery jobs taken off a queue, by channel and what became of them.",
    ["channel", "result"],
)
ATTEMPTS = Counter(
    "herald_provider_attempts_total",
    "Sends tried through a provider, by outcome (delivered, transient, permanent, skipped).",
    ["channel", "provider", "outcome"],
)
FAILURES = Counter(
    "herald_provider_failures_total",
    "Failed sends per provider, by kind (transient, permanent, gone).",
    ["provider", "kind"],
)
SEND_SECONDS = Histogram(
    "herald_provider_send_seconds",
    "How long a provider took to answer a send.",
    ["provider"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
CIRCUIT_STATE = Gauge(
    "herald_circuit_state",
    "Circuit breaker state per provider: 0 closed, 1 half-open, 2 open.",
    ["provider"],
)
ALERTS = Counter(
    "herald_admin_alerts_total",
    "Admin alerts for critical notifications that failed, by route and result.",
    ["route", "result"],
)
PACED = Counter(
    "herald_provider_paced_total",
    "Times a send waited for its provider's shared rate (HERALD_PROVIDER_RATES).",
    ["provider"],
)
PACING_UNAVAILABLE = Counter(
    "herald_provider_pacing_unavailable_total",
    "Pacing decisions made by the worker alone because Redis did not answer.",
    ["provider"],
)
THROTTLED = Counter(
    "herald_provider_throttled_total",
    "A provider's own 429 answers, waited out through their Retry-After (no failure counted).",
    ["provider"],
)
