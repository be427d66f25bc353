"""The real userd and templated, in process: their servicers on grpc.aio servers on port 0
(Herald's interceptor chain, health), each over a PostgreSQL database of its own, on an
event loop of their own in a background thread, so a sync test helper can call them too.

`calls` counts the RPCs each server answered; a method named in `absent` is answered
UNIMPLEMENTED, exactly as a server that predates it answers (no handler for it).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2_grpc

from herald.v1 import common_pb2, template_pb2, template_pb2_grpc, user_pb2, user_pb2_grpc
from mesh import cache, db, migrations
from mesh.health import HealthMonitor
from mesh.interceptors import TOKEN_HEADER, Continuation, Handler, default_interceptors
from mesh.outbound import OutboundRule
from templated.cache import HeadCache
from templated.limits import Limits
from templated.rendering import Renderer
from templated.service import TemplateService
from templated.servicer import SERVICE_NAME as TEMPLATE_SERVICE
from templated.servicer import TemplateServicer, register
from templated.store import TemplateStore
from tests.support.infra import POSTGRES_URL, REDIS_URL, SERVICE_TOKEN, Isolation
from userd.cache import UserCache
from userd.cache_sync import CacheSync
from userd.passwords import Passwords
from userd.service import Users
from userd.servicer import SERVICE_NAME as USER_SERVICE
from userd.servicer import UserServicer

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[3]
METADATA = ((TOKEN_HEADER, f"Bearer {SERVICE_TOKEN}"),)


class Calls(grpc.aio.ServerInterceptor):
    """Counts the calls of each method; the methods in `absent` have no handler."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.absent: set[str] = set()

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        name = handler_call_details.method.rsplit("/", 1)[-1]
        if name in self.absent:
            return None
        self.counts[name] += 1
        return await continuation(handler_call_details)


@dataclass
class Server:
    """One in-process service: where it listens and what it was asked."""

    address: str
    calls: Calls
    channel: grpc.Channel = field(init=False)

    def __post_init__(self) -> None:
        self.channel = grpc.insecure_channel(self.address)


class UserPeer(Server):
    def add(
        self,
        *,
        email: str = "",
        phone: str = "+5511987654321",
        push: bool = False,
        locale: str = "en",
        email_pref: bool | None = None,
        sms_pref: bool | None = None,
        push_pref: bool | None = None,
    ) -> user_pb2.User:
        """A user created through userd's CreateUser (a new address unless given)."""
        request = user_pb2.CreateUserRequest(
            name="Ada",
            email=email or f"ada.{uuid.uuid4().hex[:12]}@example.com",
            phone=phone,
            password="correct horse battery",
            locale=locale,
        )
        if push:
            request.push_targets.add(platform=common_pb2.PUSH_PLATFORM_FCM, token="tok-1")
        for name, value in (("email", email_pref), ("sms", sms_pref), ("push", push_pref)):
            if value is not None:
                setattr(request.preferences, name, value)
        stub = user_pb2_grpc.UserServiceStub(self.channel)
        return stub.CreateUser(request, metadata=METADATA, timeout=10).user

    @property
    def get_calls(self) -> int:
        return self.calls.counts["GetUser"]

    @property
    def batch_calls(self) -> int:
        return self.calls.counts["BatchGetUsers"]

    @property
    def batch(self) -> bool:
        """False: BatchGetUsers is UNIMPLEMENTED, as on a userd that predates it."""
        return "BatchGetUsers" not in self.calls.absent

    @batch.setter
    def batch(self, present: bool) -> None:
        (self.calls.absent.discard if present else self.calls.absent.add)("BatchGetUsers")


