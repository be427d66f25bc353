"""The rejected scenario's logic that needs no stack: which flood answers fail the run, how
a flooded row reads against the same load alone, and what its knobs change."""

from __future__ import annotations

from typing import Any

import pytest

from bench.__main__ import parse
from bench.flood import EXPECTED, unexpected
from bench.measure import percentiles
from bench.model import REFUSALS
from bench.report import rejected, rejected_lines
from tests.bench.rows import row as _row


def test_every_kind_of_refusal_has_its_expected_answers() -> None:
    assert set(EXPECTED) == set(REFUSALS)


def test_only_refusals_pass() -> None:
    assert unexpected({"no-key 401": 3, "malformed-key 401": 1, "bad-json 400": 2}) == {}
    assert unexpected({"bad-json 422": 1, "unknown-key 401": 5}) == {}
    wrong = {
        "no-key 202": 1,  # accepted without a key
        "unknown-key 503": 2,  # the key lookup failed
        "malformed-key 400": 1,  # the body was parsed before the key was checked
        "bad-json 401": 1,  # a live key was refused
        "something 401": 1,
    }
    assert unexpected({**wrong, "no-key 401": 7}) == wrong


def _flood(answers: dict[str, int], errors: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "offered_rate": 365.0,
        "achieved_rate": 364.5,
        "late": 0,
        "answers": answers,
        "errors": errors or {},
        "unexpected": unexpected(answers),
        "refusal_latency_ms": percentiles([1.0, 2.0]),
    }


def test_a_flooded_row_reads_against_the_same_load_alone_before_it() -> None:
    refused = _flood({"no-key 401": 10, "bad-json 400": 10})
    rows = [
        _row("rejected-alone@100", 100, 20.0),
        _row("rejected-flood@100", 100, 23.5, {"flood": refused}),
        _row("rejected-alone@200", 200, 40.0),
        _row("rejected-flood@200", 200, 39.0, {"flood": refused}),
    ]
    summary = rejected(rows)
    assert [seen["scenario"] for seen in summary] == ["rejected-flood@100", "rejected-flood@200"]
    assert [seen["alone"] for seen in summary] == ["rejected-alone@100", "rejected-alone@200"]
    assert [seen["p50_added_ms"] for seen in summary] == [3.5, -1.0]
    text = rejected_lines(summary)
    assert "rejected-flood@100: accept p50/p95/p99 24/24/24 ms" in text
    assert "alone (rejected-alone@100) 20/20/20 ms; p50 +3.5 ms" in text
    assert "365/s offered, 364/s answered (no-key 401=10, bad-json 400=10)" in text
    assert "NOT REFUSED" not in text
    assert "over 2 pairs: p50 added +1.2 ms at the median (-1.0 to +3.5)" in text


def test_a_scenario_run_again_alternates_alone_and_flooded() -> None:
    refused = _flood({"no-key 401": 10})
    rows = [
        _row("rejected-alone@100", 100, 20.0),
        _row("rejected-flood@100", 100, 26.0, {"flood": refused}),
        _row("rejected-alone@100", 100, 30.0),
        _row("rejected-flood@100", 100, 31.0, {"flood": refused}),
    ]
    summary = rejected(rows)
    assert [seen["p50_added_ms"] for seen in summary] == [6.0, 1.0]
    assert "over 2 pairs: p50 added +3.5 ms at the median (+1.0 to +6.0)" in rejected_lines(summary)


def test_an_answer_that_is_not_a_refusal_is_named() -> None:
    flood = _flood({"no-key 401": 10, "unknown-key 503": 2}, {"ServerDisconnectedError": 1})
    rows = [
        _row("rejected-alone@100", 100, 20.0),
        _row("rejected-flood@100", 100, 30.0, {"flood": flood}),
    ]
    text = rejected_lines(rejected(rows))
    assert "NOT REFUSED: unknown-key 503=2, ServerDisconnectedError=1" in text


def test_the_floor_also_runs_at_the_rejected_scenarios_rate() -> None:
    both, _ = parse(["--scenarios", "floor,rejected", "--rest-rates", "300,100"])
    assert both.floor_rates == (300.0, 100.0)
    floor_only, _ = parse(["--scenarios", "floor", "--rest-rates", "300"])
    assert floor_only.floor_rates == (300.0,)
    flood, _ = parse(["--flood-kinds", "unknown-key", "--flood-rate", "1000"])
    assert (flood.flood_kinds, flood.flood_rate) == (("unknown-key",), 1000)
    with pytest.raises(SystemExit):
        parse(["--flood-kinds", "no-key,nonsense"])
    with pytest.raises(SystemExit):
        parse(["--flood-rate", "0"])
