"""In-test gRPC fakes of UserService, TemplateService, NotificationService and
StatusService: real grpc.aio servers (Herald's interceptor chain, so the service token is
checked and domain errors map as in the real services) with in-memory state.

They run on their own event loop in a background thread, so sync tests (httpx, the
schemathesis runner) and the gateway process can call them at any time.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import timestamp_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from herald.v1 import (
    common_pb2,
    notification_pb2,
    notification_pb2_grpc,
    status_pb2,
    status_pb2_grpc,
    template_pb2,
    template_pb2_grpc,
    user_pb2,
    user_pb2_grpc,
)
from mesh.errors import (
    AlreadyExists,
    Conflict,
    FieldViolation,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from mesh.interceptors import (
    CorrelationIdInterceptor,
    ErrorMappingInterceptor,
    ServiceTokenInterceptor,
)
from tests.support.infra import SERVICE_TOKEN

VARIABLE = re.compile(r"{{\s*([A-Za-z_][A-Za-z0-9_]*)\s*}}")

# GET /api/v1/users/{one of these} makes the fake answer that gRPC status.
FAILING_USERS: dict[str, grpc.StatusCode] = {
    str(uuid.UUID(int=429)): grpc.StatusCode.RESOURCE_EXHAUSTED,
    str(uuid.UUID(int=500)): grpc.StatusCode.INTERNAL,
    str(uuid.UUID(int=501)): grpc.StatusCode.UNIMPLEMENTED,
    str(uuid.UUID(int=503)): grpc.StatusCode.UNAVAILABLE,
    str(uuid.UUID(int=504)): grpc.StatusCode.DEADLINE_EXCEEDED,
}
SLOW_SECONDS = 3.0  # longer than the edge's deadline in the tests


def _now() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return ts


def _page(items: list[Any], size: int, token: str) -> tuple[list[Any], str]:
    start = int(token) if token.isdigit() else 0
    size = size or 50
    end = start + size
    return items[start:end], str(end) if end < len(items) else ""


@dataclass
class Calls:
    """What the fakes received: (method, metadata) per call, for assertions."""

    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def record(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        self.seen.append((method, metadata))

    def last(self, method: str) -> dict[str, str]:
        return next(m for name, m in reversed(self.seen) if name == method)


class Users(user_pb2_grpc.UserServiceServicer):
    def __init__(self, calls: Calls) -> None:
        self.calls = calls
        self.users: dict[str, user_pb2.User] = {}

    def _get(self, user_id: str) -> user_pb2.User:
        if user_id not in self.users:
            raise NotFound(f"user {user_id} not found")
        return self.users[user_id]

    async def CreateUser(self, request: Any, context: Any) -> Any:
        self.calls.record("CreateUser", context)
        if any(u.email == request.email for u in self.users.values()):
            raise AlreadyExists("email already registered")
        if request.email.endswith("@invalid.example"):
            raise InvalidArgument.field("email", "domain does not accept mail")
        prefs = user_pb2.Preferences(email=True, sms=False, push=False)
        prefs.MergeFrom(request.preferences)
        user = user_pb2.User(
            id=str(uuid.uuid4()),
            name=request.name,
            email=request.email,
            phone=request.phone,
            locale=request.locale or "en",
            time_zone=request.time_zone or "UTC",
            preferences=prefs,
            create_time=_now(),
            update_time=_now(),
        )
        for target in request.push_targets:
            added = user.push_targets.add()
            added.CopyFrom(target)
            added.id = str(uuid.uuid4())
            added.create_time.CopyFrom(_now())
        self.users[user.id] = user
        return user_pb2.CreateUserResponse(user=user)

    async def GetUser(self, request: Any, context: Any) -> Any:
        self.calls.record("GetUser", context)
        failure = FAILING_USERS.get(request.id)
        if failure == grpc.StatusCode.DEADLINE_EXCEEDED:
            await asyncio.sleep(SLOW_SECONDS)
        elif failure is not None:
            await context.abort(failure, f"injected {failure.name}")
        return user_pb2.GetUserResponse(user=self._get(request.id))

    async def UpdateUser(self, request: Any, context: Any) -> Any:
        self.calls.record("UpdateUser", context)
        user = self._get(request.user.id)
        for path in request.update_mask.paths:
            if path == "email" and "@" not in request.user.email:
                raise InvalidArgument.field("user.email", "not an email address")
            if path.startswith("preferences."):
                channel = path.split(".", 1)[1]
                setattr(user.preferences, channel, getattr(request.user.preferences, channel))
            elif path != "password":
                setattr(user, path, getattr(request.user, path))
        user.update_time.CopyFrom(_now())
        return user_pb2.UpdateUserResponse(user=user)

    async def UpdatePreferences(self, request: Any, context: Any) -> Any:
        self.calls.record("UpdatePreferences", context)
        user = self._get(request.user_id)
        user.preferences.MergeFrom(request.preferences)
        return user_pb2.UpdatePreferencesResponse(user=user)

    async def AddPushTarget(self, request: Any, context: Any) -> Any:
        self.calls.record("AddPushTarget", context)
        user = self._get(request.user_id)
        target = user.push_targets.add()
        target.CopyFrom(request.target)
        target.id = str(uuid.uuid4())
        target.create_time.CopyFrom(_now())
        return user_pb2.AddPushTargetResponse(user=user, target=target)

    async def RemovePushTarget(self, request: Any, context: Any) -> Any:
        self.calls.record("RemovePushTarget", context)
        user = self._get(request.user_id)
        kept = [t for t in user.push_targets if t.id != request.target_id]
        removed = len(kept) != len(user.push_targets)
        del user.push_targets[:]
        user.push_targets.extend(kept)
        return user_pb2.RemovePushTargetResponse(user=user, removed=removed)

    async def ListUsers(self, request: Any, context: Any) -> Any:
        self.calls.record("ListUsers", context)
        page, token = _page(list(self.users.values()), request.page_size, request.page_token)
        return user_pb2.ListUsersResponse(users=page, next_page_token=token)

    async def DeleteUser(self, request: Any, context: Any) -> Any:
        self.calls.record("DeleteUser", context)
        self._get(request.id)
        del self.users[request.id]
        return user_pb2.DeleteUserResponse()


class Templates(template_pb2_grpc.TemplateServiceServicer):
    def __init__(self, calls: Calls) -> None:
        self.calls = calls
        self.templates: dict[str, template_pb2.Template] = {}
        self.versions: dict[str, list[template_pb2.TemplateVersion]] = {}

    def _get(self, code: str) -> template_pb2.Template:
        if code not in self.templates:
            raise NotFound(f"template {code} not found")
        return self.templates[code]

    def _version(self, code: str, number: int) -> template_pb2.TemplateVersion:
        template = self._get(code)
        number = number or template.active_version
        for version in self.versions[code]:
            if version.version == number:
                return version
        raise NotFound(f"template {code} has no version {number}")

    def _publish(self, code: str, contents: Any, author: str, note: str) -> None:
        sources = " ".join(str(c) for c in contents)
        version = template_pb2.TemplateVersion(
            version=len(self.versions[code]) + 1,
            contents=contents,
            variables=sorted(set(VARIABLE.findall(sources))),
            author=author,
            change_note=note,
            create_time=_now(),
        )
        self.versions[code].append(version)
        template = self.templates[code]
        template.active_version = version.version
        template.version.CopyFrom(version)
        template.update_time.CopyFrom(_now())

    async def CreateTemplate(self, request: Any, context: Any) -> Any:
        self.calls.record("CreateTemplate", context)
        if request.code in self.templates:
            raise AlreadyExists(f"template {request.code} exists")
        self.templates[request.code] = template_pb2.Template(
            code=request.code,
            name=request.name,
            description=request.description,
            default_language=request.default_language,
            create_time=_now(),
        )
        self.versions[request.code] = []
        self._publish(request.code, request.contents, request.author, request.change_note)
        return template_pb2.CreateTemplateResponse(template=self.templates[request.code])

    async def GetTemplate(self, request: Any, context: Any) -> Any:
        self.calls.record("GetTemplate", context)
        template = template_pb2.Template()
        template.CopyFrom(self._get(request.code))
        template.version.CopyFrom(self._version(request.code, request.version))
        return template_pb2.GetTemplateResponse(template=template)

    async def ListTemplates(self, request: Any, context: Any) -> Any:
        self.calls.record("ListTemplates", context)
        found = [
            t
            for t in self.templates.values()
            if t.code.startswith(request.code_prefix)
            and (request.include_archived or not t.archived)
        ]
        page, token = _page(found, request.page_size, request.page_token)
        return template_pb2.ListTemplatesResponse(templates=page, next_page_token=token)

    async def PublishVersion(self, request: Any, context: Any) -> Any:
        self.calls.record("PublishVersion", context)
        self._get(request.code)
        self._publish(request.code, request.contents, request.author, request.change_note)
        return template_pb2.PublishVersionResponse(template=self.templates[request.code])

    async def ListVersions(self, request: Any, context: Any) -> Any:
        self.calls.record("ListVersions", context)
        template = self._get(request.code)
        newest_first = list(reversed(self.versions[request.code]))
        page, token = _page(newest_first, request.page_size, request.page_token)
        return template_pb2.ListVersionsResponse(
            versions=page, next_page_token=token, active_version=template.active_version
        )

    async def SetActiveVersion(self, request: Any, context: Any) -> Any:
        self.calls.record("SetActiveVersion", context)
        version = self._version(request.code, request.version)
        template = self._get(request.code)
        template.active_version = version.version
        template.version.CopyFrom(version)
        return template_pb2.SetActiveVersionResponse(template=template)

    async def DeleteTemplate(self, request: Any, context: Any) -> Any:
        self.calls.record("DeleteTemplate", context)
        self._get(request.code).archived = True
        return template_pb2.DeleteTemplateResponse()

    def render(
        self, code: str, language: str, variables: dict[str, Any], version: int, prefix: str = ""
    ) -> template_pb2.RenderResponse:
        """Substitutes {{ name }}; a missing variable is INVALID_ARGUMENT naming it."""
        chosen = self._version(code, version)
        missing = sorted(v for v in chosen.variables if v not in variables)
        if missing:
            raise InvalidArgument(
                [
                    FieldViolation(f"{prefix}variables.{v}", "required by the template")
                    for v in missing
                ]
            )
        content = next((c for c in chosen.contents if c.language == language), chosen.contents[0])
        out = template_pb2.LocalizedContent()
        out.CopyFrom(content)

        def fill(text: str) -> str:
            return VARIABLE.sub(lambda m: str(variables[m.group(1)]), text)

        out.email.subject = fill(out.email.subject)
        out.email.html_body = fill(out.email.html_body)
        out.sms.text = fill(out.sms.text)
        return template_pb2.RenderResponse(code=code, version=chosen.version, content=out)

    async def Render(self, request: Any, context: Any) -> Any:
        self.calls.record("Render", context)
        variables = dict(request.variables.items())
        return self.render(request.code, request.language, variables, request.version)


class Notifications(notification_pb2_grpc.NotificationServiceServicer):
    def __init__(self, calls: Calls, users: Users, templates: Templates) -> None:
        self.calls = calls
        self.users = users
        self.templates = templates
        self.notifications: dict[str, notification_pb2.Notification] = {}
        self.keys: dict[tuple[str, str], tuple[bytes, str]] = {}

    def _accept(self, request: Any, client: str, prefix: str = "") -> notification_pb2.SendResponse:
        if request.user_id not in self.users.users:
            raise NotFound(f"user {request.user_id} not found")
        variables = dict(request.variables.items())
        self.templates.render(request.template_code, request.language, variables, 0, prefix)
        digest = hashlib.sha256(request.SerializeToString(deterministic=True)).digest()
        if request.request_id:
            known = self.keys.get((client, request.request_id))
            if known is not None:
                if known[0] != digest:
                    raise Conflict(f"request_id {request.request_id} was used for another payload")
                return notification_pb2.SendResponse(
                    notification_id=known[1],
                    status=common_pb2.NOTIFICATION_STATUS_PENDING,
                    duplicate=True,
                )
        notification = notification_pb2.Notification(
            id=str(uuid.uuid4()),
            user_id=request.user_id,
            channel=request.channel,
            route=[request.channel],
            template_code=request.template_code,
            template_version=1,
            request_id=request.request_id,
            priority=request.priority,
            message_type=request.message_type or common_pb2.MESSAGE_TYPE_TRANSACTIONAL,
            metadata=request.metadata,
            status=common_pb2.NOTIFICATION_STATUS_PENDING,
            create_time=_now(),
            update_time=_now(),
            client_id=client,
        )
        self.notifications[notification.id] = notification
        if request.request_id:
            self.keys[(client, request.request_id)] = (digest, notification.id)
        return notification_pb2.SendResponse(
            notification_id=notification.id, status=notification.status
        )

    @staticmethod
    def _client(context: Any) -> str:
        metadata = dict(context.invocation_metadata() or ())
        return str(metadata.get("x-herald-client-id", "internal"))

    async def Send(self, request: Any, context: Any) -> Any:
        self.calls.record("Send", context)
        return self._accept(request, self._client(context))

    async def SendBatch(self, request: Any, context: Any) -> Any:
        self.calls.record("SendBatch", context)
        results = []
        for index, item in enumerate(request.requests):
            try:
                accepted = self._accept(item, self._client(context), f"requests[{index}].")
                results.append(notification_pb2.SendBatchResult(index=index, accepted=accepted))
            except (NotFound, InvalidArgument, Conflict) as exc:
                error = common_pb2.ItemError(code=exc.code.value[0], message=exc.message)
                for violation in getattr(exc, "violations", []):
                    error.field_violations.add(
                        field=violation.field, description=violation.description
                    )
                results.append(notification_pb2.SendBatchResult(index=index, error=error))
        return notification_pb2.SendBatchResponse(results=results)

    def _get(self, notification_id: str) -> notification_pb2.Notification:
        if notification_id not in self.notifications:
            raise NotFound(f"notification {notification_id} not found")
        return self.notifications[notification_id]

    async def GetNotification(self, request: Any, context: Any) -> Any:
        self.calls.record("GetNotification", context)
        return notification_pb2.GetNotificationResponse(notification=self._get(request.id))

    async def ListNotifications(self, request: Any, context: Any) -> Any:
        self.calls.record("ListNotifications", context)
        found = [
            n
            for n in self.notifications.values()
            if (not request.user_id or n.user_id == request.user_id)
            and (not request.status or n.status == request.status)
        ]
        page, token = _page(found, request.page_size, request.page_token)
        return notification_pb2.ListNotificationsResponse(notifications=page, next_page_token=token)

    async def Retry(self, request: Any, context: Any) -> Any:
        self.calls.record("Retry", context)
        notification = self._get(request.id)
        if notification.status != common_pb2.NOTIFICATION_STATUS_FAILED:
            raise Conflict("only a failed notification can be retried")
        notification.status = common_pb2.NOTIFICATION_STATUS_PENDING
        notification.retries.add(
            requested_by=request.requested_by,
            reason=request.reason,
            generation=len(notification.retries) + 2,
            request_time=_now(),
        )
        return notification_pb2.RetryResponse(notification=notification)


class Status(status_pb2_grpc.StatusServiceServicer):
    def __init__(self, calls: Calls, notifications: Notifications) -> None:
        self.calls = calls
        self.notifications = notifications

    async def ReportStatus(self, request: Any, context: Any) -> Any:
        self.calls.record("ReportStatus", context)
        notification = self.notifications._get(request.notification_id)
        if request.channel not in notification.route:
            raise Conflict("the notification is not routed through that channel")
        changed = notification.status != request.status
        notification.status = request.status
        notification.status_reason = request.error
        if request.status == common_pb2.NOTIFICATION_STATUS_DELIVERED:
            notification.delivered_channel = request.channel
            notification.deliver_time.CopyFrom(
                request.timestamp if request.timestamp.seconds else _now()
            )
        return status_pb2.ReportStatusResponse(status=notification.status, changed=changed)

    async def Claim(self, request: Any, context: Any) -> Any:
        raise ResourceExhausted("not used by the edge")

    async def GetStatus(self, request: Any, context: Any) -> Any:
        raise Unavailable("not used by the edge")


class FakeMesh:
    """The four services on one port, in a thread of their own."""

    def __init__(self) -> None:
        self.calls = Calls()
        self.users = Users(self.calls)
        self.templates = Templates(self.calls)
        self.notifications = Notifications(self.calls, self.users, self.templates)
        self.status = Status(self.calls, self.notifications)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: grpc.aio.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def run(self, fn: Callable[[], Any]) -> Any:
        """Runs `fn` on the fakes' loop (their state is only touched there)."""

        async def call() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(10)

    async def _start(self) -> None:
        # Herald's chain (token checked, domain errors mapped) without the access log.
        server = grpc.aio.server(
            interceptors=[
                CorrelationIdInterceptor(),
                ServiceTokenInterceptor(SERVICE_TOKEN),
                ErrorMappingInterceptor(),
            ]
        )
        user_pb2_grpc.add_UserServiceServicer_to_server(self.users, server)
        template_pb2_grpc.add_TemplateServiceServicer_to_server(self.templates, server)
        notification_pb2_grpc.add_NotificationServiceServicer_to_server(self.notifications, server)
        status_pb2_grpc.add_StatusServiceServicer_to_server(self.status, server)
        health_servicer = health.aio.HealthServicer()
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        self.port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self._server = server

    def start(self) -> FakeMesh:
        self._thread.start()
        future: Future[None] = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        future.result(10)
        return self

    def stop(self) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.stop(1), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
