"""A few seconds of `python -m bench`: every scenario runs and its results are well formed.

Speed is not asserted here (it depends on the machine and on what else runs on it); this
only keeps the harness from rotting: the stack starts and is torn down, every scenario
produces a row with every field, and a small run delivers everything it accepted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bench.flood import EXPECTED
from bench.model import NOT_MEASURED, REFUSALS, SCENARIOS, Row
from tests.conftest import TEST_DB_POOL_SIZE
from tests.support.infra import POSTGRES_URL

# Runs the whole bench stack (its own servers check and isolation).
pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
LATENCY_KEYS = {"p50", "p95", "p99", "max"}
PROCESSES = {
    "gateway",
    "gateway-2",
    "callbacks",
    "userd",
    "templated",
    "deliveryd-email",
    "deliveryd-sms",
    "deliveryd-push",
}


def run_bench(output: Path, *args: str) -> dict[str, Any]:
    """`python -m bench` with `args`: its JSON document, and what it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--output", str(output)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    doc: dict[str, Any] = json.loads(output.read_text())
    doc["stdout"] = done.stdout
    doc["logs"] = output.with_name(output.stem + "-logs")
    return doc


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_bench(
        tmp_path_factory.mktemp("bench") / "smoke.json",
        *("--scenarios", ",".join(SCENARIOS)),
        *("--duration", "1", "--rest-rates", "20", "--grpc-rates", "20"),
        *("--concurrency", "2,4", "--batch-size", "10", "--batch-concurrency", "2"),
        *("--backlog", "200", "--failover-rate", "20", "--users", "3", "--warmup", "0.5"),
        *("--drain-timeout", "30", "--backlog-timeout", "30"),
        *("--gateways", "2", "--flood-send-rate", "20", "--flood-rate", "40"),
        *("--callback-rate", "20", "--callback-callers", "4"),
        # One run serves every test here (a run is a whole stack's start): the cache off
        # shows a setting given with --set reaching the stack.
        *("--set", "HERALD_USER_CACHE_SECONDS=0"),
        # Beside the other workers' stacks, PostgreSQL's 100 connections are shared: the
        # same pool size the suite's own gateways use (tests/conftest.py).
        *("--set", f"HERALD_GATEWAY_DB_POOL_SIZE={TEST_DB_POOL_SIZE}"),
    )


@pytest.mark.timeout(240)
def test_every_scenario_has_a_complete_row(results: dict[str, Any]) -> None:
    rows = {row["scenario"]: row for row in results["scenarios"]}
    assert set(rows) == {
        "floor@c2",
        "floor@c4",
        "floor-rate@20",
        "rest-rate@20",
        "rest-sat@c2",
        "rest-sat@c4",
        "grpc-rate@20",
        "grpc-sat@c2",
        "grpc-sat@c4",
        "batch",
        "backlog-fill",
        "backlog-drain",
        "failover@20",
        "rejected-alone@20",
        "rejected-flood@20",
        "callbacks-off@20",
        "callbacks-on@20",
        "callbacks-on@c4",
        "callbacks-off@c4",
    }
    fields = set(Row.__dataclass_fields__)
    for name, row in rows.items():
        assert set(row) == fields, name
        for key in ("accept_latency_ms", "e2e_latency_ms", "e2e_recorded_latency_ms"):
            assert set(row[key]) == LATENCY_KEYS, (name, key)
        # The floor is not Herald: only its own process (and the servers) are watched.
        floor = name.startswith(("floor@", "floor-rate@"))
        watched = {"floor"} if floor else PROCESSES - {"deliveryd-email"}
        assert watched <= set(row["resources"]), name
        for usage in row["resources"].values():
            assert usage["cpu_seconds"] >= 0
    assert results["failures"] == []
    assert results["machine"]["nproc"] >= 1
    assert {"open loop", "closed loop", "end to end"} <= set(results["method"])
    assert "make up GATEWAYS=2" in results["method"]["stack"]
    assert "8 connections per load process" in results["method"]["load"]
    # Two gateways share the HTTP port: the stages are read from each one's own /metrics
    # and summed, so every accepted item is counted whichever gateway took it.
    for name, row in rows.items():
        if name.startswith(("rest-", "grpc-", "batch", "failover", "rejected-", "callbacks-")):
            seen = row["notes"]["accept_stages"]
            assert seen["runs"] > 0, name
            assert seen["items_per_run"] * seen["runs"] == pytest.approx(
                row["accepted"], abs=0.5 * seen["runs"]
            ), name
    assert "Accept pipeline in the gateways (summed over them), mean per run:" in results["stdout"]
    assert "bench/floor.py" in rows["floor@c4"]["notes"]["system"]
    assert rows["floor-rate@20"]["method"] == "open loop"
    assert rows["floor-rate@20"]["offered_rate"] == 20
    # With an endpoint registered, every status change reached the receiver, once each.
    posted = rows["callbacks-on@20"]["notes"]["callbacks"]
    assert posted["events"] == posted["expected"] == rows["callbacks-on@20"]["accepted"] > 0
    assert posted["lag_ms"]["p50"] > 0
    # The receiver shares the machine: watched in both rows, not counted as Herald's.
    for name in ("callbacks-off@20", "callbacks-on@20"):
        assert rows[name]["resources"]["receiver"]["cpu_seconds"] >= 0, name
    got = f"callbacks-on@20: {posted['events']} of {posted['expected']} events received"
    assert got in results["stdout"]
    # Then callers back to back, with the endpoint and after it went: the receiver counts
    # the closed loop's events alone, and each on row is read against its own off row.
    closed = rows["callbacks-on@c4"]["notes"]["callbacks"]
    assert closed["events"] == closed["expected"] == rows["callbacks-on@c4"]["accepted"] > 0
    assert rows["callbacks-on@c4"]["method"] == rows["callbacks-off@c4"]["method"]
    assert "callbacks" not in rows["callbacks-off@c4"]["notes"]
    assert "against callbacks-off@20: accepted/s" in results["stdout"]
    assert "against callbacks-off@c4: accepted/s" in results["stdout"]
    # The callbacks process posted them: its CPU is Herald's, in the row and its column.
    assert rows["callbacks-on@20"]["resources"]["callbacks"]["cpu_seconds"] > 0
    assert "callbacks" not in NOT_MEASURED
    assert "the callbacks process's" in results["stdout"]


