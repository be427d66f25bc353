"""One templated process per test module, a stub to it, and its SQL counter."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from herald.v1 import template_pb2, template_pb2_grpc
from tests.conftest import ServiceFactory
from tests.support.processes import ServiceProcess

if TYPE_CHECKING:
    from herald.v1.template_pb2_grpc import TemplateServiceAsyncStub

SQL_COUNTER = "herald_templated_sql_queries"


@pytest.fixture(scope="module")
def templated(service_factory: ServiceFactory) -> ServiceProcess:
    return service_factory("templated")


@pytest.fixture(scope="module")
async def stub(
    templated: ServiceProcess,
) -> AsyncIterator[TemplateServiceAsyncStub]:
    channel = templated.channel()
    yield template_pb2_grpc.TemplateServiceStub(channel)
    await channel.close()


@pytest.fixture
def code() -> str:
    """A template code no other test uses."""
    return f"test/{uuid.uuid4().hex[:12]}"


async def sql_queries(process: ServiceProcess) -> float:
    """herald_templated_sql_queries_total of a process, read from its metrics endpoint."""
    port = process.env["HERALD_TEMPLATED_METRICS_PORT"]
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    answer.raise_for_status()
    return sum(
        sample.value
        for family in text_string_to_metric_families(answer.text)
        if family.name == SQL_COUNTER
        for sample in family.samples
        if sample.name == f"{SQL_COUNTER}_total"
    )


def content(
    language: str = "en",
    *,
    subject: str = "Hello {{ name }}",
    html: str = "<p>Hello {{ name }}</p>",
    text: str = "Hello {{ name }}",
    sms: str | None = "Hi {{ name }}",
    push: tuple[str, str, dict[str, str]] | None = None,
) -> template_pb2.LocalizedContent:
    message = template_pb2.LocalizedContent(
        language=language,
        email=template_pb2.EmailContent(subject=subject, html_body=html, text_body=text),
    )
    if sms is not None:
        message.sms.text = sms
    if push is not None:
        title, body, data = push
        message.push.CopyFrom(template_pb2.PushContent(title=title, body=body, data=data))
    return message


def create_request(
    code: str, *contents: template_pb2.LocalizedContent, default_language: str = "en"
) -> template_pb2.CreateTemplateRequest:
    return template_pb2.CreateTemplateRequest(
        code=code,
        name="Test template",
        description="made by a test",
        default_language=default_language,
        contents=list(contents) or [content()],
        author="tests@example.com",
        change_note="first",
    )


def error_code(error: BaseException) -> grpc.StatusCode:
    assert isinstance(error, grpc.aio.AioRpcError)
    return error.code()
