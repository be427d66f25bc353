"""The scenarios: each drives load at the running stack and says what happened.

`Bench.run` runs one by name; the accept scenarios are a load and its `Row`, backlog and
failover also stop or reconfigure the email worker, rejected adds a flood beside a load.
"""

from __future__ import annotations

import math
import multiprocessing
import subprocess
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

import httpx
import orjson

from bench import flood
from bench.harness import Harness, load_usage
from bench.load import Kind, LoadResult, LoadSpec, request_prefix, warm
from bench.measure import Ledger
from bench.model import (
    CALLBACKS_OFF,
    CALLBACKS_ON,
    FLOOR_RATE,
    REJECTED_ALONE,
    REJECTED_FLOOD,
    SCENARIOS,
    Row,
    closed_loop_name,
    open_loop_name,
)
from bench.processes import ROOT, StackError, free_port, rabbitmqctl
from mesh.probe import accepts

# The flood runs from this long before the measured load to this long after it.
FLOOD_LEAD_S = 1.0


class Bench(Harness):
    """Runs scenarios against `stack` with load from `pool` (one task per load process)."""

    def run(self, scenario: str) -> list[Row]:
        """Runs one named scenario (see SCENARIOS); returns its rows."""
        before = len(self.rows)
        p = self.params
        if scenario in ("rest-rate", "grpc-rate"):
            kind: Kind = "rest" if scenario == "rest-rate" else "grpc"
            for rate in p.rest_rates if kind == "rest" else p.grpc_rates:
                name = open_loop_name(scenario, rate)
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
            for callers in p.concurrency:
                name = closed_loop_name(scenario, callers)
                spec = self._spec(
                    kind, self._tag(name), rate=0, concurrency=callers, duration=p.duration
                )
                self._measured(name, spec)
        elif scenario == "batch":
            spec = self._spec(
                "batch",
                self._tag(scenario),
                rate=0,
                concurrency=p.batch_concurrency,
                duration=p.duration,
            )
            self._measured(scenario, spec)
        elif scenario == "floor":
            self._floor()
        elif scenario == "backlog":
            self._backlog()
        elif scenario == "failover":
            self._failover()
        elif scenario == "rejected":
            self._rejected()
        elif scenario == "callbacks":
            self._callbacks()
        else:
            raise ValueError(f"unknown scenario {scenario!r} (known: {', '.join(SCENARIOS)})")
        return self.rows[before:]

    def _floor(self) -> None:
        """The minimal pipeline (`bench.floor`) under rest-sat's and rest-rate's loads: the
        ceiling of the servers and libraries Herald sits on, on this machine, for reading
        Herald's rows."""
        p = self.params
        port = free_port()
        dsn = self.stack.create_database("floor")
        floor = subprocess.Popen(
            [
                *(sys.executable, "-m", "bench.floor", "--port", str(port), "--dsn", dsn),
                *("--amqp-url", self.stack.amqp_url, "--queue", "floor.queue"),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=(self.stack.logs_dir / "floor.log").open("ab"),
        )
        ledger = Ledger(dsn)
        try:
            _wait_listening(port, floor, "the floor")
            url = f"http://127.0.0.1:{port}"
            self._warm("floor-warmup", ("rest",), rest_url=url, ledger=ledger)
            # Closed loops at rest-sat's levels (capacity), then open loops at rest-rate's
            # rates (the latency the servers alone give at the offered rates of the targets).
            loads = [(closed_loop_name("floor", c), 0.0, c) for c in p.concurrency]
            loads += [(open_loop_name(FLOOR_RATE, r), r, p.max_in_flight) for r in p.floor_rates]
            for name, rate, concurrency in loads:
                spec = self._spec(
                    "rest",
                    self._tag(name),
                    rate=rate,
                    concurrency=concurrency,
                    duration=p.duration,
                    rest_url=url,
                )
                self._measured(
                    name,
                    spec,
                    notes={
                        "system": "bench/floor.py, one process: POST -> INSERT -> publish "
                        "with confirm -> consume -> UPDATE -> ack"
                    },
                    ledger=ledger,
                    pids={"floor": floor.pid},
                )
        finally:
            ledger.close()
            floor.terminate()
            floor.wait(10)

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
        # The window opens before the worker starts: a small backlog can be drained while
        # the worker is still being waited for, and its CPU is the drain's.
        with self._watch("backlog-drain", self.stack.pids()) as watch:
            worker = self.stack.start_worker("email")
            watch.follow("deliveryd-email", worker.pid)
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
            _wait_listening(port, fake, "the fake SendGrid")
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
            name = open_loop_name("failover", p.failover_rate)
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

    def _rejected(self) -> None:
        """An authenticated REST send load at `flood_send_rate`, alone, then beside a flood
        of `flood_rate` requests/s the edge must refuse (`bench.flood`), sent from a load
        process of its own from a second before the measured load to a second after it.
        The flood's rate and answers are the second row's `notes["flood"]`; an answer that
        is not a refusal fails the scenario (after its rows are kept)."""
        p = self.params
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            pool.submit(warm).result()
            alone = open_loop_name(REJECTED_ALONE, p.flood_send_rate)
            self._measured(alone, self._send_load(alone))
            name = open_loop_name(REJECTED_FLOOD, p.flood_send_rate)
            spec = self._send_load(name)
            flood_spec = replace(
                spec,
                kind="refused",
                tag=self._tag("flood"),
                rate=p.flood_rate,
                duration=p.duration + 2 * FLOOD_LEAD_S,
                refusals=p.flood_kinds,
            )
            prefix = request_prefix(spec.tag)
            with self._watch(name, self.stack.pids()) as watch:
                flooding = pool.submit(
                    flood.run_flood, replace(flood_spec, start_at=time.time() + 0.3)
                )
                load = self._drive(spec, delay=0.3 + FLOOD_LEAD_S)
                flooded = flooding.result()
                self.ledger.wait_settled(prefix, load.accepted_items, p.drain_timeout)
        seen = flood.summary(flood_spec, flooded)
        row = self._row(
            name,
            spec,
            load,
            outcomes=self.ledger.outcomes(prefix),
            watch=watch,
            notes={"flood": seen},
        )
        row.resources["flood"] = load_usage(flooded, seen["duration_s"])
        self.rows.append(row)
        if seen["unexpected"] or seen["errors"]:
            raise flood.NotRefused(
                f"{name}: the flood was answered otherwise than refused: "
                f"{seen['unexpected']}, errors {seen['errors']}"
            )

    def _callbacks(self) -> None:
        """The same REST send load at `callback_rate`, first with no callback endpoint,
        then with one registered for the bench's client (a local receiver answering 204,
        `bench.receiver`): what callbacks cost the accept path, and that each status
        change reached the receiver once. Then `callback_callers` REST callers back to
        back, with the endpoint and after it is deleted: the capacity callbacks leave
        (off, on, on, off, so a drift over the scenario weighs on both sides). The
        receiver shares the stack's cores: every row watches it (`receiver`, not counted as
        Herald's), and an `on` row's window runs until it has every event, so the posts
        made after the notifications settled count too."""
        p = self.params
        port = free_port()
        receiver = subprocess.Popen(
            [sys.executable, "-m", "bench.receiver", "--port", str(port)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=(self.stack.logs_dir / "receiver.log").open("ab"),
        )
        beside = {"receiver": receiver.pid}
        edge = httpx.Client(
            base_url=self.stack.rest_url,
            headers={"Authorization": f"Bearer {self.seed.api_key}"},
            timeout=10,
        )

        def stats() -> dict[str, Any]:
            return dict(orjson.loads(httpx.get(f"http://127.0.0.1:{port}/stats").content))

        def received(load: LoadResult) -> None:
            # Every accepted notification changes status once (pending → delivered).
            deadline = time.monotonic() + p.drain_timeout
            while stats()["events"] < load.accepted_items and time.monotonic() < deadline:
                time.sleep(0.1)

        try:
            _wait_listening(port, receiver, "the callback receiver")
            off = open_loop_name(CALLBACKS_OFF, p.callback_rate)
            self._measured(off, self._rate_load(off, p.callback_rate), beside=beside)
            created = edge.post(
                "/api/v1/callbacks/",
                json={"url": f"http://127.0.0.1:{port}/callbacks", "events": "all"},
            )
            if created.status_code != 201:
                raise StackError(f"registering the callback failed: {created.text}")
            on = open_loop_name(CALLBACKS_ON, p.callback_rate)
            row = self._measured(
                on, self._rate_load(on, p.callback_rate), beside=beside, until=received
            )
            row.notes["callbacks"] = {"expected": row.accepted, **stats()}
            httpx.post(f"http://127.0.0.1:{port}/reset").raise_for_status()
            on_sat = closed_loop_name(CALLBACKS_ON, p.callback_callers)
            row = self._measured(on_sat, self._callers_load(on_sat), beside=beside, until=received)
            row.notes["callbacks"] = {"expected": row.accepted, **stats()}
            edge.delete(f"/api/v1/callbacks/{created.json()['id']}")
            off_sat = closed_loop_name(CALLBACKS_OFF, p.callback_callers)
            self._measured(off_sat, self._callers_load(off_sat), beside=beside)
        finally:
            edge.close()
            receiver.terminate()
            receiver.wait(10)

    def _rate_load(self, name: str, rate: float) -> LoadSpec:
        return self._spec(
            "rest",
            self._tag(name),
            rate=rate,
            concurrency=self.params.max_in_flight,
            duration=self.params.duration,
        )

    def _callers_load(self, name: str) -> LoadSpec:
        p = self.params
        return self._spec(
            "rest", self._tag(name), rate=0, concurrency=p.callback_callers, duration=p.duration
        )

    def _send_load(self, name: str) -> LoadSpec:
        return self._rate_load(name, self.params.flood_send_rate)


def _wait_listening(
    port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 15.0
) -> None:
    deadline = time.monotonic() + timeout
    while not accepts("127.0.0.1", port, timeout=0.5):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise StackError(f"{what} did not listen on {port}")
        time.sleep(0.1)