@pytest.mark.timeout(240)
def test_open_loops_read_against_the_floor_at_their_rate(results: dict[str, Any]) -> None:
    rows = {row["scenario"]: row for row in results["scenarios"]}
    floor = rows["floor-rate@20"]["accept_latency_ms"]
    compared = results["against_floor"]
    assert set(compared) == {
        "rest-rate@20",
        "grpc-rate@20",
        "rejected-alone@20",
        "rejected-flood@20",
        "callbacks-off@20",
        "callbacks-on@20",
    }
    for name, seen in compared.items():
        assert seen["floor"] == "floor-rate@20", name
        assert seen["offered_rate"] == rows[name]["offered_rate"] == 20, name
        assert seen["accept_p99_ms"] == rows[name]["accept_latency_ms"]["p99"], name
        assert (seen["floor_accept_p50_ms"], seen["floor_accept_p99_ms"]) == (
            floor["p50"],
            floor["p99"],
        ), name
    assert "Open loop, against the floor at the same offered rate:" in results["stdout"]
    assert "floor-rate@20: " in results["stdout"]


@pytest.mark.timeout(240)
def test_saturation_is_the_highest_level_of_callers(results: dict[str, Any]) -> None:
    rows = {row["scenario"]: row for row in results["scenarios"]}
    peaks = results["saturation"]
    assert set(peaks) == {"floor", "rest-sat", "grpc-sat"}
    for base, peak in peaks.items():
        levels = [rows[f"{base}@c2"], rows[f"{base}@c4"]]
        best = max(levels, key=lambda row: row["accepted_per_s"])
        assert peak["scenario"] == best["scenario"], base
        assert peak["concurrency"] == best["concurrency"], base
        assert peak["accepted_per_s"] == best["accepted_per_s"], base
    floor = peaks["floor"]["accepted_per_s"]
    assert peaks["floor"]["of_floor"] is None
    for base in ("rest-sat", "grpc-sat"):
        expected = round(peaks[base]["accepted_per_s"] / floor, 3)
        assert peaks[base]["of_floor"] == expected, base
    assert "Saturation, the highest over the levels of callers:" in results["stdout"]
    assert "of the floor's highest" in results["stdout"]


