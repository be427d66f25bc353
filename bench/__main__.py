"""`python -m bench` (`make bench`): start an isolated Herald stack, run the scenarios,
print the table and write `bench/results/<timestamp>.json`. `--help` lists the knobs.
"""

from __future__ import annotations

import argparse
import multiprocessing
import signal
import sys
import traceback
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from bench import report
from bench.model import REFUSALS, SCENARIOS, Params
from bench.processes import ROOT, Servers
from bench.report import say
from bench.scenarios import Bench
from bench.stack import Stack

RESULTS = ROOT / "bench" / "results"


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def _joined(values: tuple[float, ...]) -> str:
    return ",".join(f"{v:g}" for v in values)


def _counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: want whole numbers of callers, e.g. 64,256")
    return counts


def _names(text: str) -> tuple[str, ...]:
    names = tuple(x.strip() for x in text.split(",") if x.strip())
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown scenario {', '.join(unknown)} (known: {', '.join(SCENARIOS)})"
        )
    return names


def _refusals(text: str) -> tuple[str, ...]:
    kinds = tuple(x.strip() for x in text.split(",") if x.strip())
    unknown = [k for k in kinds if k not in REFUSALS]
    if not kinds or unknown:
        raise argparse.ArgumentTypeError(
            f"{text!r}: want kinds of refused requests among {', '.join(REFUSALS)}"
        )
    return kinds


