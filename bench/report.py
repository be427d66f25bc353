"""The bench's output: the machine and method, a table per run, and the JSON document."""

from __future__ import annotations

import os
import platform
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson
import psutil

from bench.model import (
    CALLBACKS_OFF,
    CALLBACKS_ON,
    FLOOR_RATE,
    OPEN_LOOPS,
    REJECTED_ALONE,
    REJECTED_FLOOD,
    Params,
    Row,
    closed_loop_scenario,
    open_loop_scenario,
)
from gateway.notifications.metrics import STAGES

PROCESS_ORDER = (
    "floor",
    "gateway",
    "gateway-2",
    "callbacks",
    "userd",
    "templated",
    "deliveryd-email",
    "deliveryd-sms",
    "deliveryd-push",
    "fake-sendgrid",
    "receiver",
    "load",
    "flood",
    "postgres",
    "rabbitmq",
    "redis",
)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "memory_mb": round(psutil.virtual_memory().total / 2**20),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def method(params: Params) -> dict[str, str]:
    """How the figures were obtained, in words (printed and stored with them)."""
    procs = params.load_procs
    make_up, gateways = "make up", ""
    if params.gateways > 1:
        make_up = f"make up GATEWAYS={params.gateways}"
        gateways = f" (the gateway: {params.gateways}, sharing its ports)"
    settings = ""
    if params.settings:
        given = ", ".join(f"{name}={value}" for name, value in params.settings)
        settings = f", with {given}"
    return {
        "stack": "every Herald process (userd, templated, gateway, callbacks, deliveryd "
        f"email/sms/push) as `{make_up}` runs it{settings}, one process each{gateways}, "
        "sandbox providers, on this machine's PostgreSQL, RabbitMQ and Redis (a database set, "
        "vhost and key prefix of the run's own)",
        "floor": "the `floor` row is not Herald: bench/floor.py, the minimal pipeline "
        "(POST -> INSERT -> publish with confirm -> consume -> UPDATE -> ack) in one process "
        "on the same servers and libraries, driven like rest-sat (`floor@c<callers>`) and "
        f"like rest-rate and rejected (`{FLOOR_RATE}@<rate>`); Herald's rows read against "
        "it, on this machine",
        "load": f"{procs} separate load process{'es' if procs > 1 else ''} on the same "
        "machine (uvloop; aiohttp for REST, a connection per caller; grpc.aio for gRPC, "
        f"{params.grpc_connections} connection{'s' if params.grpc_connections > 1 else ''} "
        "per load process, calls spread over them); the stack and the load share the cores",
        "open loop": "request i is due at start + i/rate; accept latency runs from that due "
        "time, so server queueing is not hidden (no coordinated omission); at most "
        f"{params.max_in_flight} in flight, requests due beyond that count as late",
        "closed loop": f"{' and '.join(str(c) for c in params.concurrency)} callers, a row "
        f"each (`@c<callers>`; SendBatch: {params.batch_concurrency} callers, "
        f"{params.batch_size} items per call) sending back to back",
        "saturation": "the highest accepted/s of floor, rest-sat and grpc-sat over their "
        "levels of callers: a closed loop too small to keep the server busy measures the "
        "callers' round trips, not the capacity",
        "duration": f"{params.duration:g} s of load per scenario, then up to "
        f"{params.drain_timeout:g} s for its notifications to settle before the next",
        "accept latency": "request sent → 202 / Send answer, as the client saw it "
        "(SendBatch: per call)",
        "end to end": "notification row created (accepted) → deliver_time reported by "
        "deliveryd (the provider took it), both from the notifications database; "
        "`recorded` in the JSON runs to when the gateway wrote the outcome",
        "delivered/s": "delivered / (last delivery - load start); backlog drain: from the "
        "first delivery to the last; `in load`: deliveries while the load ran / its length "
        "(what the pipeline sustains under that load)",
        "resources": "CPU seconds and peak RSS of each process, sampled every 0.25 s over the "
        "load and settle window; postgres/rabbitmq/redis are CPU only and include any other "
        "client of those servers; `cpu ms/notif`: the CPU of every process but the load "
        "generator, fake providers and callback receiver (the servers included) per "
        "notification accepted "
        "(backlog drain: delivered), so it covers accepting and delivering, except in the "
        "backlog rows, which split them",
        "rejected": f"an authenticated REST send load at {params.flood_send_rate:g}/s "
        f"(open loop), alone (`{REJECTED_ALONE}@<rate>`), then beside a flood of "
        f"{params.flood_rate:g} requests/s the edge must refuse (`{REJECTED_FLOOD}@<rate>`), "
        "sent from a load process of its own from 1 s before the measured load to 1 s after "
        f"it, each a POST of a notification, in turn: {', '.join(params.flood_kinds)} "
        "(no-key: no Authorization header; malformed-key: a key that is not one; "
        "unknown-key: a well-formed key with a new random id each time, which the cache of "
        "unknown ids never answers; bad-json: a live key and a body that is not JSON); "
        "any answer but 401 (400 or 422 for bad-json) fails the run; `--scenarios "
        "rejected,rejected,...` alternates the pair and prints the median p50 added",
        "callbacks": f"a REST send load at {params.callback_rate:g}/s (open loop) with no "
        f"callback endpoint (`{CALLBACKS_OFF}@<rate>`), then with one for the bench's client, "
        "every status change posted to a local receiver answering 204 "
        f"(`{CALLBACKS_ON}@<rate>`); then {params.callback_callers} REST callers back to back "
        f"with it (`{CALLBACKS_ON}@c<callers>`: the capacity left) and after it is deleted "
        f"(`{CALLBACKS_OFF}@c<callers>`), so the rows run off, on, on, off; an on row's window "
        "runs until the receiver has every event; the receiver is watched, not counted",
        "accept stages": "what each scenario added to the gateways' herald_accept_* "
        "histograms (each gateway's own /metrics before and after, summed): runs of the accept "
        "pipeline, items per run, and the mean ms a run spent in each stage (a run that "
        "skipped a stage does not count in its mean)",
    }