@pytest.mark.timeout(240)
def test_a_small_run_delivers_everything_it_accepted(results: dict[str, Any]) -> None:
    for row in results["scenarios"]:
        name = row["scenario"]
        if name == "backlog-fill":
            assert row["accepted"] == 200
            assert row["notes"]["email_queue_depth_after_fill"] == 200
            continue
        assert row["error_count"] == 0, (name, row["errors"])
        assert row["delivered"] > 0, name
        assert row["e2e_latency_ms"]["p50"] is not None, name
        if name == "backlog-drain":
            assert row["delivered"] == 200
            continue
        assert row["requests"] > 0 and row["ok"] > 0, name
        assert row["accepted"] > 0 and row["accepted_per_s"] > 0, name
        assert row["accept_latency_ms"]["p50"] is not None, name
        assert row["delivered"] == row["accepted"], name
        system = "floor" if name.startswith(("floor@", "floor-rate@")) else "gateway"
        assert row["resources"][system]["peak_rss_mb"] > 0, name
    failover = next(r for r in results["scenarios"] if r["scenario"].startswith("failover"))
    assert set(failover["notes"]["delivered_by_provider"]) <= {"sendgrid", "sandbox"}
    assert failover["notes"]["fake_sendgrid"]["requests"] >= failover["delivered"]


@pytest.mark.timeout(240)
def test_cpu_per_notification_leaves_out_the_load_and_fake_providers(
    results: dict[str, Any],
) -> None:
    rows = {row["scenario"]: row for row in results["scenarios"]}
    for name, row in rows.items():
        count = row["delivered"] if name == "backlog-drain" else row["accepted"]
        measured = {k: u for k, u in row["resources"].items() if k not in NOT_MEASURED}
        cpu = sum(u["cpu_seconds"] for u in measured.values())
        seen = (name, row["cpu_ms_per_notification"], count, measured)
        assert row["cpu_ms_per_notification"] == round(cpu * 1000 / count, 2), seen
        assert row["cpu_ms_per_notification"] > 0, seen
    assert "fake-sendgrid" in rows["failover@20"]["resources"]
    assert "load" in rows["rest-rate@20"]["resources"]
    assert "flood" in rows["rejected-flood@20"]["resources"]
    assert "cpu ms/notif" in results["stdout"]


@pytest.mark.timeout(240)
def test_the_flood_is_refused_beside_an_authenticated_load(results: dict[str, Any]) -> None:
    [seen] = results["rejected"]
    assert seen["scenario"] == "rejected-flood@20"
    assert seen["alone"] == "rejected-alone@20"
    rows = {row["scenario"]: row for row in results["scenarios"]}
    assert seen["accept_ms"]["p50"] == rows["rejected-flood@20"]["accept_latency_ms"]["p50"]
    flood = seen["flood"]
    assert flood["offered_rate"] == 40
    assert flood["achieved_rate"] > 0
    assert flood["unexpected"] == {} and flood["errors"] == {}
    # Every kind was sent, and each got the refusal it must get.
    kinds = {answer.partition(" ")[0] for answer in flood["answers"]}
    assert kinds == set(REFUSALS)
    for answer in flood["answers"]:
        kind, _, status = answer.partition(" ")
        assert int(status) in EXPECTED[kind], answer
    assert sum(flood["answers"].values()) == flood["requests"]
    assert "Rejected traffic, the authenticated load beside the flood" in results["stdout"]


@pytest.mark.timeout(240)
def test_the_table_is_printed_and_the_stack_is_gone(results: dict[str, Any]) -> None:
    out = results["stdout"]
    assert "machine:" in out and "method:" in out and "accept ms p50/p95/p99/max" in out
    run = results["run_id"]
    with psycopg.connect(f"{POSTGRES_URL}/postgres") as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_database WHERE starts_with(datname, %s)",
            (f"herald_bench_{run}_",),
        ).fetchone()
    assert left == (0,)
    vhosts = subprocess.run(
        ["rabbitmqctl", "-q", "list_vhosts"], capture_output=True, text=True, check=True
    ).stdout
    assert f"herald-bench-{run}" not in vhosts


def test_each_stage_is_timed_and_a_setting_given_with_set_reaches_the_stack(
    results: dict[str, Any],
) -> None:
    """Each stage of the accept pipeline is timed (summed over the two gateways); a
    setting given with --set reaches every gateway and the method."""
    assert "with HERALD_USER_CACHE_SECONDS=0" in results["method"]["stack"]
    for process in ("gateway", "gateway-2", "deliveryd-email"):
        log = (results["logs"] / f"{process}.log").read_text()
        assert '"event":"serving"' in log, process
        assert "user cache subscribed" not in log, process  # off: never subscribes
    for name in ("rest-sat@c4", "batch"):
        seen = next(r for r in results["scenarios"] if r["scenario"] == name)["notes"]
        for stage in ("users", "prepare", "store", "publish"):
            timed = seen["accept_stages"]["stages"][stage]
            assert timed["runs"] > 0, (name, stage)
            assert timed["mean_ms"] > 0, (name, stage)
