"""TemplateService's management RPCs over real gRPC against real PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

import grpc
import psycopg
import pytest

from herald.v1 import template_pb2, template_pb2_grpc
from mesh.interceptors import field_violations
from tests.support.infra import POSTGRES_URL, Isolation
from tests.support.processes import ServiceProcess
from tests.templated.conftest import content, create_request, error_code

if TYPE_CHECKING:
    from herald.v1.template_pb2_grpc import TemplateServiceAsyncStub as Stub


async def test_create_then_get_returns_the_active_version_with_its_variables(
    stub: Stub, code: str
) -> None:
    request = create_request(
        code,
        content("en", subject="Hi {{ user.name }}", html="<a href='{{ link }}'>go</a>"),
        content("pt-br", subject="Oi {{ user.name }}", html="<a href='{{ link }}'>ir</a>"),
    )
    created = (await stub.CreateTemplate(request)).template

    assert created.code == code
    assert created.active_version == 1
    assert created.version.version == 1
    assert [c.language for c in created.version.contents] == ["en", "pt-BR"]
    assert list(created.version.variables) == ["link", "name", "user"]
    assert created.version.author == "tests@example.com"
    assert created.version.change_note == "first"
    assert created.version.create_time.seconds > 0
    assert not created.archived

    got = (await stub.GetTemplate(template_pb2.GetTemplateRequest(code=code))).template
    assert got == created


async def test_create_refuses_a_taken_code(stub: Stub, code: str) -> None:
    await stub.CreateTemplate(create_request(code))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateTemplate(create_request(code))
    assert error_code(info.value) == grpc.StatusCode.ALREADY_EXISTS


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"code": "Auth/Welcome"}, "code"),
        ({"code": "auth//welcome"}, "code"),
        ({"code": "a" * 129}, "code"),
        ({"name": ""}, "name"),
        ({"name": "n" * 201}, "name"),
        ({"description": "d" * 2001}, "description"),
        ({"default_language": "english!"}, "default_language"),
        ({"author": ""}, "author"),
        ({"change_note": "c" * 2001}, "change_note"),
    ],
)
async def test_create_names_the_bad_field(
    stub: Stub, code: str, change: dict[str, str], field: str
) -> None:
    request = create_request(code)
    for key, value in change.items():
        setattr(request, key, value)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateTemplate(request)
    assert error_code(info.value) == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [f for f, _ in field_violations(info.value)]


@pytest.mark.parametrize(
    ("contents", "field", "words"),
    [
        ([], "contents", "at least one"),
        ([content("pt")], "contents", "default language en"),
        ([content("en"), content("EN")], "contents[1].language", "twice"),
        ([content("en"), content("pt", sms=None)], "contents[1]", "same channels"),
        ([content("en", subject="")], "contents[0].email.subject", "required"),
        ([content("en", sms="")], "contents[0].sms.text", "required"),
        ([content("en", html="x" * 65_537)], "contents[0].email.html_body", "longer"),
        ([content("en", push=("t", "b", {"bad key": "v"}))], "contents[0].push.data", "key"),
        (
            [content("en", push=("t", "b", {f"k{i}": "v" for i in range(33)}))],
            "contents[0].push.data",
            "more than 32",
        ),
    ],
)
async def test_create_refuses_bad_contents(
    stub: Stub,
    code: str,
    contents: list[template_pb2.LocalizedContent],
    field: str,
    words: str,
) -> None:
    request = create_request(code)
    del request.contents[:]
    request.contents.extend(contents)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateTemplate(request)
    assert error_code(info.value) == grpc.StatusCode.INVALID_ARGUMENT
    violations = dict(field_violations(info.value))
    assert field in violations, violations
    assert words in violations[field]


async def test_a_template_that_does_not_compile_is_refused_with_its_line(
    stub: Stub, code: str
) -> None:
    html = "<p>\n  {{ name }}\n  {{ name + }}\n</p>"
    request = create_request(code, content("en", html=html, sms="{{ name | nosuchfilter }}"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateTemplate(request)

    assert error_code(info.value) == grpc.StatusCode.INVALID_ARGUMENT
    violations = dict(field_violations(info.value))
    assert violations["contents[0].email.html_body"] == (
        "line 3: unexpected 'end of print statement'"
    )
    assert violations["contents[0].sms.text"] == "line 1: No filter named 'nosuchfilter'."
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetTemplate(template_pb2.GetTemplateRequest(code=code))
    assert error_code(missing.value) == grpc.StatusCode.NOT_FOUND


async def test_publish_creates_the_next_version_and_keeps_the_history(
    stub: Stub, code: str
) -> None:
    await stub.CreateTemplate(create_request(code))
    published = (
        await stub.PublishVersion(
            template_pb2.PublishVersionRequest(
                code=code,
                contents=[content("en", subject="New {{ name }} {{ extra }}")],
                author="bob@example.com",
                change_note="add extra",
            )
        )
    ).template
    assert published.active_version == 2
    assert published.version.version == 2
    assert "extra" in published.version.variables

    first = await stub.GetTemplate(template_pb2.GetTemplateRequest(code=code, version=1))
    assert first.template.version.contents[0].email.subject == "Hello {{ name }}"
    assert first.template.active_version == 2

    history = await stub.ListVersions(template_pb2.ListVersionsRequest(code=code))
    assert history.active_version == 2
    assert [(v.version, v.author, v.change_note) for v in history.versions] == [
        (2, "bob@example.com", "add extra"),
        (1, "tests@example.com", "first"),
    ]
    assert all(v.create_time.seconds > 0 for v in history.versions)
    assert not history.next_page_token


async def test_publish_refuses_what_create_refuses(stub: Stub, code: str) -> None:
    await stub.CreateTemplate(create_request(code))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.PublishVersion(
            template_pb2.PublishVersionRequest(
                code=code,
                contents=[content("en", text="line 1\n{{ ''.__class__ }}")],
                author="bob",
            )
        )
    assert error_code(info.value) == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(field_violations(info.value)) == {
        "contents[0].email.text_body": "line 2: access to '__class__' is not allowed"
    }
    got = await stub.GetTemplate(template_pb2.GetTemplateRequest(code=code))
    assert got.template.active_version == 1


async def test_publish_to_a_missing_template_is_not_found(stub: Stub, code: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.PublishVersion(
            template_pb2.PublishVersionRequest(code=code, contents=[content()], author="a")
        )
    assert error_code(info.value) == grpc.StatusCode.NOT_FOUND


async def test_get_of_a_missing_version_is_not_found(stub: Stub, code: str) -> None:
    await stub.CreateTemplate(create_request(code))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetTemplate(template_pb2.GetTemplateRequest(code=code, version=7))
    assert error_code(info.value) == grpc.StatusCode.NOT_FOUND


async def test_list_versions_pages_newest_first(stub: Stub, code: str) -> None:
    await stub.CreateTemplate(create_request(code))
    for n in range(2, 6):
        await stub.PublishVersion(
            template_pb2.PublishVersionRequest(
                code=code, contents=[content()], author="a", change_note=f"v{n}"
            )
        )
    seen: list[int] = []
    token = ""
    while True:
        page = await stub.ListVersions(
            template_pb2.ListVersionsRequest(code=code, page_size=2, page_token=token)
        )
        assert len(page.versions) <= 2
        assert all(not v.contents for v in page.versions)  # metadata only
        seen += [v.version for v in page.versions]
        token = page.next_page_token
        if not token:
            break
    assert seen == [5, 4, 3, 2, 1]

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ListVersions(
            template_pb2.ListVersionsRequest(code=code, page_token="not-a-token")
        )
    assert dict(field_violations(info.value)).keys() == {"page_token"}


async def test_set_active_version_rolls_back_and_forward(stub: Stub, code: str) -> None:
    await stub.CreateTemplate(create_request(code))
    await stub.PublishVersion(
        template_pb2.PublishVersionRequest(code=code, contents=[content()], author="a")
    )
    back = await stub.SetActiveVersion(
        template_pb2.SetActiveVersionRequest(code=code, version=1, author="ops")
    )
    assert back.template.active_version == 1
    assert back.template.version.version == 1
    forward = await stub.SetActiveVersion(
        template_pb2.SetActiveVersionRequest(code=code, version=2, author="ops")
    )
    assert forward.template.active_version == 2

    for version, status in ((3, grpc.StatusCode.NOT_FOUND), (0, grpc.StatusCode.INVALID_ARGUMENT)):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.SetActiveVersion(
                template_pb2.SetActiveVersionRequest(code=code, version=version, author="ops")
            )
        assert error_code(info.value) == status


async def test_list_templates_filters_by_prefix_and_pages(stub: Stub, code: str) -> None:
    codes = [f"{code}/item-{n}" for n in range(5)]
    for item in reversed(codes):
        await stub.CreateTemplate(create_request(item))
    await stub.CreateTemplate(create_request(f"{code}-other"))

    seen: list[str] = []
    token = ""
    while True:
        page = await stub.ListTemplates(
            template_pb2.ListTemplatesRequest(code_prefix=f"{code}/", page_size=2, page_token=token)
        )
        seen += [t.code for t in page.templates]
        assert all(t.version.version == 1 and not t.version.contents for t in page.templates)
        token = page.next_page_token
        if not token:
            break
    assert seen == codes

    first = await stub.ListTemplates(
        template_pb2.ListTemplatesRequest(code_prefix=f"{code}/", page_size=2)
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ListTemplates(
            template_pb2.ListTemplatesRequest(
                code_prefix="elsewhere/", page_token=first.next_page_token
            )
        )
    assert dict(field_violations(info.value)).keys() == {"page_token"}


async def test_a_prefix_with_like_wildcards_matches_literally(stub: Stub, code: str) -> None:
    await stub.CreateTemplate(create_request(f"{code}/a_b"))
    await stub.CreateTemplate(create_request(f"{code}/axb"))
    page = await stub.ListTemplates(template_pb2.ListTemplatesRequest(code_prefix=f"{code}/a_"))
    assert [t.code for t in page.templates] == [f"{code}/a_b"]


async def test_delete_archives_and_keeps_history_readable(stub: Stub, code: str) -> None:
    await stub.CreateTemplate(create_request(code))
    await stub.DeleteTemplate(template_pb2.DeleteTemplateRequest(code=code))
    await stub.DeleteTemplate(template_pb2.DeleteTemplateRequest(code=code))  # idempotent

    got = await stub.GetTemplate(template_pb2.GetTemplateRequest(code=code))
    assert got.template.archived
    history = await stub.ListVersions(template_pb2.ListVersionsRequest(code=code))
    assert [v.version for v in history.versions] == [1]

    hidden = await stub.ListTemplates(template_pb2.ListTemplatesRequest(code_prefix=code))
    assert [t.code for t in hidden.templates] == []
    shown = await stub.ListTemplates(
        template_pb2.ListTemplatesRequest(code_prefix=code, include_archived=True)
    )
    assert [t.code for t in shown.templates] == [code]

    calls: list[Awaitable[object]] = [
        stub.Render(template_pb2.RenderRequest(code=code)),
        stub.PublishVersion(
            template_pb2.PublishVersionRequest(code=code, contents=[content()], author="a")
        ),
        stub.SetActiveVersion(
            template_pb2.SetActiveVersionRequest(code=code, version=1, author="a")
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert error_code(info.value) == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as taken:
        await stub.CreateTemplate(create_request(code))
    assert error_code(taken.value) == grpc.StatusCode.ALREADY_EXISTS


async def test_delete_of_a_missing_template_is_not_found(stub: Stub, code: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.DeleteTemplate(template_pb2.DeleteTemplateRequest(code=code))
    assert error_code(info.value) == grpc.StatusCode.NOT_FOUND


async def test_calls_without_the_service_token_are_refused(templated: ServiceProcess) -> None:
    async with grpc.aio.insecure_channel(templated.address) as channel:
        bare = template_pb2_grpc.TemplateServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await bare.GetTemplate(template_pb2.GetTemplateRequest(code="any"))
    assert error_code(info.value) == grpc.StatusCode.UNAUTHENTICATED


async def test_published_versions_cannot_change_even_in_sql(
    stub: Stub, isolation: Isolation, code: str
) -> None:
    await stub.CreateTemplate(create_request(code))
    url = f"{POSTGRES_URL}/{isolation.database('templates')}"
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for statement in (
            "UPDATE template_versions SET change_note = 'rewritten' WHERE code = %s",
            "DELETE FROM template_versions WHERE code = %s",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="immutable"):
                await conn.execute(statement, (code,))
