"""Templates: JSON ⇄ herald.v1 TemplateService."""

from __future__ import annotations

from gateway.http.convert.common import CHANNELS, struct, text, when
from gateway.http.schemas.templates import (
    ContentIn,
    ContentOut,
    EmailOut,
    PushOut,
    Rendered,
    RenderPreview,
    SmsOut,
    TemplateCreate,
    TemplateOut,
    VersionOut,
    VersionPublish,
)
from herald.v1 import template_pb2


def content(value: ContentIn) -> template_pb2.LocalizedContent:
    out = template_pb2.LocalizedContent(language=value.language)
    if value.email is not None:
        out.email.CopyFrom(
            template_pb2.EmailContent(
                subject=value.email.subject,
                html_body=value.email.html_body or "",
                text_body=value.email.text_body or "",
            )
        )
    if value.sms is not None:
        out.sms.CopyFrom(template_pb2.SmsContent(text=value.sms.text))
    if value.push is not None:
        out.push.CopyFrom(
            template_pb2.PushContent(
                title=value.push.title, body=value.push.body, data=value.push.data
            )
        )
    return out


def create_request(body: TemplateCreate, author: str) -> template_pb2.CreateTemplateRequest:
    return template_pb2.CreateTemplateRequest(
        code=body.code,
        name=body.name,
        description=body.description or "",
        default_language=body.default_language or body.contents[0].language,
        contents=[content(c) for c in body.contents],
        author=body.author or author,
        change_note=body.change_note or "",
    )


def publish_request(
    code: str, body: VersionPublish, author: str
) -> template_pb2.PublishVersionRequest:
    return template_pb2.PublishVersionRequest(
        code=code,
        contents=[content(c) for c in body.contents],
        author=body.author or author,
        change_note=body.change_note or "",
    )


def render_request(code: str, body: RenderPreview) -> template_pb2.RenderRequest:
    return template_pb2.RenderRequest(
        code=code,
        language=body.language or "",
        variables=struct(body.variables),
        channels=[CHANNELS[c] for c in body.channels],
        version=body.version or 0,
    )


def _parts(
    value: template_pb2.LocalizedContent,
) -> tuple[EmailOut | None, SmsOut | None, PushOut | None]:
    email = sms = push = None
    if value.HasField("email"):
        email = EmailOut(
            subject=value.email.subject,
            html_body=value.email.html_body,
            text_body=value.email.text_body,
        )
    if value.HasField("sms"):
        sms = SmsOut(text=value.sms.text)
    if value.HasField("push"):
        push = PushOut(title=value.push.title, body=value.push.body, data=dict(value.push.data))
    return email, sms, push


def _content(value: template_pb2.LocalizedContent) -> ContentOut:
    email, sms, push = _parts(value)
    return ContentOut(language=value.language, email=email, sms=sms, push=push)


def version(value: template_pb2.TemplateVersion) -> VersionOut:
    return VersionOut(
        version=value.version,
        contents=[_content(c) for c in value.contents],
        variables=list(value.variables),
        author=text(value.author),
        change_note=text(value.change_note),
        created_at=when(value.create_time),
    )


def template(value: template_pb2.Template) -> TemplateOut:
    return TemplateOut(
        code=value.code,
        name=value.name,
        description=text(value.description),
        default_language=text(value.default_language),
        active_version=value.active_version,
        archived=value.archived,
        version=version(value.version) if value.HasField("version") else None,
        created_at=when(value.create_time),
        updated_at=when(value.update_time),
    )


def rendered(value: template_pb2.RenderResponse) -> Rendered:
    email, sms, push = _parts(value.content)
    return Rendered(
        code=value.code,
        version=value.version,
        language=value.content.language,
        email=email,
        sms=sms,
        push=push,
    )
