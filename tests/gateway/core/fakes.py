"""In-test doubles of userd and templated (real grpc.aio servers on port 0).

They stand in for our own UserService and TemplateService until those land; they speak
the real contracts (user.proto, template.proto) through mesh's server bootstrap, so the
gateway talks to them exactly as it will to the real processes.
"""

from __future__ import annotations

import string
import uuid
from dataclasses import dataclass, field

import grpc

from herald.v1 import (
    common_pb2,
    template_pb2,
    template_pb2_grpc,
    user_pb2,
    user_pb2_grpc,
)
from mesh.errors import FieldViolation, InvalidArgument, NotFound
from mesh.health import HealthMonitor
from mesh.item_errors import each, indexed
from mesh.runtime import GrpcService, create_grpc_server
from tests.support.infra import SERVICE_TOKEN


class FakeUsers(user_pb2_grpc.UserServiceServicer):
    """GetUser and BatchGetUsers over an in-memory dict; counts calls. With `batch`
    False, BatchGetUsers is UNIMPLEMENTED, as on a userd that predates it."""

    def __init__(self) -> None:
        self.users: dict[str, user_pb2.User] = {}
        self.get_calls = 0
        self.batch_calls = 0
        self.batch = True

    def add(
        self,
        *,
        email: str = "ada@example.com",
        phone: str = "+5511987654321",
        push: bool = False,
        locale: str = "en",
        email_pref: bool | None = None,
        sms_pref: bool | None = None,
        push_pref: bool | None = None,
    ) -> user_pb2.User:
        user = user_pb2.User(
            id=str(uuid.uuid4()), name="Ada", email=email, phone=phone, locale=locale
        )
        if push:
            user.push_targets.add(
                id=str(uuid.uuid4()), platform=common_pb2.PUSH_PLATFORM_FCM, token="tok-1"
            )
        for name, value in (("email", email_pref), ("sms", sms_pref), ("push", push_pref)):
            if value is not None:
                setattr(user.preferences, name, value)
        self.users[user.id] = user
        return user

    async def GetUser(self, request, context):
        self.get_calls += 1
        user = self.users.get(request.id)
        if user is None:
            raise NotFound(f"user {request.id} not found")
        return user_pb2.GetUserResponse(user=user)

    async def BatchGetUsers(self, request, context):
        if not self.batch:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")
        self.batch_calls += 1
        ids = sorted(set(request.ids))
        return user_pb2.BatchGetUsersResponse(
            users=[self.users[i] for i in ids if i in self.users],
            missing_ids=[i for i in ids if i not in self.users],
        )


@dataclass
class FakeTemplate:
    versions: dict[int, dict[str, str]] = field(default_factory=dict)

    @property
    def active(self) -> int:
        return max(self.versions)


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


class FakeTemplates(template_pb2_grpc.TemplateServiceServicer):
    """Render with str.format placeholders; a missing variable is INVALID_ARGUMENT
    naming `variables.<name>`, as templated answers it."""

    def __init__(self) -> None:
        self.templates: dict[str, FakeTemplate] = {}
        self.render_calls = 0
        self.batch_calls = 0
        self.batch = True  # False: BatchRender is UNIMPLEMENTED, as on an older templated
        self.rendered_channels: list[list[int]] = []

    def add(self, code: str, parts: dict[str, str], version: int = 1) -> None:
        self.templates.setdefault(code, FakeTemplate()).versions[version] = parts

    async def Render(self, request, context):
        self.render_calls += 1
        return self._render(request)

    async def BatchRender(self, request, context):
        if not self.batch:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")
        self.batch_calls += 1

        async def render(item):
            return self._render(item)

        outcomes = await each(request.requests, render, limit=500)
        return template_pb2.BatchRenderResponse(
            results=indexed(outcomes, template_pb2.BatchRenderResult, "rendered")
        )

    def _render(self, request):
        self.rendered_channels.append(list(request.channels))
        template = self.templates.get(request.code)
        version = request.version or (template.active if template else 0)
        if template is None or version not in template.versions:
            raise NotFound(f"template {request.code} not found")
        parts = template.versions[version]
        variables = {k: v for k, v in request.variables.items()}
        missing = sorted(set().union(*(_fields(t) for t in parts.values())) - set(variables))
        if missing:
            raise InvalidArgument(
                [FieldViolation(f"variables.{name}", "missing variable") for name in missing]
            )

        def render(key: str) -> str:
            return parts.get(key, "").format(**variables)

        content = template_pb2.LocalizedContent(language=request.language or "en")
        channels = set(request.channels)
        if common_pb2.CHANNEL_EMAIL in channels:
            content.email.subject = render("subject")
            content.email.html_body = render("html")
            content.email.text_body = render("text")
        if common_pb2.CHANNEL_SMS in channels:
            content.sms.text = render("sms")
        if common_pb2.CHANNEL_PUSH in channels:
            content.push.title = render("title")
            content.push.body = render("body")
        return template_pb2.RenderResponse(code=request.code, version=version, content=content)


@dataclass
class FakePeers:
    users: FakeUsers
    templates: FakeTemplates
    userd_addr: str
    templated_addr: str
    servers: list[grpc.aio.Server]

    async def stop(self) -> None:
        for server in self.servers:
            await server.stop(0.5)


async def _serve(name: str, register) -> tuple[grpc.aio.Server, str]:
    server, port = await create_grpc_server(
        "127.0.0.1:0", [GrpcService(name, register)], HealthMonitor(5.0), SERVICE_TOKEN
    )
    await server.start()
    return server, f"127.0.0.1:{port}"


async def start_fake_peers() -> FakePeers:
    users, templates = FakeUsers(), FakeTemplates()
    user_server, userd_addr = await _serve(
        "herald.v1.UserService", lambda s: user_pb2_grpc.add_UserServiceServicer_to_server(users, s)
    )
    template_server, templated_addr = await _serve(
        "herald.v1.TemplateService",
        lambda s: template_pb2_grpc.add_TemplateServiceServicer_to_server(templates, s),
    )
    return FakePeers(users, templates, userd_addr, templated_addr, [user_server, template_server])