def num(value: float | None) -> str:
    """A figure for the table: whole above 10, one decimal below, `-` when absent."""
    if value is None:
        return "-"
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.1f}"


def _lat(row: dict[str, float | None]) -> str:
    return "/".join(num(row[k]) for k in ("p50", "p95", "p99", "max"))


def table(rows: list[Row]) -> str:
    """The scenarios as a fixed-width table, then CPU and peak RSS per process."""
    head = (
        "scenario",
        "method",
        "offered/s",
        "achieved/s",
        "accepted/s",
        "delivered/s",
        "in load",
        "accept ms p50/p95/p99/max",
        "e2e ms p50/p95/p99/max",
        "errors",
    )
    lines = [head]
    for row in rows:
        lines.append(
            (
                row.scenario,
                row.method + (f" c={row.concurrency}" if row.method == "closed loop" else ""),
                num(row.offered_rate),
                num(row.achieved_rate),
                num(row.accepted_per_s),
                num(row.delivered_per_s),
                num(row.delivered_per_s_in_load),
                _lat(row.accept_latency_ms),
                _lat(row.e2e_latency_ms),
                _errors(row),
            )
        )
    out = [_grid(lines)]
    seen = {name for row in rows for name in row.resources}
    names = [n for n in PROCESS_ORDER if n in seen] + sorted(seen - set(PROCESS_ORDER))
    res = [("scenario", *names, "cpu ms/notif")]
    for row in rows:
        cells = []
        for name in names:
            usage = row.resources.get(name)
            if usage is None:
                cells.append("")
                continue
            rss = usage.get("peak_rss_mb")
            cpu = f"{usage['cpu_seconds']:.1f}s"
            cells.append(cpu if rss is None else f"{cpu} {rss:.0f}MB")
        res.append((row.scenario, *cells, num(row.cpu_ms_per_notification)))
    out.append(
        "CPU seconds and peak RSS per process (over load + settle), and CPU ms per "
        "notification (all but the load, fake providers and receiver):"
    )
    out.append(_grid(res))
    return "\n".join(out)


SATURATED = ("floor", "rest-sat", "grpc-sat")


