"""Render over real gRPC: languages, strict variables, escaping, the sandbox, versions,
and the cache (no SQL on a repeated render, changes visible to the next one)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf import struct_pb2

from herald.v1 import common_pb2, template_pb2, template_pb2_grpc
from mesh.interceptors import field_violations
from tests.conftest import ServiceFactory
from tests.support.processes import ServiceProcess
from tests.templated.conftest import content, create_request, error_code, sql_queries

if TYPE_CHECKING:
    from herald.v1.template_pb2_grpc import TemplateServiceAsyncStub as Stub


def render_request(
    code: str,
    variables: dict[str, Any] | None = None,
    *,
    language: str = "",
    channels: tuple[common_pb2.Channel.ValueType, ...] = (),
    version: int = 0,
) -> template_pb2.RenderRequest:
    struct = struct_pb2.Struct()
    struct.update(variables if variables is not None else {"name": "Ana"})
    return template_pb2.RenderRequest(
        code=code, language=language, variables=struct, channels=channels, version=version
    )


async def sms_template(stub: Stub, code: str, sms: str) -> None:
    """A template whose only variable parts are its SMS text."""
    only_sms = content("en", subject="Subject", html="<p>Body</p>", text="Body", sms=sms)
    await stub.CreateTemplate(create_request(code, only_sms))


async def render_error(stub: Stub, request: template_pb2.RenderRequest) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Render(request)
    return info.value


async def test_render_fills_every_channel_of_the_version(stub: Stub, code: str) -> None:
    push = ("{{ name }} joined", "Say hi to {{ name }}", {"user": "{{ name }}", "kind": "join"})
    await stub.CreateTemplate(create_request(code, content("en", push=push)))

    answer = await stub.Render(render_request(code))

    assert (answer.code, answer.version) == (code, 1)
    rendered = answer.content
    assert rendered.language == "en"
    assert rendered.email.subject == "Hello Ana"
    assert rendered.email.html_body == "<p>Hello Ana</p>"
    assert rendered.email.text_body == "Hello Ana"
    assert rendered.sms.text == "Hi Ana"
    assert rendered.push.title == "Ana joined"
    assert rendered.push.body == "Say hi to Ana"
    assert dict(rendered.push.data) == {"user": "Ana", "kind": "join"}


async def test_render_only_the_asked_channels(stub: Stub, code: str) -> None:
    await stub.CreateTemplate(create_request(code))
    answer = await stub.Render(render_request(code, channels=(common_pb2.CHANNEL_SMS,)))
    assert answer.content.HasField("sms")
    assert not answer.content.HasField("email")

    error = await render_error(stub, render_request(code, channels=(common_pb2.CHANNEL_PUSH,)))
    assert error_code(error) == grpc.StatusCode.INVALID_ARGUMENT
    assert "has no push content" in dict(field_violations(error))["channels"]

    error = await render_error(
        stub, render_request(code, channels=(common_pb2.CHANNEL_UNSPECIFIED,))
    )
    assert dict(field_violations(error)).keys() == {"channels[0]"}


@pytest.mark.parametrize(
    ("asked", "used"),
    [
        ("pt-BR", "pt"),
        ("pt-br", "pt"),
        ("PT", "pt"),
        ("pt-PT", "pt-PT"),
        ("es-MX", "es"),
        ("fr-CA", "en"),
        ("zh-Hant-TW", "en"),
        ("", "en"),
    ],
)
async def test_language_falls_back_to_the_base_language_then_the_default(
    stub: Stub, code: str, asked: str, used: str
) -> None:
    await stub.CreateTemplate(
        create_request(
            code,
            content("en", sms="Hi {{ name }}"),
            content("pt", sms="Oi {{ name }}"),
            content("pt-pt", sms="Olá {{ name }}"),
            content("es", sms="Hola {{ name }}"),
        )
    )
    answer = await stub.Render(render_request(code, language=asked))
    assert answer.content.language == used
    greeting = {"en": "Hi", "pt": "Oi", "pt-PT": "Olá", "es": "Hola"}[used]
    assert answer.content.sms.text == f"{greeting} Ana"


async def test_the_default_language_ends_the_chain_whatever_it_is(stub: Stub, code: str) -> None:
    await stub.CreateTemplate(
        create_request(
            code,
            content("pt-BR", sms="Oi {{ name }}"),
            content("en", sms="Hi {{ name }}"),
            default_language="pt-br",
        )
    )
    answer = await stub.Render(render_request(code, language="de-AT"))
    assert (answer.content.language, answer.content.sms.text) == ("pt-BR", "Oi Ana")


async def test_a_bad_language_tag_is_refused(stub: Stub, code: str) -> None:
    await stub.CreateTemplate(create_request(code))
    error = await render_error(stub, render_request(code, language="not a tag"))
    assert dict(field_violations(error)).keys() == {"language"}


async def test_a_missing_variable_is_named(stub: Stub, code: str) -> None:
    await stub.CreateTemplate(
        create_request(code, content("en", subject="Hi {{ name }}", sms="{{ name }}\n{{ link }}"))
    )
    error = await render_error(stub, render_request(code, {"name": "Ana"}))
    assert error_code(error) == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(field_violations(error)) == {
        "variables.link": "is required by the template (sms.text, line 2)"
    }

    # Each part stops at its first missing variable; every part is tried, fields deduplicated.
    error = await render_error(stub, render_request(code, {}))
    violations = dict(field_violations(error))
    assert violations.keys() == {"variables.name"}
    assert violations["variables.name"].startswith("is required by the template (email.subject")


async def test_a_control_character_bound_for_a_header_names_its_variable(
    stub: Stub, code: str
) -> None:
    await stub.CreateTemplate(create_request(code, content("en", subject="Hi {{ name }}")))
    injected = {"name": "x\r\nBcc: a@evil.example", "note": "line one\nline two"}
    error = await render_error(stub, render_request(code, injected))
    assert error_code(error) == grpc.StatusCode.INVALID_ARGUMENT
    violations = dict(field_violations(error))
    # `note` holds a line break too, but the subject does not use it.
    assert violations.keys() == {"variables.name"}
    assert "header" in violations["variables.name"]
    # Line breaks stay fine in parts that are no header.
    sms_only = render_request(code, injected, channels=(common_pb2.CHANNEL_SMS,))
    assert (await stub.Render(sms_only)).content.sms.text


async def test_a_link_with_an_unsafe_scheme_is_refused_naming_its_variable(
    stub: Stub, code: str
) -> None:
    html = '<p><a href="{{ link }}">go</a> <img src="{{ pic }}"></p>'
    await stub.CreateTemplate(create_request(code, content("en", html=html)))
    for link in ("javascript:alert(1)", " JaVa\tScRiPt:alert(1)", "data:text/html,<b>x</b>"):
        variables = {"name": "Ana", "link": link, "pic": "https://x.y/a.png"}
        error = await render_error(stub, render_request(code, variables))
        assert error_code(error) == grpc.StatusCode.INVALID_ARGUMENT
        violations = dict(field_violations(error))
        assert violations.keys() == {"variables.link"}, violations
        assert "unsafe scheme" in violations["variables.link"]
    for link in ("https://example.com/start", "/relative", "mailto:ana@example.com"):
        variables = {"name": "Ana", "link": link, "pic": "https://x.y/a.png"}
        answer = await stub.Render(render_request(code, variables))
        assert f'href="{link}"' in answer.content.email.html_body


async def test_the_safe_url_filter_blanks_an_unsafe_link(stub: Stub, code: str) -> None:
    html = '<a href="{{ link | safe_url }}">go</a>'
    await stub.CreateTemplate(create_request(code, content("en", html=html)))
    unsafe = await stub.Render(render_request(code, {"name": "A", "link": "javascript:alert(1)"}))
    assert unsafe.content.email.html_body == '<a href="about:blank">go</a>'
    link = "https://example.com/?a=1&b=2"
    safe = await stub.Render(render_request(code, {"name": "A", "link": link}))
    assert safe.content.email.html_body == '<a href="https://example.com/?a=1&amp;b=2">go</a>'


async def test_a_missing_attribute_is_an_error_too(stub: Stub, code: str) -> None:
    await sms_template(stub, code, "Hi {{ user.first_name }}")
    error = await render_error(stub, render_request(code, {"user": {"last_name": "Silva"}}))
    assert dict(field_violations(error)) == {
        "sms.text": "line 1: 'dict object' has no attribute 'first_name'"
    }


async def test_optional_variables_can_be_tested_with_defined_and_default(
    stub: Stub, code: str
) -> None:
    await sms_template(
        stub,
        code,
        "{% if nick is defined %}{{ nick }}{% else %}{{ name }}{% endif %}"
        "/{{ title | default('friend') }}",
    )
    answer = await stub.Render(render_request(code, {"name": "Ana"}))
    assert answer.content.sms.text == "Ana/friend"


async def test_html_parts_escape_variables_and_text_parts_do_not(stub: Stub, code: str) -> None:
    await stub.CreateTemplate(
        create_request(
            code,
            content(
                "en",
                subject="{{ name }}",
                html='<p>{{ name }}</p><a href="{{ link }}">go</a>',
                text="{{ name }}",
                sms="{{ name }}",
            ),
        )
    )
    evil = "<script>alert('x')</script>"
    answer = await stub.Render(render_request(code, {"name": evil, "link": '" onclick="x'}))
    rendered = answer.content
    assert rendered.email.html_body == (
        "<p>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;</p>"
        '<a href="&#34; onclick=&#34;x">go</a>'
    )
    assert rendered.email.subject == evil
    assert rendered.email.text_body == evil
    assert rendered.sms.text == evil


async def test_numbers_from_the_struct_render_as_written(stub: Stub, code: str) -> None:
    await sms_template(
        stub,
        code,
        "{{ count }} items, {{ price }}, {{ 'yes' if vip else 'no' }}, "
        "{% for line in lines %}{{ line.qty }}x{{ line.sku }};{% endfor %} {{ nothing is none }}",
    )
    variables = {
        "count": 3,
        "price": 2.5,
        "vip": True,
        "lines": [{"qty": 2, "sku": "A"}, {"qty": 1, "sku": "B"}],
        "nothing": None,
    }
    answer = await stub.Render(render_request(code, variables))
    assert answer.content.sms.text == "3 items, 2.5, yes, 2xA;1xB; True"


async def test_variables_are_bounded(stub: Stub, code: str) -> None:
    await sms_template(stub, code, "{{ name }}")
    error = await render_error(stub, render_request(code, {"name": "x" * 70_000}))
    assert dict(field_violations(error)).keys() == {"variables"}


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ ().__class__.__base__.__subclasses__() }}",
        "{{ self._TemplateReference__context }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ lipsum.__globals__['os'].popen('id').read() }}",
        "{{ joiner.__call__.__globals__ }}",
        "{{ name['__class__'] }}",
        "{{ name|attr('__class__') }}",
        "{{ __builtins__ }}",
        "{% include '/etc/passwd' %}",
        "{% from 'x' import y %}",
    ],
)
async def test_escapes_are_refused_when_the_template_is_created(
    stub: Stub, code: str, source: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await sms_template(stub, code, source)
    assert error_code(info.value) == grpc.StatusCode.INVALID_ARGUMENT
    description = dict(field_violations(info.value))["contents[0].sms.text"]
    assert description.startswith("line 1: ")
    assert "not allowed" in description or "not available" in description


@pytest.mark.parametrize(
    ("source", "variables"),
    [
        ("{{ name|attr('__cla' ~ 'ss__') }}", {"name": "Ana"}),
        ("{{ name|attr(key) }}", {"name": "Ana", "key": "__class__"}),
        ("{{ name[key][mro] }}", {"name": "Ana", "key": "__class__", "mro": "__mro__"}),
        ("{{ '{0.__class__.__mro__}'.format(name) }}", {"name": "Ana"}),
        ("{{ '{c.__init__.__globals__}'.format_map({'c': cycler}) }}", {}),
        ("{{ dict.mro() }}", {}),
        ("{{ items.append(1) }}{{ items }}", {"items": []}),
        ("{{ (items|attr('pop'))() }}", {"items": [1]}),
    ],
)
async def test_escapes_built_at_render_time_are_refused(
    stub: Stub, code: str, source: str, variables: dict[str, Any]
) -> None:
    await sms_template(stub, code, source)
    error = await render_error(stub, render_request(code, variables))
    assert error_code(error) == grpc.StatusCode.INVALID_ARGUMENT
    description = dict(field_violations(error))["sms.text"]
    assert description.startswith("line 1: ")
    assert "unsafe" in description or "not" in description
    assert "<class" not in (error.details() or "")


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("{{ 'a' * 10**9 }}", "exceed"),
        ("{{ 'a' * 200000 ~ 'b' * 200000 }}", "exceed"),
        ("{{ 2 ** 100000 }}", "too large"),
        ("{{ '%0999999999d' % 1 }}", "exceed"),
        ("{{ '{:>999999999}'.format(1) }}", "too wide"),
        ("{{ name|center(10**9) }}", "exceed"),
        ("{{ range(10**9)|list }}", "Range too big"),
        ("{% for i in range(10**5) %}{% for j in range(10**5) %}{% endfor %}{% endfor %}", "steps"),
        ("{% set s %}{% for i in range(3000) %}{{ name * 1000 }}{% endfor %}{% endset %}", "emits"),
        ("{% for i in range(2000) %}{{ name * 100 }}{% endfor %}", "output exceeds"),
        ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "RecursionError"),
    ],
)
async def test_output_and_work_are_bounded(stub: Stub, code: str, source: str, words: str) -> None:
    await sms_template(stub, code, source)
    error = await render_error(stub, render_request(code, {"name": "Ana"}))
    assert error_code(error) == grpc.StatusCode.INVALID_ARGUMENT
    description = dict(field_violations(error))["sms.text"]
    assert words in description


async def test_a_pinned_version_renders_until_rolled_back_and_forward(
    stub: Stub, code: str
) -> None:
    await sms_template(stub, code, "one {{ name }}")
    await stub.PublishVersion(
        template_pb2.PublishVersionRequest(
            code=code, contents=[content("en", sms="two {{ name }}")], author="a"
        )
    )

    active = await stub.Render(render_request(code))
    assert (active.version, active.content.sms.text) == (2, "two Ana")
    pinned = await stub.Render(render_request(code, version=1))
    assert (pinned.version, pinned.content.sms.text) == (1, "one Ana")

    await stub.SetActiveVersion(
        template_pb2.SetActiveVersionRequest(code=code, version=1, author="ops")
    )
    rolled_back = await stub.Render(render_request(code))
    assert (rolled_back.version, rolled_back.content.sms.text) == (1, "one Ana")
    pinned = await stub.Render(render_request(code, version=2))
    assert (pinned.version, pinned.content.sms.text) == (2, "two Ana")

    await stub.SetActiveVersion(
        template_pb2.SetActiveVersionRequest(code=code, version=2, author="ops")
    )
    forward = await stub.Render(render_request(code))
    assert forward.version == 2

    error = await render_error(stub, render_request(code, version=9))
    assert error_code(error) == grpc.StatusCode.NOT_FOUND


async def test_render_of_a_missing_template_is_not_found(stub: Stub, code: str) -> None:
    error = await render_error(stub, render_request(code))
    assert error_code(error) == grpc.StatusCode.NOT_FOUND


async def test_a_repeated_render_runs_no_sql(
    stub: Stub, templated: ServiceProcess, code: str
) -> None:
    await stub.CreateTemplate(create_request(code, content("en"), content("pt")))
    before_first = await sql_queries(templated)
    await stub.Render(render_request(code, language="pt-BR"))
    after_first = await sql_queries(templated)
    assert after_first > before_first  # the counter is live: a cold render reads

    for _ in range(3):
        answer = await stub.Render(render_request(code, language="pt-BR", variables={"name": "Bo"}))
        assert answer.content.sms.text == "Hi Bo"
    await stub.Render(render_request(code, language="pt-BR", version=1))
    assert await sql_queries(templated) == after_first


async def test_publish_and_set_active_are_visible_to_the_next_render(
    stub: Stub, templated: ServiceProcess, code: str
) -> None:
    await sms_template(stub, code, "one")
    assert (await stub.Render(render_request(code))).content.sms.text == "one"
    await stub.Render(render_request(code))  # cached now

    await stub.PublishVersion(
        template_pb2.PublishVersionRequest(code=code, contents=[content(sms="two")], author="a")
    )
    assert (await stub.Render(render_request(code))).content.sms.text == "two"
    await stub.SetActiveVersion(
        template_pb2.SetActiveVersionRequest(code=code, version=1, author="ops")
    )
    assert (await stub.Render(render_request(code))).content.sms.text == "one"

    settled = await sql_queries(templated)
    assert (await stub.Render(render_request(code))).content.sms.text == "one"
    assert await sql_queries(templated) == settled


async def wait_for_render(stub: Stub, request: template_pb2.RenderRequest, text: str) -> None:
    """Renders until the answer's SMS is `text` (NOTIFY is asynchronous across processes)."""
    async with asyncio.timeout(10):
        while True:
            answer = await stub.Render(request)
            if answer.content.sms.text == text:
                return
            await asyncio.sleep(0.01)


