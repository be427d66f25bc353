"""The Jinja2 sandbox templates run in: no Python internals, bounded work and output.

Jinja's `ImmutableSandboxedEnvironment` already refuses private attributes (`__class__`,
`_TemplateReference__context`, …), internal ones (`mro`, `__globals__`, frames) and the
mutation of lists and dicts. It does not bound how much a template computes:
`'a' * 10**9`, `'%0999999999d' % 1`, a `{% set %}` block filled by nested loops, a list
literal nested in itself eight times then printed. Every such path goes through one of
the hooks below, and each charges the budget of the render in progress (limits.py):

- the binary operators `*`, `**`, `+`, `%` are intercepted and sized before they run;
- every call (methods, macros, globals) and every filter is sized before and after, and
  the amplifying ones (`center`, `replace`, `join`, `format`…) are sized from their
  arguments before they run;
- `for` loops iterate through a guard that charges each step (instrument.py);
- everything a template emits, captured blocks and macro bodies included, is charged.

Past a limit the render raises `LimitExceeded` (a `SecurityError`).
"""

from __future__ import annotations

import functools
import re
import string
import types
from collections.abc import Callable, Iterator
from typing import Any

from jinja2 import StrictUndefined, pass_context
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.filters import FILTERS
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Cycler, Joiner, Namespace, missing

from templated.instrument import CHARGE_FILTER, EMIT_FILTER, ITER_FILTER, VALUE_FILTER
from templated.limits import (
    CHARS_PER_STEP,
    MAX_INT_BITS,
    PASSED,
    LimitExceeded,
    Limits,
    charge_output,
    charge_steps,
    printf_widths,
    weight,
)
from templated.urls import safe_url

_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})
_REFUSED_METHODS = frozenset({"translate", "maketrans", "expandtabs"})
# Filters that can turn a small input into a huge output and that notifications do not need.
_REFUSED_FILTERS = frozenset({"pprint", "urlize", "xmlattr"})
Args = tuple[Any, ...]


class MissingVariable(UndefinedError):
    """A variable the template needs was not given."""

    def __init__(self, message: str | None = None, *, name: str) -> None:
        super().__init__(message)
        self.name = name


class _Undefined(StrictUndefined):
    """StrictUndefined whose failure names a missing top-level variable."""

    __slots__ = ()

    def __init__(
        self,
        hint: str | None = None,
        obj: Any = missing,
        name: str | None = None,
        exc: type[Exception] = UndefinedError,
    ) -> None:
        if exc is UndefinedError and obj is missing and hint is None and name is not None:
            exc = functools.partial(MissingVariable, name=name)  # type: ignore[assignment]
        super().__init__(hint, obj, name, exc)  # type: ignore[arg-type]


class _Namespace(Namespace):
    """`namespace()` whose repr does not print its (possibly huge) attributes."""

    def __repr__(self) -> str:
        return "<namespace>"


def _arg(args: Args, kwargs: dict[str, Any], index: int, name: str, default: Any) -> Any:
    """A filter argument given by position or by keyword."""
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


