"""Waiting for what a test means: poll a condition until it holds, or fail naming it.

A poll, not a sleep: the test goes on the moment the condition holds, and the timeout is
a generous bound for a loaded machine, never a timing assertion."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable


async def eventually(
    check: Callable[[], object],
    timeout: float = 30.0,
    *,
    what: str = "",
    interval: float = 0.05,
) -> None:
    """Polls `check()` (sync, or awaitable) until its value is true; fails after `timeout`
    seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what or 'the condition'} did not hold within {timeout}s")
        await asyncio.sleep(interval)


def eventually_sync(
    check: Callable[[], object], timeout: float = 30.0, *, what: str = "", interval: float = 0.05
) -> None:
    """`eventually` for a test that is not a coroutine."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what or 'the condition'} did not hold within {timeout}s")
        time.sleep(interval)
