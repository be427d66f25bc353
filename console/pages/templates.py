"""Templates: the list; a template's versions side by side with a diff of any two and
which is active; a live preview through templated's real (sandboxed) renderer with the
variables typed in; publishing a new version and making a version active."""

from __future__ import annotations

import difflib
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from console.render import Pages
from console.security import Changer, Viewer
from console.services import Services
from gateway.apikeys import Scope
from gateway.http.backends import Backends, call
from gateway.http.convert import templates as convert
from gateway.http.convert.common import struct
from gateway.http.errors import ApiError
from gateway.http.schemas.templates import ContentOut, TemplateOut, VersionOut
from herald.v1 import common_pb2, template_pb2
from mesh import rules
from mesh.errors import InvalidArgument

MAX_VERSIONS = 50
ALL_CHANNELS = [common_pb2.CHANNEL_EMAIL, common_pb2.CHANNEL_SMS, common_pb2.CHANNEL_PUSH]
PARTS = ("subject", "html_body", "text_body", "sms_text", "push_title", "push_body")


def _lines(version: VersionOut) -> list[str]:
    """A version as text, one part after another, for the diff."""
    out: list[str] = []
    for content in version.contents:
        out.append(f"[{content.language}]")
        if content.email:
            out += [f"email.subject: {content.email.subject}", "email.html_body:"]
            out += (content.email.html_body or "").splitlines()
            out += ["email.text_body:", *(content.email.text_body or "").splitlines()]
        if content.sms:
            out += ["sms.text:", *content.sms.text.splitlines()]
        if content.push:
            out += [
                f"push.title: {content.push.title}",
                "push.body:",
                *content.push.body.splitlines(),
            ]
    return out


def diff(old: VersionOut, new: VersionOut) -> list[tuple[str, str]]:
    """(kind, line) of a unified diff from `old` to `new`; kind: add, del, hunk, same."""
    found: list[tuple[str, str]] = []
    lines = difflib.unified_diff(
        _lines(old), _lines(new), f"version {old.version}", f"version {new.version}", lineterm=""
    )
    for line in list(lines)[2:]:
        kind = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "same")
        found.append((kind, line))
    return found


def _code(value: str) -> str:
    if not rules.matches(rules.TEMPLATE_CODE, value, rules.MAX_TEMPLATE_CODE):
        raise InvalidArgument.field("code", rules.TEMPLATE_CODE_RULE)
    return value


def _content(form_value: dict[str, str], language: str) -> template_pb2.LocalizedContent:
    """The edited language's parts from the publish form (a channel left empty: none)."""
    out = template_pb2.LocalizedContent(language=language)
    if form_value["subject"] or form_value["html_body"] or form_value["text_body"]:
        out.email.CopyFrom(
            template_pb2.EmailContent(
                subject=form_value["subject"],
                html_body=form_value["html_body"],
                text_body=form_value["text_body"],
            )
        )
    if form_value["sms_text"]:
        out.sms.CopyFrom(template_pb2.SmsContent(text=form_value["sms_text"]))
    if form_value["push_title"] or form_value["push_body"]:
        out.push.CopyFrom(
            template_pb2.PushContent(title=form_value["push_title"], body=form_value["push_body"])
        )
    return out


def _proto(content: ContentOut) -> template_pb2.LocalizedContent:
    out = template_pb2.LocalizedContent(language=content.language)
    if content.email:
        out.email.CopyFrom(
            template_pb2.EmailContent(
                subject=content.email.subject,
                html_body=content.email.html_body or "",
                text_body=content.email.text_body or "",
            )
        )
    if content.sms:
        out.sms.CopyFrom(template_pb2.SmsContent(text=content.sms.text))
    if content.push:
        out.push.CopyFrom(
            template_pb2.PushContent(
                title=content.push.title, body=content.push.body, data=content.push.data
            )
        )
    return out


async def _versions(backends: Backends, code: str) -> tuple[list[VersionOut], int]:
    """The newest MAX_VERSIONS versions (without contents) and the active one's number."""
    answer = await call(
        backends.templates.ListVersions,
        template_pb2.ListVersionsRequest(code=code, page_size=MAX_VERSIONS),
        timeout=backends.timeout,
    )
    return [convert.version(v) for v in answer.versions], answer.active_version


async def _template(backends: Backends, code: str, version: int = 0) -> TemplateOut:
    """The template with one version's contents (0: the active one's)."""
    got = await call(
        backends.templates.GetTemplate,
        template_pb2.GetTemplateRequest(code=code, version=version),
        timeout=backends.timeout,
    )
    return convert.template(got.template)


