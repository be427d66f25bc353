"""The scenarios: each drives load at the running stack and says what happened.

Every scenario row holds the same fields (see `Row`), so the table and the JSON read
alike whatever the scenario. A scenario waits for its notifications to settle before the
next one starts, so one scenario's backlog never slows the next one down.
"""

from __future__ import annotations

import contextlib
import math
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.load import Kind, LoadResult, LoadSpec, merge, request_prefix, run_load, warm
from bench.measure import Ledger, Outcomes, percentiles
from bench.profile import Profiler
from bench.resources import ResourceSampler, Usage
from bench.stack import ROOT, Seed, Stack, StackError, free_port, rabbitmqctl

SCENARIOS = ("rest-rate", "rest-sat", "grpc-rate", "grpc-sat", "batch", "backlog", "failover")


PROFILED = ("gateway", "userd", "templated", "deliveryd-email")


class Watch:
    """What `Bench._watch` saw; read it after the block."""

    def __init__(self, sampler: ResourceSampler, profiler: Profiler | None) -> None:
        self._sampler = sampler
        self._profiler = profiler

    @property
    def usage(self) -> dict[str, Usage]:
        return self._sampler.usage

    @property
    def profiles(self) -> dict[str, dict[str, Any]]:
        return self._profiler.summaries if self._profiler is not None else {}


@dataclass(frozen=True)
class Params:
    """Everything the command line can change."""

    scenarios: tuple[str, ...] = SCENARIOS
    duration: float = 10.0
    rest_rates: tuple[float, ...] = (300.0, 500.0)
    grpc_rates: tuple[float, ...] = (500.0,)
    concurrency: int = 64
    max_in_flight: int = 512
    batch_size: int = 100
    batch_concurrency: int = 4
    backlog: int = 100_000
    failover_rate: float = 200.0
    fail_ratio: float = 0.5
    failover_breaker_threshold: int = 1000
    users: int = 100
    load_procs: int = 1
    drain_timeout: float = 120.0
    backlog_timeout: float = 900.0
    warmup: float = 2.0
    profile: Path | None = None  # py-spy every scenario into this folder
    profile_native: bool = False  # with C frames (uvloop, grpc core, psycopg's libpq)


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
    notes: dict[str, Any] = field(default_factory=dict)


