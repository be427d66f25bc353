"""How much one render may do: the limits, the per-render budget, and value sizes.

The budget lives in a context variable, so the sandbox's hooks charge whichever render
is running; outside a render (Jinja folding constants at compile time) sizes are still
checked but nothing is charged.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, ValuesView
from collections.abc import Set as AbstractSet
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment
from jinja2.exceptions import SecurityError
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, Undefined

MAX_INT_BITS = 8192
CHARS_PER_STEP = 1024
# What Jinja passes first to context-, eval-context- and environment-passing filters.
PASSED = (Context, EvalContext, Environment)
_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[a-zA-Z%]")


class LimitExceeded(SecurityError):
    """A template asked for more work, output or memory than one render may use."""


@dataclass(frozen=True)
class Limits:
    """How much one part's render may produce and compute."""

    max_output_chars: int = 262_144
    max_steps: int = 20_000

    @property
    def max_emitted_chars(self) -> int:
        """Everything emitted, captured blocks and macro bodies included."""
        return 4 * self.max_output_chars


@dataclass
class _Budget:
    steps: int
    emitted: int = 0


_BUDGET: ContextVar[_Budget | None] = ContextVar("herald_render_budget", default=None)


@contextlib.contextmanager
def budget(limits: Limits) -> Iterator[None]:
    """Gives the renders inside the block one fresh budget."""
    token = _BUDGET.set(_Budget(steps=limits.max_steps))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def charge_steps(limits: Limits, units: int = 1) -> None:
    """Charges work to the render in progress; LimitExceeded past `max_steps`."""
    current = _BUDGET.get()
    if current is None:
        return
    current.steps -= units
    if current.steps < 0:
        raise LimitExceeded(f"the template takes more than {limits.max_steps} steps")


def charge_output(limits: Limits, size: int) -> None:
    """Charges emitted characters; LimitExceeded past `max_emitted_chars`."""
    current = _BUDGET.get()
    if current is None:
        return
    current.emitted += size
    if current.emitted > limits.max_emitted_chars:
        raise LimitExceeded(f"the template emits more than {limits.max_emitted_chars} characters")


def weight(value: Any, limit: int) -> int:
    """Roughly how many characters `str(value)` takes; stops counting past `limit`.

    Containers are walked, shared items counted each time (as `str` would print them).
    """
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item) + 2
        elif item is None or isinstance(item, bool | float | Undefined | range):
            total += 8
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 2
        elif isinstance(item, PASSED):
            total += 16  # what pass_context filters get first; not data
        elif isinstance(item, Mapping):
            total += 2 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | AbstractSet | ValuesView):
            total += 2 + 2 * len(item)
            stack.extend(item)
        else:
            total += 16
    return total


def printf_widths(template: str) -> tuple[int, int]:
    """(conversions, sum of widths and precisions) of a %-format; refuses `*` widths."""
    count = total = 0
    for width, precision in _PRINTF_SPEC.findall(template):
        if "*" in (width, precision):
            raise LimitExceeded("'*' widths are not allowed in % formatting")
        count += 1
        total += int(width or 0) + int(precision or 0)
    return count, total
