"""What a run is asked to do (`Params`) and what each scenario measured (`Row`).

Every scenario row holds the same fields, so the table and the JSON read alike whatever
the scenario.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCENARIOS = (
    "floor",
    "rest-rate",
    "rest-sat",
    "grpc-rate",
    "grpc-sat",
    "batch",
    "backlog",
    "failover",
    "rejected",
    "callbacks",
)

# Processes a row watches that are not the system measured (the loads, a fake provider, a
# client's callback receiver).
NOT_MEASURED = frozenset({"load", "flood", "fake-sendgrid", "receiver"})

# The floor's open-loop rows, `floor-rate@<rate>`, one per REST rate.
FLOOR_RATE = "floor-rate"
# The rejected scenario's rows: its authenticated send load alone, then beside the flood.
REJECTED_ALONE = "rejected-alone"
REJECTED_FLOOD = "rejected-flood"
# The callbacks scenario's rows: a REST send load with no callback endpoint registered,
# then the same load with one (every status change posted to a local receiver).
CALLBACKS_OFF = "callbacks-off"
CALLBACKS_ON = "callbacks-on"
# Herald's open-loop scenarios, each read against the floor's row at the same rate.
OPEN_LOOPS = ("rest-rate", "grpc-rate", REJECTED_ALONE, REJECTED_FLOOD, CALLBACKS_OFF, CALLBACKS_ON)
# What the rejected scenario's flood sends, in turn (`bench.flood`): no Authorization
# header, a key that is not one, a well-formed key of an unknown id, a live key with a body
# that is not JSON.
REFUSALS = ("no-key", "malformed-key", "unknown-key", "bad-json")


def open_loop_name(scenario: str, rate: float) -> str:
    """`rest-rate`, 500 → `rest-rate@500`: an open-loop row at one offered rate."""
    return f"{scenario}@{rate:g}"


def open_loop_scenario(name: str) -> str | None:
    """`rest-rate@500` → `rest-rate`; None for a row not named by `open_loop_name`."""
    base, marker, rate = name.rpartition("@")
    return base if marker and rate[:1].isdigit() else None


def closed_loop_name(scenario: str, callers: int) -> str:
    """`rest-sat`, 64 → `rest-sat@c64`: a closed-loop row at one level of callers."""
    return f"{scenario}@c{callers}"


def closed_loop_scenario(name: str) -> str | None:
    """`rest-sat@c64` → `rest-sat`; None for a row not named by `closed_loop_name`."""
    base, marker, level = name.rpartition("@c")
    return base if marker and level.isdigit() else None


@dataclass(frozen=True)
class Params:
    """Everything the command line can change."""

    scenarios: tuple[str, ...] = SCENARIOS
    duration: float = 10.0
    rest_rates: tuple[float, ...] = (300.0, 500.0)
    grpc_rates: tuple[float, ...] = (500.0,)
    # Closed-loop callers; each level is a row of floor, rest-sat and grpc-sat. A closed
    # loop measures capacity only once its callers keep the server busy; several levels
    # show where the throughput stops growing (the highest is the saturation figure).
    concurrency: tuple[int, ...] = (64, 256)
    max_in_flight: int = 512
    batch_size: int = 100
    batch_concurrency: int = 4
    backlog: int = 100_000
    failover_rate: float = 200.0
    fail_ratio: float = 0.5
    failover_breaker_threshold: int = 1000
    # The rejected scenario: authenticated REST POSTs/s, measured alone and beside a flood
    # of `flood_rate` refused requests/s made of `flood_kinds` in turn.
    flood_send_rate: float = 100.0
    flood_rate: float = 365.0
    flood_kinds: tuple[str, ...] = REFUSALS
    # The callbacks scenario: REST POSTs/s, with and without a callback endpoint; then
    # REST callers back to back, with and without (the capacity each leaves).
    callback_rate: float = 300.0
    callback_callers: int = 64
    users: int = 100
    load_procs: int = 1
    grpc_connections: int = 8  # per load process (REST opens one per caller)
    gateways: int = 2  # gateway processes sharing its ports, as `make up GATEWAYS=N`
    settings: tuple[tuple[str, str], ...] = ()  # HERALD_* values given to every process
    drain_timeout: float = 120.0
    backlog_timeout: float = 900.0
    warmup: float = 2.0
    profile: Path | None = None  # py-spy every scenario into this folder
    profile_native: bool = False  # with C frames (uvloop, grpc core, psycopg's libpq)

    @property
    def floor_rates(self) -> tuple[float, ...]:
        """The floor's open-loop rates: rest-rate's, and the rejected scenario's if it runs."""
        rates = self.rest_rates
        if "rejected" in self.scenarios:
            rates = (*rates, self.flood_send_rate)
        if "callbacks" in self.scenarios:
            rates = (*rates, self.callback_rate)
        return tuple(dict.fromkeys(rates))


@dataclass
class Row:
    """One scenario's measurements (the JSON's `scenarios[]` and a line of the table)."""

    scenario: str
    kind: str
    method: str  # "open loop" or "closed loop"
    offered_rate: float | None  # requests/s; None for closed loop
    concurrency: int
    duration_s: float
    batch_size: int
    requests: int
    ok: int
    late: int
    accepted: int
    achieved_rate: float | None  # successful requests/s (None: no load was driven)
    accepted_per_s: float | None  # notifications accepted/s
    delivered: int
    failed: int
    pending: int
    delivered_per_s: float | None  # None: nothing was to be delivered yet
    delivered_per_s_in_load: float | None  # deliveries inside the load window / its length
    accept_latency_ms: dict[str, float | None]
    e2e_latency_ms: dict[str, float | None]
    e2e_recorded_latency_ms: dict[str, float | None]
    errors: dict[str, int]
    error_count: int
    resources: dict[str, dict[str, Any]]
    # CPU of the system under test (its processes and the servers; not the load generator
    # nor a fake provider) per notification: accepted, or delivered for a drain.
    cpu_ms_per_notification: float | None
    notes: dict[str, Any] = field(default_factory=dict)
