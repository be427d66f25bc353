"""herald.v1.TemplateService over gRPC: protobuf in, domain call, protobuf out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from herald.v1 import common_pb2, template_pb2, template_pb2_grpc
from mesh.errors import InvalidArgument
from mesh.item_errors import each, indexed
from templated.models import Channel, Content, EmailParts, PushParts, SmsParts, Template, Version
from templated.service import TemplateService

SERVICE_NAME = template_pb2.DESCRIPTOR.services_by_name["TemplateService"].full_name
Context = grpc.aio.ServicerContext[Any, Any]
MAX_BATCH = 500  # renderings in one BatchRender

_CHANNELS = {
    common_pb2.CHANNEL_EMAIL: Channel.EMAIL,
    common_pb2.CHANNEL_SMS: Channel.SMS,
    common_pb2.CHANNEL_PUSH: Channel.PUSH,
}


class TemplateServicer(template_pb2_grpc.TemplateServiceServicer):
    def __init__(self, service: TemplateService, *, max_variables_bytes: int) -> None:
        self._service = service
        self._max_variables_bytes = max_variables_bytes

    async def CreateTemplate(
        self, request: template_pb2.CreateTemplateRequest, context: Context
    ) -> template_pb2.CreateTemplateResponse:
        template = await self._service.create(
            code=request.code,
            name=request.name,
            description=request.description,
            default_language=request.default_language,
            contents=[content_from_proto(c) for c in request.contents],
            author=request.author,
            change_note=request.change_note,
        )
        return template_pb2.CreateTemplateResponse(template=template_to_proto(template))

    async def GetTemplate(
        self, request: template_pb2.GetTemplateRequest, context: Context
    ) -> template_pb2.GetTemplateResponse:
        template = await self._service.get(code=request.code, version=request.version)
        return template_pb2.GetTemplateResponse(template=template_to_proto(template))

    async def ListTemplates(
        self, request: template_pb2.ListTemplatesRequest, context: Context
    ) -> template_pb2.ListTemplatesResponse:
        page = await self._service.page(
            page_size=request.page_size,
            page_token=request.page_token,
            code_prefix=request.code_prefix,
            include_archived=request.include_archived,
        )
        return template_pb2.ListTemplatesResponse(
            templates=[template_to_proto(t) for t in page.items],
            next_page_token=page.next_page_token,
        )

    async def PublishVersion(
        self, request: template_pb2.PublishVersionRequest, context: Context
    ) -> template_pb2.PublishVersionResponse:
        template = await self._service.publish(
            code=request.code,
            contents=[content_from_proto(c) for c in request.contents],
            author=request.author,
            change_note=request.change_note,
        )
        return template_pb2.PublishVersionResponse(template=template_to_proto(template))

    async def ListVersions(
        self, request: template_pb2.ListVersionsRequest, context: Context
    ) -> template_pb2.ListVersionsResponse:
        page, active = await self._service.versions(
            code=request.code, page_size=request.page_size, page_token=request.page_token
        )
        return template_pb2.ListVersionsResponse(
            versions=[version_to_proto(v) for v in page.items],
            next_page_token=page.next_page_token,
            active_version=active,
        )

    async def SetActiveVersion(
        self, request: template_pb2.SetActiveVersionRequest, context: Context
    ) -> template_pb2.SetActiveVersionResponse:
        template = await self._service.set_active(
            code=request.code, version=request.version, author=request.author
        )
        return template_pb2.SetActiveVersionResponse(template=template_to_proto(template))

    async def DeleteTemplate(
        self, request: template_pb2.DeleteTemplateRequest, context: Context
    ) -> template_pb2.DeleteTemplateResponse:
        await self._service.archive(code=request.code)
        return template_pb2.DeleteTemplateResponse()

    async def Render(
        self, request: template_pb2.RenderRequest, context: Context
    ) -> template_pb2.RenderResponse:
        return await self._render(request)

    async def BatchRender(
        self, request: template_pb2.BatchRenderRequest, context: Context
    ) -> template_pb2.BatchRenderResponse:
        outcomes = await each(request.requests, self._render, limit=MAX_BATCH)
        return template_pb2.BatchRenderResponse(
            results=indexed(outcomes, template_pb2.BatchRenderResult, "rendered")
        )

    async def _render(self, request: template_pb2.RenderRequest) -> template_pb2.RenderResponse:
        if request.variables.ByteSize() > self._max_variables_bytes:
            raise InvalidArgument.field(
                "variables", f"exceed {self._max_variables_bytes} bytes serialized"
            )
        rendered = await self._service.render(
            code=request.code,
            language=request.language,
            variables=variables_from_proto(request.variables),
            channels=channels_from_proto(request.channels),
            version=request.version,
        )
        return template_pb2.RenderResponse(
            code=rendered.code,
            version=rendered.version,
            content=content_to_proto(rendered.content),
        )


def register(servicer: TemplateServicer) -> Callable[[grpc.aio.Server], None]:
    """The registrar `GrpcService` expects."""

    def add(server: grpc.aio.Server) -> None:
        template_pb2_grpc.add_TemplateServiceServicer_to_server(servicer, server)

    return add


def channels_from_proto(values: Any) -> list[Channel]:
    channels: list[Channel] = []
    for index, value in enumerate(values):
        channel = _CHANNELS.get(value)
        if channel is None:
            raise InvalidArgument.field(f"channels[{index}]", "must be EMAIL, SMS or PUSH")
        channels.append(channel)
    return channels


def variables_from_proto(variables: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as plain Python; integral numbers become ints (Struct has only doubles)."""
    plain = _integral(json_format.MessageToDict(variables))
    assert isinstance(plain, dict)
    return plain


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral(item) for item in value]
    return value


def content_from_proto(message: template_pb2.LocalizedContent) -> Content:
    email = message.email if message.HasField("email") else None
    push = message.push if message.HasField("push") else None
    return Content(
        language=message.language,
        email=EmailParts(email.subject, email.html_body, email.text_body) if email else None,
        sms=SmsParts(message.sms.text) if message.HasField("sms") else None,
        push=PushParts(push.title, push.body, dict(push.data)) if push else None,
    )


def content_to_proto(content: Content) -> template_pb2.LocalizedContent:
    message = template_pb2.LocalizedContent(language=content.language)
    if content.email is not None:
        message.email.CopyFrom(
            template_pb2.EmailContent(
                subject=content.email.subject,
                html_body=content.email.html_body,
                text_body=content.email.text_body,
            )
        )
    if content.sms is not None:
        message.sms.CopyFrom(template_pb2.SmsContent(text=content.sms.text))
    if content.push is not None:
        message.push.CopyFrom(
            template_pb2.PushContent(
                title=content.push.title, body=content.push.body, data=dict(content.push.data)
            )
        )
    return message


def version_to_proto(version: Version) -> template_pb2.TemplateVersion:
    return template_pb2.TemplateVersion(
        version=version.number,
        contents=[content_to_proto(c) for c in version.contents],
        variables=version.variables,
        author=version.author,
        change_note=version.change_note,
        create_time=_timestamp(version.create_time),
    )


def template_to_proto(template: Template) -> template_pb2.Template:
    return template_pb2.Template(
        code=template.code,
        name=template.name,
        description=template.description,
        default_language=template.default_language,
        active_version=template.active_version,
        version=version_to_proto(template.version),
        archived=template.archived,
        create_time=_timestamp(template.create_time),
        update_time=_timestamp(template.update_time),
    )


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp
