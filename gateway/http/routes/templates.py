"""`/api/v1/templates`: create, get, list, publish a version, list versions, set the active
version, archive, and a render preview → TemplateService.

Codes are paths ("auth/welcome"), so `{code}` spans slashes, up to a last segment that
names an action (`/versions`, `/active-version`, `/render`); codes cannot end in one.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from starlette.convertors import Convertor, register_url_convertor

from gateway.http.auth import TemplatesRead, TemplatesWrite
from gateway.http.backends import Backends, call
from gateway.http.convert import templates as convert
from gateway.http.routes import error_responses
from gateway.http.schemas.common import PageQuery
from gateway.http.schemas.templates import (
    RESERVED_LAST_SEGMENT,
    RESERVED_SEGMENTS,
    ActiveVersionSet,
    Rendered,
    RenderPreview,
    TemplateCreate,
    TemplateOut,
    TemplatePage,
    TemplateQuery,
    VersionPage,
    VersionPublish,
)
from herald.v1 import template_pb2
from mesh import rules

Code = Annotated[
    str,
    Path(
        pattern=rules.TEMPLATE_CODE,
        max_length=rules.MAX_TEMPLATE_CODE,
        json_schema_extra={"not": {"pattern": RESERVED_LAST_SEGMENT}},
        description="e.g. auth/welcome",
        examples=["marketing/spring-sale"],
    ),
]


class _CodeConvertor(Convertor[str]):
    """A template code in a path: slashes allowed, but not a final action segment, so
    `/templates/a/versions` is only ever the versions of `a` (and 405s list the truth)."""

    _reserved = "|".join(re.escape(s) for s in RESERVED_SEGMENTS)
    regex = rf"[^/](?:(?!/(?:{_reserved})$).)*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("template_code", _CodeConvertor())


def router(backends: Backends, prefix: str) -> APIRouter:
    api = APIRouter(prefix=f"{prefix}/templates", tags=["templates"])
    timeout = backends.timeout
    stub = backends.templates

    @api.post(
        "/",
        status_code=201,
        responses=error_responses(409, body=True),
        summary="Create a template with its first version (scope: templates:write)",
    )
    async def create_template(key: TemplatesWrite, body: TemplateCreate) -> TemplateOut:
        answer = await call(
            stub.CreateTemplate, convert.create_request(body, key.label), timeout=timeout
        )
        return convert.template(answer.template)

    @api.get("/", responses=error_responses(), summary="List templates (scope: templates:read)")
    async def list_templates(
        _: TemplatesRead, query: Annotated[TemplateQuery, Query()]
    ) -> TemplatePage:
        answer = await call(
            stub.ListTemplates,
            template_pb2.ListTemplatesRequest(
                page_size=query.page_size,
                page_token=query.page_token or "",
                code_prefix=query.code_prefix or "",
                include_archived=query.include_archived,
            ),
            timeout=timeout,
        )
        return TemplatePage(
            items=[convert.template(t) for t in answer.templates],
            next_page_token=answer.next_page_token or None,
        )

    @api.get(
        "/{code:template_code}/versions",
        responses=error_responses(404),
        summary="List a template's versions, newest first (scope: templates:read)",
    )
    async def list_versions(
        _: TemplatesRead, code: Code, query: Annotated[PageQuery, Query()]
    ) -> VersionPage:
        answer = await call(
            stub.ListVersions,
            template_pb2.ListVersionsRequest(
                code=code, page_size=query.page_size, page_token=query.page_token or ""
            ),
            timeout=timeout,
        )
        return VersionPage(
            items=[convert.version(v) for v in answer.versions],
            active_version=answer.active_version,
            next_page_token=answer.next_page_token or None,
        )

    @api.post(
        "/{code:template_code}/versions",
        status_code=201,
        responses=error_responses(404, 409, body=True),
        summary="Publish a new version and make it active (scope: templates:write)",
    )
    async def publish_version(key: TemplatesWrite, code: Code, body: VersionPublish) -> TemplateOut:
        answer = await call(
            stub.PublishVersion, convert.publish_request(code, body, key.label), timeout=timeout
        )
        return convert.template(answer.template)

    @api.put(
        "/{code:template_code}/active-version",
        responses=error_responses(404, 409, body=True),
        summary="Make an existing version active (scope: templates:write)",
    )
    async def set_active_version(
        key: TemplatesWrite, code: Code, body: ActiveVersionSet
    ) -> TemplateOut:
        answer = await call(
            stub.SetActiveVersion,
            template_pb2.SetActiveVersionRequest(code=code, version=body.version, author=key.label),
            timeout=timeout,
        )
        return convert.template(answer.template)

    @api.post(
        "/{code:template_code}/render",
        responses=error_responses(404, 409, body=True),
        summary="Render a preview with the given variables (scope: templates:read)",
    )
    async def render(_: TemplatesRead, code: Code, body: RenderPreview) -> Rendered:
        """A variable the template needs and the body lacks is a 400 naming it; an archived
        template does not render (409)."""
        answer = await call(stub.Render, convert.render_request(code, body), timeout=timeout)
        return convert.rendered(answer)

    @api.get(
        "/{code:template_code}",
        responses=error_responses(404),
        summary="Get a template with its active (or a given) version (scope: templates:read)",
    )
    async def get_template(
        _: TemplatesRead,
        code: Code,
        version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    ) -> TemplateOut:
        answer = await call(
            stub.GetTemplate,
            template_pb2.GetTemplateRequest(code=code, version=version or 0),
            timeout=timeout,
        )
        return convert.template(answer.template)

    @api.delete(
        "/{code:template_code}",
        status_code=204,
        response_class=Response,
        responses=error_responses(404),
        summary="Archive a template; its history stays readable (scope: templates:write)",
    )
    async def archive_template(_: TemplatesWrite, code: Code) -> Response:
        await call(
            stub.DeleteTemplate, template_pb2.DeleteTemplateRequest(code=code), timeout=timeout
        )
        return Response(status_code=204)

    return api