def saturation(rows: list[Row]) -> dict[str, dict[str, Any]]:
    """Per closed-loop scenario, its row with the highest accepted/s (and that figure
    against the floor's highest, when the floor ran)."""
    best: dict[str, Row] = {}
    for row in rows:
        base = closed_loop_scenario(row.scenario)
        if base not in SATURATED or row.accepted_per_s is None:
            continue
        if base not in best or row.accepted_per_s > (best[base].accepted_per_s or 0):
            best[base] = row
    floor = best["floor"].accepted_per_s if "floor" in best else None
    return {
        base: {
            "scenario": row.scenario,
            "concurrency": row.concurrency,
            "accepted_per_s": row.accepted_per_s,
            "accept_p99_ms": row.accept_latency_ms.get("p99"),
            "of_floor": round(row.accepted_per_s / floor, 3)
            if floor and row.accepted_per_s is not None and base != "floor"
            else None,
        }
        for base, row in best.items()
    }


def saturation_lines(summary: dict[str, dict[str, Any]]) -> str:
    """`saturation(rows)` in words, a line per scenario; empty when none ran."""
    lines = []
    for base in SATURATED:
        if base not in summary:
            continue
        seen = summary[base]
        line = (
            f"  {base}: {num(seen['accepted_per_s'])} accepted/s at c={seen['concurrency']} "
            f"(accept p99 {num(seen['accept_p99_ms'])} ms)"
        )
        if seen["of_floor"] is not None:
            line += f", {seen['of_floor']:.0%} of the floor's highest"
        lines.append(line)
    return "\n".join(lines)


def against_floor(rows: list[Row]) -> dict[str, dict[str, Any]]:
    """Per open-loop row of Herald's (rest-rate, grpc-rate) whose rate the floor also ran
    at: both accept latencies, so a latency target reads against what the servers and
    libraries alone give at that offered rate, on this machine."""
    floors = {r.offered_rate: r for r in rows if open_loop_scenario(r.scenario) == FLOOR_RATE}
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        floor = floors.get(row.offered_rate)
        if floor is None or open_loop_scenario(row.scenario) not in OPEN_LOOPS:
            continue
        out[row.scenario] = {
            "offered_rate": row.offered_rate,
            "accept_p50_ms": row.accept_latency_ms.get("p50"),
            "accept_p99_ms": row.accept_latency_ms.get("p99"),
            "floor": floor.scenario,
            "floor_accept_p50_ms": floor.accept_latency_ms.get("p50"),
            "floor_accept_p99_ms": floor.accept_latency_ms.get("p99"),
        }
    return out


def against_floor_lines(summary: dict[str, dict[str, Any]]) -> str:
    """`against_floor(rows)` in words, a line per row; empty when none compares."""
    return "\n".join(
        f"  {name}: accept p50/p99 {num(seen['accept_p50_ms'])}/{num(seen['accept_p99_ms'])} "
        f"ms; {seen['floor']}: {num(seen['floor_accept_p50_ms'])}/"
        f"{num(seen['floor_accept_p99_ms'])} ms"
        for name, seen in summary.items()
    )


def rejected(rows: list[Row]) -> list[dict[str, Any]]:
    """Per rejected-flood row, its authenticated accept latency against the rejected-alone
    row before it at the same rate, and what the flood saw, in run order (`--scenarios
    rejected,rejected` alternates the two, for a host whose other load comes and goes)."""
    alone: dict[float | None, Row] = {}
    out: list[dict[str, Any]] = []
    for row in rows:
        base = open_loop_scenario(row.scenario)
        if base == REJECTED_ALONE:
            alone[row.offered_rate] = row
        if base != REJECTED_FLOOD or row.offered_rate not in alone:
            continue
        before = alone[row.offered_rate]
        flooded, quiet = row.accept_latency_ms.get("p50"), before.accept_latency_ms.get("p50")
        added = round(flooded - quiet, 2) if flooded is not None and quiet is not None else None
        out.append(
            {
                "scenario": row.scenario,
                "offered_rate": row.offered_rate,
                "accept_ms": _three(row.accept_latency_ms),
                "alone": before.scenario,
                "alone_accept_ms": _three(before.accept_latency_ms),
                "p50_added_ms": added,
                "flood": row.notes.get("flood", {}),
            }
        )
    return out


