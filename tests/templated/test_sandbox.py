"""The sandbox and renderer without a process: what templates may do, and may not."""

from __future__ import annotations

from typing import Any

import pytest

from templated.limits import Limits, weight
from templated.models import Channel, Content, EmailParts, SmsParts
from templated.rendering import Renderer, TemplateRejected

ALL = frozenset(Channel)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(Limits())


def render_sms(renderer: Renderer, source: str, **variables: Any) -> str:
    content = Content("en", sms=SmsParts(source))
    renderer.check(content)
    rendered = renderer.render(renderer.compile(content), variables, ALL)
    assert rendered.sms is not None
    return rendered.sms.text


def refusal(renderer: Renderer, source: str, **variables: Any) -> str:
    """The problem description of a template that does not compile or render."""
    with pytest.raises(TemplateRejected) as info:
        render_sms(renderer, source, **variables)
    [problem] = info.value.problems
    assert problem.part == "sms.text"
    return problem.describe()


@pytest.mark.parametrize(
    ("source", "variables", "expected"),
    [
        ("{{ name|upper }} {{ name.lower() }}", {"name": "Ana"}, "ANA ana"),
        ("{% for i in items %}{{ loop.index }}{{ i }}{% endfor %}", {"items": "ab"}, "1a2b"),
        ("{{ items|join(', ') }}|{{ items|length }}", {"items": [1, 2]}, "1, 2|2"),
        ("{{ '%s-%05.1f'|format(a, b) }}", {"a": "x", "b": 2.25}, "x-002.2"),
        ("{{ '{}+{:>3}'.format(a, b) }}", {"a": 1, "b": 2}, "1+  2"),
        ("{{ 'a\nb'|indent(2, first=True) }}", {}, "  a\n  b"),
        ("{{ 'ab'|center(6) }}|{{ 'x'.rjust(3) }}", {}, "  ab  |  x"),
        ("{{ 'aXa'|replace('a', 'bb') }} {{ 'aXa'.replace('a', '') }}", {}, "bbXbb X"),
        ("{{ range(5)|batch(2)|list }}", {}, "[[0, 1], [2, 3], [4]]"),
        ("{{ 'a b c d'|wordwrap(3) }}", {}, "a b\nc d"),
        ("{% macro b(x) %}<{{ x }}>{% endmacro %}{{ b(1) }}{{ b(2) }}", {}, "<1><2>"),
        (
            "{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}"
            "{% endfor %}{{ ns.n }}",
            {},
            "3",
        ),
        ("{% set c = cycler('a', 'b') %}{{ c.next() }}{{ c.next() }}{{ c.next() }}", {}, "aba"),
        ("{{ dict(a=1)|tojson }}", {}, '{"a": 1}'),
        ("{{ price|round(1) }} {{ 7 // 2 }} {{ 2 ** 10 }}", {"price": 2.46}, "2.5 3 1024"),
        ("{{ user['name'] ~ '!' }}", {"user": {"name": "Bo"}}, "Bo!"),
        (
            "{{ items|selectattr('ok')|map(attribute='n')|join }}",
            {"items": [{"ok": 1, "n": 7}]},
            "7",
        ),
        ("{{ 'x' * 3 }}{{ [0] * 2 }}{{ 'a' + 'b' }}", {}, "xxx[0, 0]ab"),
    ],
)
def test_ordinary_templates_render(
    renderer: Renderer, source: str, variables: dict[str, Any], expected: str
) -> None:
    assert render_sms(renderer, source, **variables) == expected


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ x.__init__.__globals__ }}",
        "{{ self._TemplateReference__context.parent }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ joiner.__call__ }}",
        "{{ lipsum.__globals__ }}",
        "{{ namespace.__init__ }}",
        "{{ x['__globals__'] }}",
        "{{ x|attr('__dict__') }}",
        "{{ __builtins__ }}",
        "{% extends 'base' %}",
        "{% import 'macros' as m %}",
        "{% for x in [1] recursive %}{{ loop([x]) }}{% endfor %}",
        "{{ x|herald_iter }}",
    ],
)
def test_reaching_internals_is_refused_at_compile_time(renderer: Renderer, source: str) -> None:
    description = refusal(renderer, source)
    assert description.startswith("line 1: ")
    assert (
        "not allowed" in description or "not available" in description or "no filter" in description
    )


