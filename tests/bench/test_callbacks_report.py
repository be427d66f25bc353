"""The callbacks scenario's report without a stack: each on row is read against the off
row of its own load, the nearest one when the scenario ran more than once."""

from __future__ import annotations

from bench.report import callbacks_lines
from tests.bench.rows import row as _row

POSTED = {"events": 1, "expected": 1, "received": 1, "lag_ms": {"p50": 1.0}}


def test_each_on_row_reads_against_the_nearest_off_row_of_its_load() -> None:
    # Two runs of the scenario: off, on (open loop), on, off (closed loop), twice.
    rows = [
        _row("callbacks-off@200", 199, 10),
        _row("callbacks-on@200", 197, 12, {"callbacks": POSTED}),
        _row("callbacks-on@c64", 291, 20, {"callbacks": POSTED}),
        _row("callbacks-off@c64", 351, 18),
        _row("callbacks-off@200", 198, 10),
        _row("callbacks-on@200", 196, 12, {"callbacks": POSTED}),
        _row("callbacks-on@c64", 336, 20, {"callbacks": POSTED}),
        _row("callbacks-off@c64", 383, 18),
    ]
    against = [line.strip() for line in callbacks_lines(rows).splitlines() if "against" in line]
    assert [line.split(",")[0] for line in against] == [
        "against callbacks-off@200: accepted/s 199 → 197",
        "against callbacks-off@c64: accepted/s 351 → 291",
        "against callbacks-off@200: accepted/s 198 → 196",
        "against callbacks-off@c64: accepted/s 383 → 336",
    ]