async def test_changes_reach_other_processes_through_notify(
    stub: Stub, service_factory: ServiceFactory, code: str
) -> None:
    # A long TTL: only LISTEN/NOTIFY can tell the other process about the change.
    other = service_factory("templated", env={"HERALD_TEMPLATED_ACTIVE_TTL_SECONDS": "3600"})
    channel = other.channel()
    try:
        other_stub = template_pb2_grpc.TemplateServiceStub(channel)
        await sms_template(stub, code, "one")
        request = render_request(code)
        assert (await other_stub.Render(request)).content.sms.text == "one"
        cached = await sql_queries(other)
        assert (await other_stub.Render(request)).content.sms.text == "one"
        assert await sql_queries(other) == cached

        await stub.PublishVersion(
            template_pb2.PublishVersionRequest(code=code, contents=[content(sms="two")], author="a")
        )
        await wait_for_render(other_stub, request, "two")
        await stub.SetActiveVersion(
            template_pb2.SetActiveVersionRequest(code=code, version=1, author="ops")
        )
        await wait_for_render(other_stub, request, "one")

        await stub.DeleteTemplate(template_pb2.DeleteTemplateRequest(code=code))
        async with asyncio.timeout(10):
            while True:
                try:
                    await other_stub.Render(request)
                except grpc.aio.AioRpcError as error:
                    assert error_code(error) == grpc.StatusCode.FAILED_PRECONDITION
                    break
                await asyncio.sleep(0.01)
    finally:
        await channel.close()
    assert other.stop() == 0