class Sandbox(ImmutableSandboxedEnvironment):
    """The environment templates compile in: one for HTML parts, one for text parts."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, *, autoescape: bool, limits: Limits) -> None:
        super().__init__(autoescape=autoescape, undefined=_Undefined, cache_size=0)
        self.limits = limits
        self.globals = {
            "range": self.globals["range"],
            "dict": dict,
            "namespace": _Namespace,
            "cycler": Cycler,
            "joiner": Joiner,
        }
        self.filters = {
            name: self._guard_filter(name, func)
            for name, func in FILTERS.items()
            if name not in _REFUSED_FILTERS
        }
        self.filters.update(self._internal_filters())
        self.filters["safe_url"] = self._guard_filter("safe_url", safe_url)

    # -- the budget

    def sized(self, *values: Any) -> int:
        """Refuses a value too big to print; charges steps for handling the values."""
        limit = self.limits.max_output_chars
        total = 0
        for value in values:
            size = weight(value, limit)
            if size > limit:
                raise LimitExceeded(f"a value exceeds {limit} characters")
            total += size
        charge_steps(self.limits, 1 + total // CHARS_PER_STEP)
        return total

    def bound(self, size: int, what: str) -> None:
        """Refuses an operation whose result would be `size` characters or more."""
        if size > self.limits.max_output_chars:
            raise LimitExceeded(f"{what} would exceed {self.limits.max_output_chars} characters")

    def _internal_filters(self) -> dict[str, Callable[..., Any]]:
        """The hooks `instrument` plants in a template (context-passing, so that Jinja
        never folds them into constants at compile time)."""

        @pass_context
        def iterate(context: Context, iterable: Any) -> Iterator[Any]:
            for item in iterable:
                charge_steps(self.limits)
                yield item

        @pass_context
        def emit(context: Context, value: Any) -> Any:
            charge_output(self.limits, weight(value, self.limits.max_emitted_chars))
            return value

        @pass_context
        def charge(context: Context, size: int) -> str:
            charge_output(self.limits, size)
            return ""

        @pass_context
        def value(context: Context, value: Any) -> Any:
            self.sized(value)
            return value

        return {ITER_FILTER: iterate, EMIT_FILTER: emit, CHARGE_FILTER: charge, VALUE_FILTER: value}

    # -- sandbox interception

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Sizes `*`, `**`, `+` and `%` before computing them."""
        size = self.sized(left, right)
        if operator == "*":
            self._check_multiply(left, right, size)
        elif operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
            if max(left.bit_length(), 1) * right > MAX_INT_BITS:
                raise LimitExceeded("the power is too large")
        elif operator == "+":
            self.bound(size, "the sum")
        elif operator == "%" and isinstance(left, str):
            self.check_printf(left, weight(right, self.limits.max_output_chars))
        result = super().call_binop(context, operator, left, right)
        self.sized(result)
        return result

    def _check_multiply(self, left: Any, right: Any, size: int) -> None:
        if isinstance(left, int) and isinstance(right, int):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise LimitExceeded("the product is too large")
            return
        for seq, count in ((left, right), (right, left)):
            if isinstance(count, int) and not isinstance(seq, int | float) and count > 0:
                unit = len(seq) if isinstance(seq, str) else size
                self.bound(unit * count, "the repetition")

    def check_printf(self, template: str, args_size: int) -> None:
        """`template % args`: each conversion may print all of args, plus its width."""
        conversions, widths = printf_widths(template)
        self.bound(len(template) + conversions * args_size + widths, "the formatted string")

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        """Sizes every call's arguments and result; guards amplifying str methods."""
        __self.sized(*args, *kwargs.values())
        owner = getattr(__obj, "__self__", None)
        # str's methods are builtins; Markup's (markupsafe) are Python methods.
        if isinstance(owner, str) and isinstance(__obj, types.BuiltinMethodType | types.MethodType):
            args = __self._check_str_method(owner, __obj.__name__, args)
        result = super().call(__context, __obj, *args, **kwargs)
        __self.sized(result)
        return result

    def _check_str_method(self, owner: str, name: str, args: Args) -> Args:
        if name in _REFUSED_METHODS:
            raise SecurityError(f"str.{name} is not available in templates")
        if name in _WIDTH_METHODS and args and isinstance(args[0], int):
            self.bound(args[0], f"str.{name}")
        elif name == "replace" and len(args) >= 2:
            self.check_replace(owner, args[0], args[1], args[2] if len(args) > 2 else None)
        elif name == "join" and args:
            args = (self.check_join(args[0], owner), *args[1:])
        return args

    def check_replace(self, text: Any, old: Any, new: Any, count: Any) -> None:
        """`text.replace(old, new, count)` stays within the output bound."""
        text, old, new = str(text), str(old), str(new)
        hits = text.count(old) if old else len(text) + 1
        if isinstance(count, int) and count >= 0:
            hits = min(hits, count)
        self.bound(len(text) + hits * len(new), "the replacement")

    def check_join(self, items: Any, separator: Any) -> list[Any]:
        """The items of a join, materialised and sized with their separators."""
        limit = self.limits.max_output_chars
        listed: list[Any] = []
        for item in items:
            if len(listed) > limit:
                raise LimitExceeded("too many items to join")
            listed.append(item)
        size = sum(weight(item, limit) for item in listed)
        self.bound(size + len(str(separator)) * len(listed), "the joined string")
        return listed

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """`str.format` and `format_map`, sized: each field may print all arguments."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template = str(value.__self__)
        fields = 0
        for _, name, spec, _ in string.Formatter().parse(template):
            fields += name is not None
            if spec and ("{" in spec or _max_number(spec) > self.limits.max_output_chars):
                raise LimitExceeded("the format specification is too wide")

        @functools.wraps(wrapped)
        def sized_format(*args: Any, **kwargs: Any) -> str:
            size = self.sized(*args, *kwargs.values())
            self.bound(len(template) + fields * size, "the formatted string")
            return wrapped(*args, **kwargs)

        return sized_format

    # -- filters

    def _guard_filter(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        check = _FILTER_CHECKS.get(name)

        @functools.wraps(func)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            self.sized(*args, *kwargs.values())
            if check is not None:
                # Jinja passes a context, eval context or environment first to some filters.
                lead = 0
                while lead < len(args) and isinstance(args[lead], PASSED):
                    lead += 1
                args = (*args[:lead], *check(self, args[lead:], kwargs))
            result = func(*args, **kwargs)
            self.sized(result)
            return result

        return guarded


def _max_number(text: str) -> int:
    return max((int(n) for n in re.findall(r"\d+", text)), default=0)


def _check_center(sandbox: Sandbox, args: Args, kwargs: dict[str, Any]) -> Args:
    width = _arg(args, kwargs, 1, "width", 80)
    if isinstance(width, int):
        sandbox.bound(width, "the padding")
    return args


def _check_indent(sandbox: Sandbox, args: Args, kwargs: dict[str, Any]) -> Args:
    text = str(args[0]) if args else ""
    width = _arg(args, kwargs, 1, "width", 4)
    per_line = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    sandbox.bound(len(text) + (text.count("\n") + 1) * per_line, "the indented text")
    return args


def _check_replace(sandbox: Sandbox, args: Args, kwargs: dict[str, Any]) -> Args:
    # (s, old, new[, count])
    if len(args) >= 3:
        sandbox.check_replace(args[0], args[1], args[2], _arg(args, kwargs, 3, "count", None))
    return args


def _check_join(sandbox: Sandbox, args: Args, kwargs: dict[str, Any]) -> Args:
    # (value[, d[, attribute]])
    if args:
        return (sandbox.check_join(args[0], _arg(args, kwargs, 1, "d", "")), *args[1:])
    return args


def _check_wordwrap(sandbox: Sandbox, args: Args, kwargs: dict[str, Any]) -> Args:
    # (s[, width[, break_long_words[, wrapstring]]])
    text = str(args[0]) if args else ""
    width = _arg(args, kwargs, 1, "width", 79)
    wrap = str(_arg(args, kwargs, 3, "wrapstring", None) or "\n")
    lines = len(text) // max(width if isinstance(width, int) else 1, 1) + text.count("\n") + 1
    sandbox.bound(len(text) + lines * len(wrap), "the wrapped text")
    return args


def _check_format(sandbox: Sandbox, args: Args, kwargs: dict[str, Any]) -> Args:
    if args and isinstance(args[0], str):
        sandbox.check_printf(args[0], sandbox.sized(*args[1:], *kwargs.values()))
    return args


def _check_groups(sandbox: Sandbox, args: Args, kwargs: dict[str, Any]) -> Args:
    # batch(value, linecount, fill_with) and slice(value, slices, fill_with)
    count = args[1] if len(args) > 1 else kwargs.get("linecount", kwargs.get("slices"))
    if isinstance(count, int):
        sandbox.bound(count, "the number of groups")
    return args


_FILTER_CHECKS: dict[str, Callable[[Sandbox, Args, dict[str, Any]], Args]] = {
    "center": _check_center,
    "indent": _check_indent,
    "replace": _check_replace,
    "join": _check_join,
    "wordwrap": _check_wordwrap,
    "format": _check_format,
    "batch": _check_groups,
    "slice": _check_groups,
}