@pytest.mark.parametrize(
    ("source", "variables"),
    [
        ("{{ x|attr('__cl' ~ 'ass__') }}", {"x": 1}),
        ("{{ x|attr(k) }}", {"x": "s", "k": "__class__"}),
        ("{{ x[k] }}", {"x": "s", "k": "__class__"}),
        ("{{ '{0.__class__}'.format(x) }}", {"x": 1}),
        ("{{ '{0.__class__.__base__.__subclasses__}'.format(x) }}", {"x": 1}),
        ("{{ dict.mro() }}", {}),
        ("{{ x.append(1) }}", {"x": []}),
        ("{{ x.update({'a': 1}) }}", {"x": {}}),
        ("{{ 'abc'.translate({97: 'zz'}) }}", {}),
    ],
)
def test_reaching_internals_is_refused_at_render_time(
    renderer: Renderer, source: str, variables: dict[str, Any]
) -> None:
    description = refusal(renderer, source, **variables)
    assert "unsafe" in description or "not available" in description


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'a' * 10**9 }}",
        "{{ [1, 2] * 10**9 }}",
        "{{ 2 ** 100000 }}",
        "{{ (2 ** 4000) * (2 ** 4000) * (2 ** 4000) }}",
        "{{ '%0999999999d' % 1 }}",
        "{{ '%*d' % (999999999, 1) }}",
        "{{ ('%s' * 50000) % (s,) }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ '{:{w}}'.format(1, w=9) }}",
        "{{ ('{0}' * 50000).format(s) }}",
        "{{ 'a'|center(10**9) }}",
        "{{ 'a'.ljust(10**9) }}",
        "{{ 'a\na'|indent(10**9) }}",
        "{{ s|replace('', s) }}",
        "{{ s.replace('', s) }}",
        "{{ (s|safe).replace('', s) }}",
        "{{ ('a'|safe).ljust(10**9) }}",
        "{{ (s|safe).join(range(100000)|map('string')) }}",
        "{{ range(100000)|join(s) }}",
        "{{ s.join(range(100000)|map('string')) }}",
        "{{ s|wordwrap(1, wrapstring=s) }}",
        "{{ [1]|batch(10**9, 'x')|list }}",
        "{{ [1]|slice(10**9)|list }}",
        "{{ s ~ s ~ s ~ s ~ s }}",
        "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}",
        "{% set a = [s, s, s, s] %}{% set b = [a, a, a, a] %}{% set c = [b, b, b, b] %}{{ c }}",
        "{% set a = [s, s, s, s] %}{% set b = [a, a, a, a] %}{{ b|tojson }}",
        "{% set x %}{% for i in range(20000) %}{{ s }}{% endfor %}{% endset %}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{% macro f(n) %}{% if n < 40 %}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}{% endmacro %}"
        "{{ f(0) }}",
        "{{ range(10**9) }}",
    ],
)
def test_work_and_output_are_bounded(renderer: Renderer, source: str) -> None:
    description = refusal(renderer, source, s="x" * 100_000)
    assert any(
        words in description
        for words in ("exceed", "too large", "too wide", "steps", "emits", "not allowed", "big")
    ), description


def test_the_final_output_is_bounded() -> None:
    small = Renderer(Limits(max_output_chars=1000))
    description = refusal(small, "{% for i in range(300) %}{{ s }}{% endfor %}", s="abcd")
    assert description == "the output exceeds 1000 characters"


def test_html_parts_escape_and_text_parts_do_not(renderer: Renderer) -> None:
    content = Content(
        "en",
        email=EmailParts("{{ x }}", "<b>{{ x }}</b>{{ x|safe }}", "{{ x }}"),
        sms=SmsParts("{{ x }}"),
    )
    rendered = renderer.render(renderer.compile(content), {"x": "<i>&"}, ALL)
    assert rendered.email == EmailParts("<i>&", "<b>&lt;i&gt;&amp;</b><i>&", "<i>&")
    assert rendered.sms == SmsParts("<i>&")


def test_check_lists_the_variables_but_not_the_globals(renderer: Renderer) -> None:
    content = Content(
        "en",
        email=EmailParts("{{ a }}", "{% for i in range(n) %}{{ loop.index }}{% endfor %}", ""),
        sms=SmsParts("{% set local = 1 %}{{ local }}{{ user.name }}{{ dict(x=1) }}"),
    )
    assert renderer.check(content) == {"a", "n", "user"}


def test_check_names_every_part_that_does_not_compile(renderer: Renderer) -> None:
    content = Content("en", email=EmailParts("{{ }", "ok", "\n\n{% endfor %}"), sms=SmsParts("x"))
    with pytest.raises(TemplateRejected) as info:
        renderer.check(content)
    assert [(p.part, p.line) for p in info.value.problems] == [
        ("email.subject", 1),
        ("email.text_body", 3),
    ]


def test_a_missing_variable_is_named_with_its_line(renderer: Renderer) -> None:
    with pytest.raises(TemplateRejected) as info:
        render_sms(renderer, "a\n{% if x %}{{ y }}{% endif %}", x=True)
    [problem] = info.value.problems
    assert (problem.variable, problem.line) == ("y", 2)


def test_weight_counts_shared_items_and_stops_at_the_limit() -> None:
    shared = "x" * 10
    assert weight([shared, shared], 1000) == weight(shared, 1000) * 2 + 2 + 2 * 2
    nested: Any = shared
    for _ in range(40):  # 2**40 leaves: only walked up to the limit
        nested = [nested, nested]
    assert weight(nested, 1000) > 1000