async def _full(backends: Backends, code: str, version: int) -> VersionOut | None:
    """One version with its contents (ListVersions answers them without)."""
    return (await _template(backends, code, version)).version if version else None


def router(services: Services, pages: Pages) -> APIRouter:
    api = APIRouter()
    stub = services.backends.templates
    timeout = services.backends.timeout

    @api.get("/templates")
    async def template_list(request: Request, operator: Viewer) -> Response:
        operator.principal.require(Scope.TEMPLATES_READ)
        answer = await call(
            stub.ListTemplates,
            template_pb2.ListTemplatesRequest(page_size=500, include_archived=True),
            timeout=timeout,
        )
        found = [convert.template(t) for t in answer.templates]
        return pages(request, "templates.html", templates=found)

    @api.get("/templates/view")
    async def template_view(
        request: Request, operator: Viewer, code: str, a: int = 0, b: int = 0
    ) -> Response:
        operator.principal.require(Scope.TEMPLATES_READ)
        code = _code(code)
        template = await _template(services.backends, code)
        found, active = await _versions(services.backends, code)
        numbers = [v.version for v in found]
        right_number = b if b in numbers else (numbers[0] if numbers else 0)
        left_number = a if a in numbers else (numbers[1] if len(numbers) > 1 else right_number)
        right = await _full(services.backends, code, right_number)
        left = (
            right
            if left_number == right_number
            else await _full(services.backends, code, left_number)
        )
        active_version = template.version
        editing = active_version.contents[0] if active_version and active_version.contents else None
        return pages(
            request,
            "template.html",
            template=template,
            versions=found,
            active=active,
            left=left,
            right=right,
            diff=diff(left, right) if left and right else [],
            editing=editing,
            variables=active_version.variables if active_version else [],
        )

    @api.post("/templates/preview")
    async def preview(request: Request, operator: Changer) -> Response:
        """Renders a version with the variables typed in (`var.<name>` fields) through
        templated's Render: the real sandboxed renderer."""
        operator.principal.require(Scope.TEMPLATES_READ)
        form = await request.form()
        code = _code(str(form.get("code", "")))
        version = str(form.get("version", "0"))
        variables = {
            str(k).removeprefix("var."): str(v)
            for k, v in form.items()
            if str(k).startswith("var.")
        }
        try:
            answer = await call(
                stub.Render,
                template_pb2.RenderRequest(
                    code=code,
                    language=str(form.get("language", ""))[:35],
                    variables=struct(variables),
                    channels=ALL_CHANNELS,
                    version=int(version) if version.isdigit() else 0,
                ),
                timeout=timeout,
            )
        except ApiError as exc:
            # Shown where the preview goes, as the author types (htmx swaps 200s only).
            return pages(request, "_preview.html", rendered=None, error=exc.message)
        return pages(request, "_preview.html", rendered=convert.rendered(answer), error="")

    @api.post("/templates/publish")
    async def publish(
        request: Request,
        operator: Changer,
        code: Annotated[str, Form(max_length=rules.MAX_TEMPLATE_CODE)],
        language: Annotated[str, Form(max_length=35)],
        change_note: Annotated[str, Form(max_length=500)] = "",
    ) -> Response:
        """A new version: the edited language's parts; the other languages as the active
        version has them. It becomes active (PublishVersion)."""
        operator.principal.require(Scope.TEMPLATES_WRITE)
        code = _code(code)
        form = await request.form()
        values = {name: str(form.get(name, "")) for name in PARTS}
        current = (await _template(services.backends, code)).version
        contents = [_content(values, language)]
        if current:
            contents += [_proto(c) for c in current.contents if c.language != language]
        await call(
            stub.PublishVersion,
            template_pb2.PublishVersionRequest(
                code=code,
                contents=contents,
                author=f"console:{operator.key.label}",
                change_note=change_note,
            ),
            timeout=timeout,
        )
        base = request.scope.get("root_path", "")
        return RedirectResponse(f"{base}/templates/view?code={code}", status_code=303)

    @api.post("/templates/activate")
    async def activate(
        request: Request,
        operator: Changer,
        code: Annotated[str, Form(max_length=rules.MAX_TEMPLATE_CODE)],
        version: Annotated[int, Form(ge=1, le=2**31 - 1)],
    ) -> Response:
        operator.principal.require(Scope.TEMPLATES_WRITE)
        code = _code(code)
        await call(
            stub.SetActiveVersion,
            template_pb2.SetActiveVersionRequest(
                code=code, version=version, author=f"console:{operator.key.label}"
            ),
            timeout=timeout,
        )
        base = request.scope.get("root_path", "")
        return RedirectResponse(f"{base}/templates/view?code={code}", status_code=303)

    return api