class TemplatePeer(Server):
    def add(self, code: str, parts: dict[str, str]) -> None:
        """Creates template `code` in English from Jinja `parts` (subject, html, text,
        sms, title, body), or publishes them as its next version."""
        content = template_pb2.LocalizedContent(language="en")
        if "subject" in parts:
            content.email.subject = parts["subject"]
            content.email.html_body = parts.get("html", "")
            content.email.text_body = parts.get("text", "")
        if "sms" in parts:
            content.sms.text = parts["sms"]
        if "title" in parts or "body" in parts:
            content.push.title = parts.get("title", "")
            content.push.body = parts.get("body", "")
        stub = template_pb2_grpc.TemplateServiceStub(self.channel)
        try:
            stub.CreateTemplate(
                template_pb2.CreateTemplateRequest(
                    code=code,
                    name=code,
                    default_language="en",
                    contents=[content],
                    author="tests",
                ),
                metadata=METADATA,
                timeout=10,
            )
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
            stub.PublishVersion(
                template_pb2.PublishVersionRequest(code=code, contents=[content], author="tests"),
                metadata=METADATA,
                timeout=10,
            )

    def archive(self, code: str) -> None:
        """Archives `code`: it no longer renders."""
        stub = template_pb2_grpc.TemplateServiceStub(self.channel)
        stub.DeleteTemplate(
            template_pb2.DeleteTemplateRequest(code=code), metadata=METADATA, timeout=10
        )

    @property
    def render_calls(self) -> int:
        return self.calls.counts["Render"]

    @property
    def batch_calls(self) -> int:
        return self.calls.counts["BatchRender"]

    @property
    def batch(self) -> bool:
        """False: BatchRender is UNIMPLEMENTED, as on a templated that predates it."""
        return "BatchRender" not in self.calls.absent

    @batch.setter
    def batch(self, present: bool) -> None:
        (self.calls.absent.discard if present else self.calls.absent.add)("BatchRender")


class Peers:
    """userd and templated on a loop of their own (`start`, `stop`)."""

    def __init__(self, isolation: Isolation) -> None:
        self._isolation = isolation
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stack = AsyncExitStack()
        self.users: UserPeer
        self.templates: TemplatePeer

    @property
    def userd_addr(self) -> str:
        return self.users.address

    @property
    def templated_addr(self) -> str:
        return self.templates.address

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout=60)

    def start(self) -> Peers:
        self._thread.start()
        self.users, self.templates = self._run(self._start())
        return self

    def stop(self) -> None:
        self.users.channel.close()
        self.templates.channel.close()
        self._run(self._stack.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _pool(self, name: str, service: str) -> Any:
        database = self._isolation.database(name)
        await migrations.prepare(POSTGRES_URL, database, ROOT / service / "migrations")
        pool = await db.open_pool(f"{POSTGRES_URL}/{database}", max_size=10)
        self._stack.push_async_callback(pool.close)
        return pool

    async def _serve(
        self, service: str, add: Callable[[grpc.aio.Server], None]
    ) -> tuple[str, Calls]:
        calls = Calls()
        server = grpc.aio.server(interceptors=[calls, *default_interceptors(SERVICE_TOKEN)])
        add(server)
        health = HealthMonitor(5.0)
        health.add_service(service)
        health_pb2_grpc.add_HealthServicer_to_server(health.servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self._stack.push_async_callback(server.stop, 1.0)
        return f"127.0.0.1:{port}", calls

    async def _start(self) -> tuple[UserPeer, TemplatePeer]:
        redis = cache.create_redis(REDIS_URL)
        self._stack.push_async_callback(redis.aclose)
        user_pool = await self._pool("users_core", "userd")
        sync = CacheSync(
            cache=UserCache(redis, self._isolation.redis_prefix, 3600.0),
            pool=user_pool,
            timeout=1.0,
            repair_interval=1.0,
        )
        await sync.start()
        self._stack.push_async_callback(sync.stop)
        users = UserServicer(
            Users(
                pool=user_pool,
                cache=sync,
                passwords=Passwords("cheapest"),
                outbound=OutboundRule(allow_loopback=False),
            )
        )
        userd, user_calls = await self._serve(
            USER_SERVICE, lambda s: user_pb2_grpc.add_UserServiceServicer_to_server(users, s)
        )
        origin = uuid.uuid4().hex
        templates = TemplateServicer(
            TemplateService(
                store=TemplateStore(await self._pool("templates_core", "templated"), origin=origin),
                renderer=Renderer(Limits(max_output_chars=262_144, max_steps=20_000)),
                heads=HeadCache(ttl=30.0, maxsize=4096),
                cache_size=4096,
            ),
            max_variables_bytes=65_536,
        )
        templated, template_calls = await self._serve(TEMPLATE_SERVICE, register(templates))
        return UserPeer(userd, user_calls), TemplatePeer(templated, template_calls)