class Bench:
    """Runs scenarios against `stack` with load from `pool` (one task per load process)."""

    def __init__(self, stack: Stack, seed: Seed, params: Params, pool: ProcessPoolExecutor) -> None:
        self.stack = stack
        self.seed = seed
        self.params = params
        self.pool = pool
        self.ledger = Ledger(stack.notifications_dsn)
        self.rows: list[Row] = []
        self._number = 0

    def close(self) -> None:
        self.ledger.close()

    # --- plumbing ----------------------------------------------------------------------

    def _tag(self, name: str) -> str:
        self._number += 1
        return f"{self._number:02d}{name}"

    def _spec(
        self,
        kind: Kind,
        tag: str,
        *,
        rate: float,
        concurrency: int,
        duration: float,
        max_requests: int = 0,
    ) -> LoadSpec:
        return LoadSpec(
            kind=kind,
            rate=rate,
            concurrency=concurrency,
            duration=duration,
            rest_url=self.stack.rest_url,
            api_key=self.seed.api_key,
            grpc_address=self.stack.gateway_address,
            service_token=self.stack.service_token,
            user_ids=self.seed.user_ids,
            template_code=self.seed.template_code,
            batch_size=self.params.batch_size,
            tag=tag,
            max_requests=max_requests,
        )

    def _drive(self, spec: LoadSpec) -> LoadResult:
        """Splits `spec` over the load processes, runs them together, merges the results."""
        procs = self.params.load_procs
        part = replace(
            spec,
            rate=spec.rate / procs,
            concurrency=max(1, math.ceil(spec.concurrency / procs)),
            max_requests=math.ceil(spec.max_requests / procs) if spec.max_requests else 0,
            start_at=time.time() + 0.3,
        )
        futures = [self.pool.submit(run_load, part) for _ in range(procs)]
        return merge([f.result() for f in futures])

    def warm_up(self) -> None:
        """Imports in the load processes, connections and caches in the stack: not measured."""
        for future in [self.pool.submit(warm) for _ in range(self.params.load_procs)]:
            future.result()
        if self.params.warmup <= 0:
            return
        tag = self._tag("warmup")
        sent = 0
        for kind in ("rest", "grpc"):
            spec = self._spec(kind, tag, rate=50, concurrency=64, duration=self.params.warmup)
            sent += self._drive(spec).accepted_items
        self.ledger.wait_settled(request_prefix(tag), sent, self.params.drain_timeout)

    def _row(
        self,
        name: str,
        spec: LoadSpec,
        load: LoadResult,
        *,
        outcomes: Outcomes,
        watch: Watch,
        kind: str = "",
        notes: dict[str, Any] | None = None,
        delivered_since: float | None = None,
        deliveries: bool = True,
        sent: bool = True,
    ) -> Row:
        """The row of a scenario; `deliveries=False`: nothing was meant to be delivered
        yet (backlog fill); `sent=False`: no load was driven (backlog drain)."""
        wall = max(load.finished - load.started, 1e-9)
        if sent and spec.rate > 0:
            # The last request is due just before `duration` ends: the window is `duration`.
            wall = max(wall, spec.duration)
        since = load.started if delivered_since is None else delivered_since
        delivered_per_s: float | None = None
        in_load: float | None = None
        errors = dict(load.errors)
        if deliveries:
            delivered_per_s = 0.0
            if outcomes.last_deliver is not None and outcomes.last_deliver > since:
                delivered_per_s = outcomes.delivered / (outcomes.last_deliver - since)
            delivered_per_s = round(delivered_per_s, 1)
            in_load = round(
                self.ledger.delivered_between(request_prefix(spec.tag), load.started, load.finished)
                / wall,
                1,
            )
            if outcomes.failed:
                errors["delivery:failed"] = outcomes.failed
            if outcomes.pending:
                errors["delivery:still-pending"] = outcomes.pending
        resources = {name: u.as_dict() for name, u in watch.usage.items()}
        notes = dict(notes or {})
        if watch.profiles:
            notes["profile"] = watch.profiles
        if sent:
            resources["load"] = {
                "cpu_seconds": round(load.cpu_seconds, 2),
                "cores": round(load.cpu_seconds / wall, 2),
                "peak_rss_mb": round(load.peak_rss_mb, 1),
                "start_rss_mb": None,
                "end_rss_mb": None,
            }
        return Row(
            scenario=name,
            kind=kind or spec.kind,
            method=("open loop" if spec.rate > 0 else "closed loop") if sent else "drain",
            offered_rate=spec.rate if spec.rate > 0 and sent else None,
            concurrency=spec.concurrency if sent else 0,
            duration_s=round(wall, 2),
            batch_size=(spec.batch_size if spec.kind == "batch" else 1) if sent else 0,
            requests=load.requests,
            ok=load.ok,
            late=load.late,
            accepted=load.accepted_items,
            achieved_rate=round(load.ok / wall, 1) if sent else None,
            accepted_per_s=round(load.accepted_items / wall, 1) if sent else None,
            delivered=outcomes.delivered,
            failed=outcomes.failed,
            pending=outcomes.pending if deliveries else 0,
            delivered_per_s=delivered_per_s,
            delivered_per_s_in_load=in_load,
            accept_latency_ms=percentiles(load.latencies_ms),
            e2e_latency_ms=outcomes.e2e_ms,
            e2e_recorded_latency_ms=outcomes.recorded_ms,
            errors=errors,
            error_count=sum(errors.values()),
            resources=resources,
            notes=notes,
        )

    def _measured(self, name: str, spec: LoadSpec, notes: dict[str, Any] | None = None) -> Row:
        """Drives `spec`, waits for its notifications to settle, and makes its row."""
        prefix = request_prefix(spec.tag)
        with self._watch(name, self.stack.pids()) as watch:
            load = self._drive(spec)
            self.ledger.wait_settled(prefix, load.accepted_items, self.params.drain_timeout)
        row = self._row(
            name,
            spec,
            load,
            outcomes=self.ledger.outcomes(prefix),
            watch=watch,
            notes=notes,
        )
        self.rows.append(row)
        return row

    @contextlib.contextmanager
    def _watch(self, label: str, pids: dict[str, int]) -> Iterator[Watch]:
        """Samples CPU and RSS of `pids` over the block, and profiles them if asked."""
        directory = self.params.profile
        with contextlib.ExitStack() as stack:
            sampler = stack.enter_context(ResourceSampler(pids))
            profiler = None
            if directory is not None:
                profiled = {n: pid for n, pid in pids.items() if n in PROFILED}
                profiler = stack.enter_context(
                    Profiler(
                        profiled,
                        directory,
                        f"{self._number:02d}-{label.replace('@', '-')}",
                        native=self.params.profile_native,
                    )
                )
            yield Watch(sampler, profiler)

    # --- the scenarios -----------------------------------------------------------------

    def run(self, scenario: str) -> list[Row]:
        """Runs one named scenario (see SCENARIOS); returns its rows."""
        before = len(self.rows)
        p = self.params
        if scenario in ("rest-rate", "grpc-rate"):
            kind: Kind = "rest" if scenario == "rest-rate" else "grpc"
            for rate in p.rest_rates if kind == "rest" else p.grpc_rates:
                name = f"{scenario}@{rate:g}"
                self._measured(
                    name,
                    self._spec(
                        kind,
                        self._tag(name),
                        rate=rate,
                        concurrency=p.max_in_flight,
                        duration=p.duration,
                    ),
                )
        elif scenario in ("rest-sat", "grpc-sat"):
            kind = "rest" if scenario == "rest-sat" else "grpc"
            spec = self._spec(
                kind, self._tag(scenario), rate=0, concurrency=p.concurrency, duration=p.duration
            )
            self._measured(scenario, spec)
        elif scenario == "batch":
            spec = self._spec(
                "batch",
                self._tag(scenario),
                rate=0,
                concurrency=p.batch_concurrency,
                duration=p.duration,
            )
            self._measured(scenario, spec)
        elif scenario == "backlog":
            self._backlog()
        elif scenario == "failover":
            self._failover()
        else:
            raise ValueError(f"unknown scenario {scenario!r} (known: {', '.join(SCENARIOS)})")
        return self.rows[before:]

    def _backlog(self) -> None:
        """SendBatch fills email.queue with the worker stopped; then the worker drains it."""
        p = self.params
        self.stack.stop_process("deliveryd-email")
        tag = self._tag("backlog")
        prefix = request_prefix(tag)
        spec = self._spec(
            "batch",
            tag,
            rate=0,
            concurrency=p.batch_concurrency,
            duration=p.backlog_timeout,
            max_requests=math.ceil(p.backlog / p.batch_size),
        )
        with self._watch("backlog-fill", self.stack.pids()) as watch:
            fill = self._drive(spec)
            deadline = time.monotonic() + p.drain_timeout
            while self.ledger.unpublished(prefix) and time.monotonic() < deadline:
                time.sleep(0.2)
        depth = self._queue_depth("email.queue")
        fill_row = self._row(
            "backlog-fill",
            spec,
            fill,
            outcomes=self.ledger.outcomes(prefix),
            watch=watch,
            notes={"email_worker": "stopped", "email_queue_depth_after_fill": depth},
            deliveries=False,
        )
        self.rows.append(fill_row)

        started = time.time()
        self.stack.start_worker("email")
        with self._watch("backlog-drain", self.stack.pids()) as watch:
            self.ledger.wait_settled(prefix, fill.accepted_items, p.backlog_timeout)
        outcomes = self.ledger.outcomes(prefix)
        drain = LoadResult(started=started, finished=time.time())
        first = outcomes.first_deliver
        drain_row = self._row(
            "backlog-drain",
            spec,
            drain,
            kind="backlog",
            outcomes=outcomes,
            watch=watch,
            notes={
                "backlog": fill.accepted_items,
                "delivered_per_s_from_worker_start": round(
                    outcomes.delivered / max((outcomes.last_deliver or started) - started, 1e-9),
                    1,
                ),
                "email_worker_start_to_first_delivery_s": round((first or started) - started, 2),
            },
            delivered_since=first,
            sent=False,
        )
        self.rows.append(drain_row)

    def _queue_depth(self, queue: str) -> int | None:
        try:
            out = rabbitmqctl("list_queues", "-p", self.stack.vhost, "name", "messages")
        except StackError:
            return None
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == queue and parts[1].isdigit():
                return int(parts[1])
        return None

    def _failover(self) -> None:
        """Email chain sendgrid → sandbox, SendGrid (a local fake) failing `fail_ratio`."""
        p = self.params
        port = free_port()
        api_key = f"SG.bench-{uuid.uuid4().hex[:12]}"
        fake = subprocess.Popen(
            [
                *(sys.executable, "-m", "bench.fake_sendgrid", "--port", str(port)),
                *("--api-key", api_key, "--fail-ratio", str(p.fail_ratio)),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=(self.stack.logs_dir / "fake-sendgrid.log").open("ab"),
        )
        try:
            _wait_listening(port, fake)
            self.stack.start_worker(
                "email",
                {
                    "HERALD_EMAIL_PROVIDERS": "sendgrid,sandbox",
                    "HERALD_SENDGRID_API_KEY": api_key,
                    "HERALD_SENDGRID_BASE_URL": f"http://127.0.0.1:{port}",
                    "HERALD_SENDGRID_TIMEOUT": "2",
                    "HERALD_DELIVERYD_BREAKER_THRESHOLD": str(p.failover_breaker_threshold),
                },
            )
            name = f"failover@{p.failover_rate:g}"
            spec = self._spec(
                "rest",
                self._tag("failover"),
                rate=p.failover_rate,
                concurrency=p.max_in_flight,
                duration=p.duration,
            )
            pids = {**self.stack.pids(), "fake-sendgrid": fake.pid}
            prefix = request_prefix(spec.tag)
            with self._watch(name, pids) as watch:
                load = self._drive(spec)
                self.ledger.wait_settled(prefix, load.accepted_items, p.drain_timeout)
            stats = orjson.loads(httpx.get(f"http://127.0.0.1:{port}/stats", timeout=5).content)
            outcomes = self.ledger.outcomes(prefix)
            row = self._row(
                name,
                spec,
                load,
                outcomes=outcomes,
                watch=watch,
                notes={
                    "email_chain": "sendgrid (fake, local) -> sandbox",
                    "fail_ratio": p.fail_ratio,
                    "breaker_threshold": p.failover_breaker_threshold,
                    "fake_sendgrid": stats,
                    "delivered_by_provider": outcomes.providers,
                },
            )
            self.rows.append(row)
        finally:
            fake.terminate()
            fake.wait(10)
        self.stack.start_worker("email")


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise StackError(f"the fake SendGrid did not listen on {port}") from None
            time.sleep(0.1)
