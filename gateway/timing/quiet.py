"""Quiet hours: a daily window in the user's time zone when messages that respect it wait.

The window is wall-clock times ("22:00"-"07:00"); a start after the end spans midnight,
a start equal to the end is no window. Whether a notification waits is its message
type's policy (`QuietPolicy`: marketing by default), unless its caller asked to respect
or bypass the window. The end is found as a wall-clock time on the right local date and
turned into an instant by `zoneinfo`, so a window spanning a daylight-saving change ends
at the right instant: 07:00 after the spring change is an hour earlier in UTC than the
07:00 before it. An end that falls in a skipped hour is taken just past the gap.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

QuietChoice = Literal["", "respect", "bypass"]
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def parse_clock(text: str) -> time:
    """'HH:MM' (24-hour) as a time; ValueError otherwise."""
    match = _CLOCK.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a time of day as HH:MM (00:00 to 23:59)")
    return time(int(match[1]), int(match[2]))


@dataclass(frozen=True)
class QuietWindow:
    """A daily window of wall-clock times; start == end: none."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietWindow:
        """'22:00-07:00' as a window; ValueError naming what is wrong."""
        start, sep, end = text.partition("-")
        if not sep:
            raise ValueError(f"{text!r} is not a window as HH:MM-HH:MM")
        return cls(parse_clock(start), parse_clock(end))

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def ends_at(self, at: datetime, zone: ZoneInfo) -> datetime | None:
        """When the window `at` falls in ends (UTC), or None when `at` is outside it."""
        if self.start == self.end:
            return None
        local = at.astimezone(zone)
        wall = local.time().replace(tzinfo=None, fold=0)
        if self.start < self.end:
            if not self.start <= wall < self.end:
                return None
            end_date = local.date()
        elif wall >= self.start:
            end_date = local.date() + timedelta(days=1)
        elif wall < self.end:
            end_date = local.date()
        else:
            return None
        return datetime.combine(end_date, self.end, tzinfo=zone).astimezone(UTC)


@lru_cache(maxsize=1024)
def zone_of(name: str) -> ZoneInfo:
    """The user's time zone (UTC when unknown: userd only stores IANA names)."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


@dataclass(frozen=True)
class QuietPolicy:
    """Which message types wait for the end of the window, and the default window."""

    waiting_types: Collection[str]
    default: QuietWindow

    def held_until(
        self,
        *,
        at: datetime,
        message_type: str,
        choice: QuietChoice,
        window: QuietWindow | None,
        time_zone: str,
    ) -> datetime | None:
        """When a notification due `at` may go out, if the user's quiet hours hold it."""
        respects = choice == "respect" or (choice == "" and message_type in self.waiting_types)
        if not respects:
            return None
        return (window or self.default).ends_at(at, zone_of(time_zone))
