"""Quiet hours: the window's end as an instant, in real zones, across daylight saving."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.timing.quiet import QuietChoice, QuietPolicy, QuietWindow

LONDON = ZoneInfo("Europe/London")
NIGHT = QuietWindow.parse("22:00-07:00")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "ends"),
    [
        # Spring forward (2025-03-30 01:00 UTC): 07:00 BST the next morning is 06:00 UTC.
        ("2025-03-29T23:00:00", "2025-03-30T06:00:00"),
        ("2025-03-30T00:30:00", "2025-03-30T06:00:00"),  # 00:30 GMT, before the change
        ("2025-03-30T02:30:00", "2025-03-30T06:00:00"),  # 03:30 BST, after it
        # Fall back (2025-10-26 01:00 UTC): 07:00 GMT is 07:00 UTC, an hour later than
        # the 06:00 UTC the window would end at in summer.
        ("2025-10-25T21:30:00", "2025-10-26T07:00:00"),  # 22:30 BST
        (
            "2025-10-26T01:30:00",
            "2025-10-26T07:00:00",
        ),  # 01:30 GMT, the repeated hour's second pass
        # An ordinary summer night, and one in winter.
        ("2025-07-01T21:00:00", "2025-07-02T06:00:00"),  # 22:00 BST: the window starts
        ("2025-01-15T05:59:00", "2025-01-15T07:00:00"),
    ],
)
def test_a_window_across_a_daylight_saving_change_ends_at_the_right_instant(
    now: str, ends: str
) -> None:
    assert NIGHT.ends_at(utc(now), LONDON) == utc(ends)


@pytest.mark.parametrize(
    "now",
    ["2025-03-30T06:00:00", "2025-07-01T20:59:00", "2025-10-26T07:00:00", "2025-01-15T12:00:00"],
)
def test_outside_the_window_nothing_waits(now: str) -> None:
    assert NIGHT.ends_at(utc(now), LONDON) is None


def test_a_window_within_one_day_and_an_empty_one() -> None:
    lunch = QuietWindow.parse("12:00-13:30")
    assert lunch.ends_at(utc("2025-01-15T12:10:00"), LONDON) == utc("2025-01-15T13:30:00")
    assert lunch.ends_at(utc("2025-01-15T13:30:00"), LONDON) is None
    assert QuietWindow.parse("00:00-00:00").ends_at(utc("2025-01-15T03:00:00"), LONDON) is None


def test_an_end_in_the_skipped_hour_is_taken_past_the_gap() -> None:
    # 01:30 does not exist in London on 2025-03-30: read with the offset before the change
    # (GMT) it is 01:30 UTC, 02:30 BST: just past the gap, never inside it.
    early = QuietWindow.parse("23:00-01:30")
    assert early.ends_at(utc("2025-03-29T23:30:00"), LONDON) == utc("2025-03-30T01:30:00")


def test_each_zone_is_its_own() -> None:
    sao_paulo = ZoneInfo("America/Sao_Paulo")  # UTC-3, no daylight saving since 2019
    assert NIGHT.ends_at(utc("2025-03-30T02:00:00"), sao_paulo) == utc("2025-03-30T10:00:00")


def test_the_policy_holds_marketing_and_lets_the_caller_choose() -> None:
    policy = QuietPolicy(waiting_types={"marketing"}, default=NIGHT)
    at = utc("2025-01-15T23:00:00")
    held = policy.held_until(
        at=at, message_type="marketing", choice="", window=None, time_zone="Europe/London"
    )
    assert held == utc("2025-01-16T07:00:00")
    cases: list[tuple[str, QuietChoice, datetime | None]] = [
        ("transactional", "", None),
        ("alert", "", None),
        ("marketing", "bypass", None),
        ("transactional", "respect", utc("2025-01-16T07:00:00")),
    ]
    for message_type, choice, expected in cases:
        got = policy.held_until(
            at=at, message_type=message_type, choice=choice, window=None, time_zone="Europe/London"
        )
        assert got == expected, (message_type, choice)
    # The user's own window wins over the default; a window of equal times is none.
    own = QuietWindow.parse("21:00-06:00")
    assert policy.held_until(
        at=at, message_type="marketing", choice="", window=own, time_zone="Europe/London"
    ) == utc("2025-01-16T06:00:00")
    assert (
        policy.held_until(
            at=at,
            message_type="marketing",
            choice="",
            window=QuietWindow.parse("07:00-07:00"),
            time_zone="Europe/London",
        )
        is None
    )
