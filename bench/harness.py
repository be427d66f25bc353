"""What every scenario is made of: load driven from the load processes, the stack's
resources watched meanwhile, and a `Row` made of what happened.

A scenario waits for its notifications to settle before the next one starts, so one
scenario's backlog never slows the next one down.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

from bench.load import Kind, LoadResult, LoadSpec, merge, request_prefix, run_load, warm
from bench.measure import Ledger, Outcomes, percentiles
from bench.model import NOT_MEASURED, Params, Row
from bench.profile import Profiler
from bench.resources import ResourceSampler, Usage
from bench.seed import Seed
from bench.stack import Stack
from bench.stages import StageMeter

PROFILED = ("gateway", "userd", "templated", "deliveryd-email")


def cpu_per_notification(resources: dict[str, dict[str, Any]], count: int) -> float | None:
    """CPU ms of the measured processes (every watched one but `NOT_MEASURED`) per
    notification; None when there were none."""
    if count <= 0:
        return None
    cpu = sum(float(u["cpu_seconds"]) for name, u in resources.items() if name not in NOT_MEASURED)
    return round(cpu * 1000 / count, 2)


def load_usage(load: LoadResult, wall: float) -> dict[str, Any]:
    """A load process's `resources` entry (it is not sampled: it measures itself)."""
    return {
        "cpu_seconds": round(load.cpu_seconds, 2),
        "cores": round(load.cpu_seconds / wall, 2),
        "peak_rss_mb": round(load.peak_rss_mb, 1),
        "start_rss_mb": None,
        "end_rss_mb": None,
    }


class Watch:
    """What `Harness._watch` saw; read it after the block."""

    def __init__(
        self, sampler: ResourceSampler, profiler: Profiler | None, stages: StageMeter | None
    ) -> None:
        self._sampler = sampler
        self._profiler = profiler
        self._stages = stages

    @property
    def usage(self) -> dict[str, Usage]:
        return self._sampler.usage

    def follow(self, name: str, pid: int) -> None:
        """Measures a process started inside the block, from its birth."""
        self._sampler.follow(name, pid)

    @property
    def profiles(self) -> dict[str, dict[str, Any]]:
        return self._profiler.summaries if self._profiler is not None else {}

    @property
    def stages(self) -> dict[str, Any]:
        """The gateway's accept pipeline over the block (`bench.stages`), if measured."""
        return self._stages.summary if self._stages is not None else {}


class Harness:
    """Drives load from `pool` (one task per load process) at `stack` and measures it."""

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
        rest_url: str = "",
    ) -> LoadSpec:
        """What the load processes send; `rest_url`: another system than the stack's."""
        return LoadSpec(
            kind=kind,
            rate=rate,
            concurrency=concurrency,
            duration=duration,
            rest_url=rest_url or self.stack.rest_url,
            api_key=self.seed.api_key,
            grpc_address=self.stack.gateway_address,
            service_token=self.stack.service_token,
            user_ids=self.seed.user_ids,
            template_code=self.seed.template_code,
            batch_size=self.params.batch_size,
            tag=tag,
            max_requests=max_requests,
            grpc_connections=self.params.grpc_connections,
        )

    def _drive(self, spec: LoadSpec, *, delay: float = 0.3) -> LoadResult:
        """Splits `spec` over the load processes, runs them together from `delay` seconds
        on, merges the results."""
        procs = self.params.load_procs
        part = replace(
            spec,
            rate=spec.rate / procs,
            concurrency=max(1, math.ceil(spec.concurrency / procs)),
            max_requests=math.ceil(spec.max_requests / procs) if spec.max_requests else 0,
            start_at=time.time() + delay,
        )
        futures = [self.pool.submit(run_load, part) for _ in range(procs)]
        return merge([f.result() for f in futures])

    def warm_up(self) -> None:
        """Imports in the load processes, connections and caches in the stack: not measured."""
        for future in [self.pool.submit(warm) for _ in range(self.params.load_procs)]:
            future.result()
        self._warm("warmup", ("rest", "grpc"))

    def _warm(
        self,
        name: str,
        kinds: tuple[Kind, ...],
        *,
        rest_url: str = "",
        ledger: Ledger | None = None,
    ) -> None:
        """`params.warmup` seconds of each kind at 50/s, settled: not measured."""
        if self.params.warmup <= 0:
            return
        tag = self._tag(name)
        sent = 0
        for kind in kinds:
            spec = self._spec(
                kind, tag, rate=50, concurrency=64, duration=self.params.warmup, rest_url=rest_url
            )
            sent += self._drive(spec).accepted_items
        (ledger or self.ledger).wait_settled(request_prefix(tag), sent, self.params.drain_timeout)

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
        ledger: Ledger | None = None,
    ) -> Row:
        """The row of a scenario; `deliveries=False`: nothing was meant to be delivered
        yet (backlog fill); `sent=False`: no load was driven (backlog drain); `ledger`:
        where its notifications are, if not in the stack's database (the floor)."""
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
                (ledger or self.ledger).delivered_between(
                    request_prefix(spec.tag), load.started, load.finished
                )
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
        if watch.stages:
            notes["accept_stages"] = watch.stages
        if sent:
            resources["load"] = load_usage(load, wall)
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
            cpu_ms_per_notification=cpu_per_notification(
                resources, load.accepted_items if sent else outcomes.delivered
            ),
            notes=notes,
        )

    def _measured(
        self,
        name: str,
        spec: LoadSpec,
        notes: dict[str, Any] | None = None,
        *,
        ledger: Ledger | None = None,
        pids: dict[str, int] | None = None,
        beside: dict[str, int] | None = None,
        until: Callable[[LoadResult], None] | None = None,
    ) -> Row:
        """Drives `spec`, waits for its notifications to settle, and makes its row
        (`ledger` and `pids`: another system than the stack's, i.e. the floor). `beside`:
        more processes to watch (not the system measured: see NOT_MEASURED); `until`:
        what else the window waits for once the notifications settled, so that the work
        they cause later (callbacks) counts in the row."""
        prefix = request_prefix(spec.tag)
        books = ledger or self.ledger
        stack_pids = self.stack.pids() if pids is None else pids
        with self._watch(name, stack_pids | (beside or {}), stages=pids is None) as watch:
            load = self._drive(spec)
            books.wait_settled(prefix, load.accepted_items, self.params.drain_timeout)
            if until is not None:
                until(load)
        row = self._row(
            name,
            spec,
            load,
            outcomes=books.outcomes(prefix),
            watch=watch,
            notes=notes,
            ledger=ledger,
        )
        self.rows.append(row)
        return row

    @contextlib.contextmanager
    def _watch(self, label: str, pids: dict[str, int], *, stages: bool = True) -> Iterator[Watch]:
        """Samples CPU and RSS of `pids` over the block, and profiles them if asked;
        `stages`: the block loads the stack's gateways, whose accept stages are read
        (`bench.stages`)."""
        directory = self.params.profile
        with contextlib.ExitStack() as stack:
            meter = None
            if stages:
                meter = stack.enter_context(StageMeter(self.stack.gateway_metrics_urls))
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
            yield Watch(sampler, profiler, meter)
