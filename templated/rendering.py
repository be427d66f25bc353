"""Compiling a content's parts in the sandbox, and rendering them with variables.

HTML parts (`email.html_body`) compile in an autoescaping sandbox, every other part in a
plain-text one; both use StrictUndefined, so a missing variable is an error, never "".
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import structlog
from jinja2 import Template, meta
from jinja2.exceptions import TemplateError, TemplateSyntaxError

from templated.instrument import check_tree, instrument
from templated.limits import LimitExceeded, Limits, budget
from templated.models import Channel, Content, EmailParts, Part, PushParts, SmsParts
from templated.sandbox import MissingVariable, Sandbox
from templated.urls import is_safe, unsafe_links

TEMPLATE_FILENAME = "<template>"  # what Jinja names a from_string template's frames
# Parts that become a header of the message sent: no control character may reach them
# (CR/LF would inject headers; SMTP refuses them, others may not).
HEADER_PARTS = frozenset({"email.subject"})
HTML_PARTS = frozenset({"email.html_body"})
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Problem:
    """Why one part cannot compile or render."""

    part: str
    message: str
    line: int | None = None
    variable: str | None = None  # a missing top-level variable

    def describe(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class TemplateRejected(Exception):
    """Some parts did not compile or render; `problems` says which and why."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.part}: {p.describe()}" for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class CompiledContent:
    """The compiled parts of one language of one version; what the cache holds."""

    language: str
    channels: frozenset[Channel]
    templates: Mapping[str, Template]
    push_keys: tuple[str, ...]
    # The top-level variables each part uses.
    uses: Mapping[str, frozenset[str]]


class Renderer:
    """Compiles and renders parts; holds the two sandboxes (HTML and text)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._html = Sandbox(autoescape=True, limits=limits)
        self._text = Sandbox(autoescape=False, limits=limits)

    def check(self, content: Content) -> set[str]:
        """The variables `content` uses; raises TemplateRejected naming each bad part."""
        variables: set[str] = set()
        problems: list[Problem] = []
        for part in content.parts():
            try:
                variables |= self._compile(part)[1]
            except TemplateSyntaxError as exc:
                problems.append(Problem(part.path, exc.message or str(exc), exc.lineno))
            except (RecursionError, SyntaxError):  # Python's own nesting limits
                problems.append(Problem(part.path, "expressions are nested too deeply"))
        if problems:
            raise TemplateRejected(problems)
        return variables

    def compile(self, content: Content) -> CompiledContent:
        """Every non-empty part of `content`, compiled (content was checked at publish)."""
        compiled = {part.path: self._compile(part) for part in content.parts() if part.source}
        keys = tuple(content.push.data) if content.push is not None else ()
        return CompiledContent(
            content.language,
            content.channels,
            {path: template for path, (template, _) in compiled.items()},
            keys,
            {path: frozenset(used) for path, (_, used) in compiled.items()},
        )

    def _compile(self, part: Part) -> tuple[Template, set[str]]:
        sandbox = self._html if part.html else self._text
        tree = sandbox.parse(part.source)
        check_tree(tree)
        variables = meta.find_undeclared_variables(tree) - set(sandbox.globals)
        return sandbox.from_string(instrument(tree, sandbox)), variables

    def render(
        self, compiled: CompiledContent, variables: dict[str, Any], channels: frozenset[Channel]
    ) -> Content:
        """The parts of `channels` rendered; raises TemplateRejected with every problem."""
        rendered: dict[str, str] = {}
        problems: list[Problem] = []
        # One read-only parent scope shared by every part (templates cannot mutate it).
        scope = {**self._text.globals, **variables}
        for path, template in compiled.templates.items():
            if Channel(path.split(".", 1)[0]) not in channels:
                continue
            try:
                rendered[path] = self._render_part(template, scope)
            # A template can raise anything (TypeError, ZeroDivisionError, RecursionError…);
            # all of it is the template's or the variables' fault, reported as such.
            except Exception as exc:
                problems.append(_problem(path, exc))
                continue
            if path in HEADER_PARTS and CONTROL.search(rendered[path]):
                used = {k: v for k, v in variables.items() if k in compiled.uses[path]}
                problems.extend(_control_problems(path, used))
            if path in HTML_PARTS and (unsafe := unsafe_links(rendered[path])):
                used = {k: v for k, v in variables.items() if k in compiled.uses[path]}
                problems.extend(_link_problems(path, used, unsafe))
        if problems:
            raise TemplateRejected(problems)
        return _assemble(compiled, rendered, channels)

    def _render_part(self, template: Template, scope: dict[str, Any]) -> str:
        """`template.render(scope)` without copying the scope for each part."""
        context = template.new_context(scope, shared=True)
        with budget(self.limits):
            try:
                text = template.environment.concat(template.root_render_func(context))
            except Exception:
                template.environment.handle_exception()
        if len(text) > self.limits.max_output_chars:
            raise LimitExceeded(f"the output exceeds {self.limits.max_output_chars} characters")
        return str(text)


def _assemble(
    compiled: CompiledContent, rendered: dict[str, str], channels: frozenset[Channel]
) -> Content:
    def get(path: str) -> str:
        return rendered.get(path, "")

    wanted = compiled.channels & channels
    return Content(
        language=compiled.language,
        email=EmailParts(get("email.subject"), get("email.html_body"), get("email.text_body"))
        if Channel.EMAIL in wanted
        else None,
        sms=SmsParts(get("sms.text")) if Channel.SMS in wanted else None,
        push=PushParts(
            get("push.title"),
            get("push.body"),
            {key: get(f"push.data.{key}") for key in compiled.push_keys},
        )
        if Channel.PUSH in wanted
        else None,
    )


def _problem(path: str, exc: Exception) -> Problem:
    line = _template_line(exc.__traceback__)
    if isinstance(exc, MissingVariable):
        return Problem(path, "is required by the template", line, variable=exc.name)
    if isinstance(exc, TemplateError):
        message = exc.message or type(exc).__name__
    else:
        message = f"{type(exc).__name__}: {exc}"
    log.info("render refused", part=path, line=line, error=type(exc).__name__)
    return Problem(path, message, line)


def _control_problems(path: str, variables: Mapping[str, Any]) -> list[Problem]:
    """Why a header part carries a control character: the variables that hold one."""
    message = "holds a control character (such as CR or LF), which a header cannot carry"
    named = [
        Problem(path, message, variable=name)
        for name, value in variables.items()
        if any(CONTROL.search(text) for text in _strings(value))
    ]
    return named or [Problem(path, "renders a control character, which a header cannot carry")]


def _link_problems(path: str, variables: Mapping[str, Any], unsafe: list[str]) -> list[Problem]:
    """Why an HTML part links to an unsafe URL: the variables whose text carries it."""
    message = "is a URL with an unsafe scheme in a link or source (use http(s), mailto or tel)"
    named = [
        Problem(path, message, variable=name)
        for name, value in variables.items()
        if any(
            not is_safe(text) and any(text in url or url in text for url in unsafe)
            for text in _strings(value)
        )
    ]
    return named or [Problem(path, f"links to an unsafe URL: {unsafe[0][:80]}")]


def _strings(value: Any) -> Iterator[str]:
    """Every string in a variable's value (JSON-like: nested lists and objects)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _template_line(tb: TracebackType | None) -> int | None:
    """The template line of the innermost template frame (Jinja rewrites tracebacks so
    template frames carry template line numbers)."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == TEMPLATE_FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