def _setting(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name.startswith("HERALD_") or name.startswith("HERALD_BENCH_"):
        raise argparse.ArgumentTypeError(f"{text!r}: want HERALD_NAME=VALUE (a Herald setting)")
    return name, value


def parse(argv: Sequence[str]) -> tuple[Params, argparse.Namespace]:
    d = Params()
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Throughput and latency of a whole Herald stack on this machine.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--scenarios",
        type=_names,
        default=",".join(d.scenarios),
        help="comma-separated, run in order",
    )
    add("--duration", type=float, default=d.duration, help="seconds of load per scenario")
    add("--rest-rates", type=_floats, default=_joined(d.rest_rates), help="offered REST POSTs/s")
    add("--grpc-rates", type=_floats, default=_joined(d.grpc_rates), help="offered gRPC Sends/s")
    add(
        "--concurrency",
        type=_counts,
        default=",".join(str(c) for c in d.concurrency),
        help="closed-loop callers of floor, rest-sat and grpc-sat; a row per level",
    )
    add("--max-in-flight", type=int, default=d.max_in_flight, help="open-loop cap")
    add("--batch-size", type=int, default=d.batch_size, help="items per SendBatch")
    add("--batch-concurrency", type=int, default=d.batch_concurrency, help="SendBatch callers")
    add("--backlog", type=int, default=d.backlog, help="notifications queued, then drained")
    add("--failover-rate", type=float, default=d.failover_rate, help="offered POSTs/s")
    add(
        "--callback-rate",
        type=float,
        default=d.callback_rate,
        help="offered POSTs/s of the callbacks scenario, with and without an endpoint",
    )
    add(
        "--callback-callers",
        type=int,
        default=d.callback_callers,
        help="REST callers of the callbacks scenario's closed loop, with and without one",
    )
    add("--fail-ratio", type=float, default=d.fail_ratio, help="share of SendGrid sends failing")
    add(
        "--failover-breaker-threshold",
        type=int,
        default=d.failover_breaker_threshold,
        help="HERALD_DELIVERYD_BREAKER_THRESHOLD in the failover scenario (high: every "
        "message pays for the failing provider; 5, the default, lets the breaker open)",
    )
    add(
        "--flood-send-rate",
        type=float,
        default=d.flood_send_rate,
        help="authenticated REST POSTs/s of the rejected scenario, alone and beside the flood",
    )
    add(
        "--flood-rate",
        type=float,
        default=d.flood_rate,
        help="requests/s the rejected scenario's flood sends, all of which must be refused",
    )
    add(
        "--flood-kinds",
        type=_refusals,
        default=",".join(d.flood_kinds),
        help="what the flood sends, in turn",
    )
    add("--users", type=int, default=d.users, help="users notifications are spread over")
    add("--load-procs", type=int, default=d.load_procs, help="load generator processes")
    add(
        "--grpc-connections",
        type=int,
        default=d.grpc_connections,
        help="gRPC client connections per load process (calls spread over them)",
    )
    add(
        "--gateways",
        type=int,
        default=d.gateways,
        help="gateway processes sharing its ports (as `make up GATEWAYS=N`)",
    )
    add("--drain-timeout", type=float, default=d.drain_timeout, help="seconds to settle")
    add("--backlog-timeout", type=float, default=d.backlog_timeout, help="fill/drain limit")
    add("--warmup", type=float, default=d.warmup, help="unmeasured seconds at start")
    add(
        "--set",
        dest="settings",
        type=_setting,
        action="append",
        default=[],
        metavar="HERALD_NAME=VALUE",
        help="a Herald setting for every process of the stack (repeatable), e.g. "
        "HERALD_USER_CACHE_SECONDS=0 to compare a run without the local user cache",
    )
    add("--profile", type=Path, default=None, help="py-spy the stack into this folder")
    add("--profile-native", action="store_true", help="py-spy --native (C frames too)")
    add("--log-level", default="INFO", help="HERALD_LOG_LEVEL of the stack's processes")
    add("--output", type=Path, default=None, help="JSON path (bench/results/<timestamp>.json)")
    args = parser.parse_args(argv)
    if args.gateways < 1:
        parser.error("--gateways: at least 1")
    if args.grpc_connections < 1:
        parser.error("--grpc-connections: at least 1")
    if args.flood_send_rate <= 0 or args.flood_rate <= 0:
        parser.error("--flood-send-rate and --flood-rate: more than 0")
    params = Params(
        scenarios=args.scenarios,
        duration=args.duration,
        rest_rates=args.rest_rates,
        grpc_rates=args.grpc_rates,
        concurrency=args.concurrency,
        max_in_flight=args.max_in_flight,
        batch_size=args.batch_size,
        batch_concurrency=args.batch_concurrency,
        backlog=args.backlog,
        failover_rate=args.failover_rate,
        callback_rate=args.callback_rate,
        callback_callers=args.callback_callers,
        fail_ratio=args.fail_ratio,
        failover_breaker_threshold=args.failover_breaker_threshold,
        flood_send_rate=args.flood_send_rate,
        flood_rate=args.flood_rate,
        flood_kinds=args.flood_kinds,
        users=args.users,
        load_procs=args.load_procs,
        grpc_connections=args.grpc_connections,
        gateways=args.gateways,
        settings=tuple(args.settings),
        drain_timeout=args.drain_timeout,
        backlog_timeout=args.backlog_timeout,
        warmup=args.warmup,
        profile=args.profile,
        profile_native=args.profile_native,
    )
    return params, args


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    params, args = parse(sys.argv[1:] if argv is None else argv)
    now = datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    output: Path = args.output or RESULTS / f"{stamp}.json"
    logs = output.with_name(output.stem + "-logs")
    signal.signal(signal.SIGTERM, _terminate)
    info = report.machine()
    how = report.method(params)
    stack = Stack(
        Servers.from_env(),
        logs,
        log_level=args.log_level,
        gateways=params.gateways,
        settings=dict(params.settings),
    )
    failures: list[str] = []
    bench: Bench | None = None
    pool = ProcessPoolExecutor(
        max_workers=params.load_procs, mp_context=multiprocessing.get_context("spawn")
    )
    try:
        say(f"bench run {stack.run_id}: starting the stack (logs in {logs})")
        stack.start()
        seed = stack.seed(params.users)
        bench = Bench(stack, seed, params, pool)
        bench.warm_up()
        for scenario in params.scenarios:
            say(f"scenario {scenario} ...")
            try:
                for row in bench.run(scenario):
                    say(
                        f"  {row.scenario}: {report.num(row.accepted_per_s)} accepted/s, "
                        f"{report.num(row.delivered_per_s)} delivered/s, "
                        f"errors {row.error_count}"
                    )
            except Exception:
                failures.append(f"{scenario}: {traceback.format_exc()}")
                say(f"  {scenario} failed:\n{traceback.format_exc()}")
    except KeyboardInterrupt:
        failures.append("interrupted")
        say("interrupted: tearing down")
    finally:
        pool.shutdown(cancel_futures=True)
        if bench is not None:
            bench.close()
        stack.close()
    rows = bench.rows if bench is not None else []
    doc = report.document(
        started=now.isoformat(),
        finished=datetime.now(UTC).isoformat(),
        params=params,
        info=info,
        rows=rows,
        run_id=stack.run_id,
    )
    doc["failures"] = failures
    report.write_json(output, doc)
    sys.stdout.write(report.text(doc, rows, info, how, profiled=params.profile is not None))
    sys.stdout.write(f"\nresults: {output}\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