def rejected_lines(summary: list[dict[str, Any]]) -> str:
    """`rejected(rows)` in words, two lines per flooded row, then the median p50 added
    when the scenario ran more than once; empty when it did not run."""
    lines = []
    for seen in summary:
        flood = seen["flood"]
        lines.append(
            f"  {seen['scenario']}: accept p50/p95/p99 {_three_text(seen['accept_ms'])} ms; "
            f"alone ({seen['alone']}) {_three_text(seen['alone_accept_ms'])} ms; p50 "
            f"{_signed(seen['p50_added_ms'])} ms"
        )
        answers = ", ".join(f"{answer}={count}" for answer, count in flood["answers"].items())
        refused = flood["refusal_latency_ms"]
        lines.append(
            f"    flood: {num(flood['offered_rate'])}/s offered, {num(flood['achieved_rate'])}/s "
            f"answered ({answers or 'none'}), refused in p50/p99 {num(refused['p50'])}/"
            f"{num(refused['p99'])} ms"
        )
        wrong = {**flood["unexpected"], **flood["errors"]}
        if wrong:
            missed = ", ".join(f"{what}={count}" for what, count in wrong.items())
            lines.append(f"    NOT REFUSED: {missed}")
        if flood["late"]:
            lines.append(
                f"    flood late={flood['late']} (due beyond the cap on requests in flight)"
            )
    added = [seen["p50_added_ms"] for seen in summary if seen["p50_added_ms"] is not None]
    if len(added) > 1:
        lines.append(
            f"  over {len(added)} pairs: p50 added {_signed(statistics.median(added))} ms "
            f"at the median ({_signed(min(added))} to {_signed(max(added))})"
        )
    return "\n".join(lines)


def callbacks_lines(rows: list[Row]) -> str:
    """Each callbacks-on row against the callbacks-off row of the same load (`@300`, or
    `@c64`), two lines each: what the receiver got, then what an endpoint cost; empty
    when the scenario did not run."""
    lines = []
    for at, row in enumerate(rows):
        base = open_loop_scenario(row.scenario) or closed_loop_scenario(row.scenario)
        if base != CALLBACKS_ON or "callbacks" not in row.notes:
            continue
        # Its pair: the nearest off row of the same load (before it for the open loop,
        # after it for the closed one; `--scenarios callbacks,callbacks` repeats both).
        twin = CALLBACKS_OFF + row.scenario.removeprefix(CALLBACKS_ON)
        offs = [(abs(i - at), i) for i, r in enumerate(rows) if r.scenario == twin]
        off = rows[min(offs)[1]] if offs else None
        got = row.notes["callbacks"]
        lines.append(
            f"  {row.scenario}: {got['events']} of {got['expected']} events received "
            f"({got['received']} posts), status change → receiver p50/p95/p99 "
            f"{_three_text(_three(got['lag_ms']))} ms"
        )
        if off is None:
            continue
        costs = []
        for seen in (off, row):
            gateways = sum(
                float(u["cpu_seconds"])
                for n, u in seen.resources.items()
                if n.startswith("gateway")
            )
            posting = float(seen.resources.get("callbacks", {}).get("cpu_seconds", 0.0))
            per = 1000 / seen.accepted if seen.accepted else None
            costs.append(
                (
                    seen.accepted_per_s,
                    seen.cpu_ms_per_notification,
                    None if per is None else gateways * per,
                    None if per is None else posting * per,
                )
            )
        receiver = row.resources.get("receiver", {}).get("cpu_seconds")
        (a_off, c_off, g_off, p_off), (a_on, c_on, g_on, p_on) = costs
        lines.append(
            f"    against {off.scenario}: accepted/s {num(a_off)} → {num(a_on)}, CPU ms/notif "
            f"{num(c_off)} → {num(c_on)}, the gateways' {num(g_off)} → {num(g_on)}, the "
            f"callbacks process's {num(p_off)} → {num(p_on)}; the receiver (not counted) "
            f"{num(receiver)} s"
        )
    return "\n".join(lines)