async def test_batch_render_answers_each_request_as_render_would(stub: Stub, code: str) -> None:
    await stub.CreateTemplate(create_request(code))
    requests = [
        render_request(code, {"name": "Ana"}),
        render_request(code, {}),
        render_request(f"{code}-missing"),
        render_request(code, {"name": "Bia"}, channels=(common_pb2.CHANNEL_SMS,)),
    ]

    answer = await stub.BatchRender(template_pb2.BatchRenderRequest(requests=requests))

    assert [r.index for r in answer.results] == [0, 1, 2, 3]
    assert [r.WhichOneof("result") for r in answer.results] == [
        "rendered",
        "error",
        "error",
        "rendered",
    ]
    ana, no_name, unknown, bia = answer.results
    assert ana.rendered == await stub.Render(requests[0])
    for item, request in ((no_name, requests[1]), (unknown, requests[2])):
        alone = await render_error(stub, request)
        assert item.error.code == error_code(alone).value[0]
        assert item.error.message == alone.details()
        assert [(v.field, v.description) for v in item.error.field_violations] == (
            field_violations(alone)
        )
    assert no_name.error.field_violations[0].field.startswith("variables.")
    assert bia.rendered.content.sms.text == "Hi Bia"


async def test_batch_render_takes_1_to_500_requests(stub: Stub, code: str) -> None:
    for count in (0, 501):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.BatchRender(
                template_pb2.BatchRenderRequest(requests=[render_request(code)] * count)
            )
        assert error_code(info.value) == grpc.StatusCode.INVALID_ARGUMENT
        assert dict(field_violations(info.value)) == {"requests": "from 1 to 500 items"}