def _three(latency: dict[str, float | None]) -> dict[str, float | None]:
    return {k: latency.get(k) for k in ("p50", "p95", "p99")}


def _three_text(latency: dict[str, float | None]) -> str:
    return "/".join(num(v) for v in latency.values())


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


def stages(rows: list[Row]) -> str:
    """The gateway's accept pipeline per scenario (`bench.stages`); empty if not measured."""
    lines = [("scenario", "runs", "items/run", *(f"{s} ms" for s in STAGES))]
    for row in rows:
        seen = row.notes.get("accept_stages")
        if not seen or not seen["runs"]:
            continue
        means = [num(seen["stages"][s]["mean_ms"]) for s in STAGES]
        lines.append((row.scenario, str(seen["runs"]), num(seen["items_per_run"]), *means))
    return _grid(lines) if len(lines) > 1 else ""


def _errors(row: Row) -> str:
    parts = [f"{name}={count}" for name, count in sorted(row.errors.items())]
    if row.late:
        parts.append(f"late={row.late}")
    return ", ".join(parts) or "0"


def _grid(lines: Sequence[Sequence[str]]) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    text = []
    for number, line in enumerate(lines):
        cells = [
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ]
        text.append("  ".join(cells).rstrip())
        if number == 0:
            text.append("  ".join("-" * w for w in widths))
    return "\n".join(text)


def profiles(rows: list[Row], top: int = 10) -> str:
    """The functions with the most own time per profiled process and scenario (if any)."""
    out: list[str] = []
    for row in rows:
        for name, summary in row.notes.get("profile", {}).items():
            out.append(f"{row.scenario} / {name}: {summary['samples']} on-CPU samples, own time:")
            out += [f"  {pct:5.1f}%  {fn}" for fn, pct in summary["top_own_pct"][:top]]
    return "\n".join(out)


def header(info: dict[str, Any], how: dict[str, str]) -> str:
    lines = [
        f"machine: {info['nproc']} cores ({info['cpu_model'] or 'unknown CPU'}), "
        f"{info['memory_mb']} MB memory, load average at start "
        f"{'/'.join(str(x) for x in info['load_average_at_start'])}, Python {info['python']}",
        "method:",
    ]
    lines += [f"  {key}: {value}" for key, value in how.items()]
    return "\n".join(lines)


def text(
    doc: dict[str, Any],
    rows: list[Row],
    info: dict[str, Any],
    how: dict[str, str],
    *,
    profiled: bool,
) -> str:
    """What a run prints: the machine and method, the tables, the summaries that apply."""
    out = [header(info, how), "", table(rows)]
    sections = (
        (
            "Saturation, the highest over the levels of callers:",
            saturation_lines(doc["saturation"]),
        ),
        (
            "Open loop, against the floor at the same offered rate:",
            against_floor_lines(doc["against_floor"]),
        ),
        (
            "Rejected traffic, the authenticated load beside the flood against it alone:",
            rejected_lines(doc["rejected"]),
        ),
        (
            "Callbacks, an endpoint against none (the window runs until every event came):",
            callbacks_lines(rows),
        ),
        ("Accept pipeline in the gateways (summed over them), mean per run:", stages(rows)),
    )
    out += [f"{title}\n{body}" for title, body in sections if body]
    if profiled:
        out.append("\npy-spy, top functions by own time:\n" + profiles(rows))
    return "\n".join(out) + "\n"


def document(
    *,
    started: str,
    finished: str,
    params: Params,
    info: dict[str, Any],
    rows: list[Row],
    run_id: str,
) -> dict[str, Any]:
    return {
        "started": started,
        "finished": finished,
        "run_id": run_id,
        "machine": info,
        "method": method(params),
        "parameters": asdict(params),
        "scenarios": [asdict(row) for row in rows],
        "saturation": saturation(rows),
        "against_floor": against_floor(rows),
        "rejected": rejected(rows),
    }


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2, default=str))


def say(text: str) -> None:
    """Progress, on stderr: stdout carries only the report."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
