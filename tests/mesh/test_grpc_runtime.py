"""The gRPC bootstrap in-process: interceptors, health from dependencies, graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc

from herald.v1 import notification_pb2, notification_pb2_grpc, user_pb2, user_pb2_grpc
from mesh import runtime as runtime_module
from mesh.errors import InvalidArgument, NotFound
from mesh.health import HealthMonitor
from mesh.interceptors import CORRELATION_HEADER, field_violations
from mesh.logging import current_correlation_id
from mesh.runtime import GrpcService, Runtime, create_grpc_server
from mesh.settings import CommonSettings
from tests.support.infra import free_port
from tests.support.redis_server import RedisServer
from tests.support.waits import eventually

TOKEN = "unit-test-token"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class ProbeUsers(user_pb2_grpc.UserServiceServicer):
    """A UserService whose GetUser exercises each interceptor path by the id it gets."""

    # Set when a "slow" call is being handled (the shutdown test waits for it).
    slow_started = asyncio.Event()

    async def GetUser(self, request: user_pb2.GetUserRequest, context: Any) -> Any:
        if request.id == "bad":
            raise InvalidArgument.field("id", "must be a UUID")
        if request.id == "missing":
            raise NotFound("user missing not found")
        if request.id == "boom":
            raise RuntimeError("secret internals")
        if request.id == "slow":
            ProbeUsers.slow_started.set()
            await asyncio.sleep(1.0)  # a call that takes a while: in flight at shutdown
        return user_pb2.GetUserResponse(user=user_pb2.User(id=current_correlation_id() or ""))


class ProbeWatch(notification_pb2_grpc.NotificationServiceServicer):
    """A NotificationService whose WatchNotification streams the call's correlation id,
    then ends as the id it gets says."""

    async def WatchNotification(
        self, request: notification_pb2.WatchNotificationRequest, context: Any
    ) -> AsyncIterator[notification_pb2.WatchNotificationResponse]:
        correlation_id = current_correlation_id() or ""
        yield notification_pb2.WatchNotificationResponse(
            notification=notification_pb2.Notification(id=correlation_id)
        )
        if request.id == "missing":
            raise NotFound("notification missing not found")
        if request.id == "boom":
            raise RuntimeError("secret internals")


def _register(server: grpc.aio.Server) -> None:
    user_pb2_grpc.add_UserServiceServicer_to_server(ProbeUsers(), server)
    notification_pb2_grpc.add_NotificationServiceServicer_to_server(ProbeWatch(), server)


@pytest.fixture
async def server() -> AsyncIterator[str]:
    health = HealthMonitor(interval=60)
    srv, port = await create_grpc_server(
        "127.0.0.1:0", [GrpcService("herald.v1.UserService", _register)], health, TOKEN
    )
    await srv.start()
    await health.start()
    yield f"127.0.0.1:{port}"
    await srv.stop(None)


def _auth(extra: tuple[tuple[str, str], ...] = ()) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {TOKEN}"), *extra)


async def _get(address: str, user_id: str, metadata: Any = None) -> user_pb2.GetUserResponse:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = user_pb2_grpc.UserServiceStub(channel)
        return await stub.GetUser(user_pb2.GetUserRequest(id=user_id), metadata=metadata)


async def test_calls_without_the_service_token_are_refused(server: str) -> None:
    for metadata in (None, (("authorization", "Bearer wrong"),)):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _get(server, "x", metadata)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_health_and_reflection_need_no_token(server: str) -> None:
    async with grpc.aio.insecure_channel(server) as channel:
        answer = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="herald.v1.UserService")
        )
    assert answer.status == SERVING
    # The server runs on this loop: grpcurl must not block it.
    grpcurl = await asyncio.create_subprocess_exec(
        ".venv/bin/grpcurl", "-plaintext", server, "list", stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await asyncio.wait_for(grpcurl.communicate(), 10)
    assert "herald.v1.UserService" in stdout.decode().split()


async def test_correlation_id_from_metadata_reaches_the_handler(server: str) -> None:
    answer = await _get(server, "x", _auth(((CORRELATION_HEADER, "req-42"),)))
    assert answer.user.id == "req-42"
    generated = await _get(server, "x", _auth())
    assert len(generated.user.id) == 32


async def test_domain_errors_map_to_codes_with_field_violations(server: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await _get(server, "bad", _auth())
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(bad.value) == [("id", "must be a UUID")]

    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await _get(server, "missing", _auth())
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_unexpected_errors_are_internal_without_leaking(server: str) -> None:
    with structlog.testing.capture_logs() as logs, pytest.raises(grpc.aio.AioRpcError) as err:
        await _get(server, "boom", _auth())
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in (err.value.details() or "")
    assert any(entry["event"] == "unhandled error" for entry in logs)


async def test_access_log_line_per_call(server: str) -> None:
    with structlog.testing.capture_logs() as logs:
        await _get(server, "x", _auth(((CORRELATION_HEADER, "c-1"),)))
        with pytest.raises(grpc.aio.AioRpcError):
            await _get(server, "missing", _auth())
        # The client hears an aborted call before the server's interceptor logs it.
        for _ in range(100):
            if sum(entry["event"] == "rpc" for entry in logs) >= 2:
                break
            await asyncio.sleep(0.01)
    lines = [entry for entry in logs if entry["event"] == "rpc"]
    assert [line["code"] for line in lines] == ["OK", "NOT_FOUND"]
    assert all(line["method"] == "/herald.v1.UserService/GetUser" for line in lines)


async def test_server_streams_pass_the_same_interceptors(server: str) -> None:
    def watch(channel: grpc.aio.Channel, watched: str, metadata: Any = None) -> Any:
        stub = notification_pb2_grpc.NotificationServiceStub(channel)
        return stub.WatchNotification(
            notification_pb2.WatchNotificationRequest(id=watched), metadata=metadata
        )

    async with grpc.aio.insecure_channel(server) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await watch(channel, "x").read()
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED

        with structlog.testing.capture_logs() as logs:
            ok = watch(channel, "x", _auth(((CORRELATION_HEADER, "c-9"),)))
            assert [m.notification.id async for m in ok] == ["c-9"]
            missing = watch(channel, "missing", _auth())
            assert len((await missing.read()).notification.id) == 32
            with pytest.raises(grpc.aio.AioRpcError) as not_found:
                await missing.read()
            boom = watch(channel, "boom", _auth())
            await boom.read()
            with pytest.raises(grpc.aio.AioRpcError) as internal:
                await boom.read()
            for _ in range(100):
                if sum(entry["event"] == "rpc" for entry in logs) >= 3:
                    break
                await asyncio.sleep(0.01)

    assert not_found.value.code() == grpc.StatusCode.NOT_FOUND
    assert internal.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in (internal.value.details() or "")
    codes = sorted(entry["code"] for entry in logs if entry["event"] == "rpc")
    assert codes == ["INTERNAL", "NOT_FOUND", "OK"]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, so stopping it disturbs nobody."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.kill()


async def _status(address: str, service: str) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        answer = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=2
        )
    return int(answer.status)


async def _wait_status(address: str, service: str, wanted: int) -> None:
    for _ in range(100):
        if await _status(address, service) == wanted:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{service!r} never became {wanted}")


@pytest.mark.parametrize("required", [True, False])
async def test_health_follows_a_dependency_down_and_back(
    own_redis: RedisServer, required: bool
) -> None:
    settings = CommonSettings(
        redis_url=own_redis.url,
        health_interval_seconds=0.2,
        service_token=TOKEN,
    )
    async with Runtime("probe", settings) as runtime:
        runtime.redis(required=required)
        grpc_port = await runtime.serve_grpc(free_port(), [])
        address = f"127.0.0.1:{grpc_port}"
        await _wait_status(address, "", SERVING)

        own_redis.kill()
        await _wait_status(address, "herald.dependency.redis", NOT_SERVING)
        # A required dependency takes the process down; an optional one only degrades it.
        assert await _status(address, "") == (NOT_SERVING if required else SERVING)

        own_redis.start()
        await _wait_status(address, "herald.dependency.redis", SERVING)
        await _wait_status(address, "", SERVING)
        runtime.request_shutdown()


async def test_shutdown_finishes_calls_in_flight_and_turns_health_off() -> None:
    settings = CommonSettings(service_token=TOKEN, grace_seconds=5)
    async with Runtime("probe", settings) as runtime:
        grpc_port = await runtime.serve_grpc(
            free_port(), [GrpcService("herald.v1.UserService", _register)]
        )
        address = f"127.0.0.1:{grpc_port}"
        seen: list[int] = []
        watching = grpc.aio.insecure_channel(address)

        async def watch() -> None:
            stream = health_pb2_grpc.HealthStub(watching).Watch(health_pb2.HealthCheckRequest())
            with contextlib.suppress(grpc.aio.AioRpcError):
                async for answer in stream:
                    seen.append(answer.status)

        watcher = asyncio.create_task(watch())
        ProbeUsers.slow_started.clear()
        in_flight = asyncio.create_task(_get(address, "slow", _auth()))
        await asyncio.wait_for(ProbeUsers.slow_started.wait(), 10)
        await eventually(lambda: seen, 10, what="the health watch's first answer")
        runtime.request_shutdown()
        await runtime.wait_for_shutdown()
    # Leaving the block ran the shutdown: the slow call still got its answer, and health
    # had turned NOT_SERVING first (what a load balancer or probe watches).
    answer = await in_flight
    assert answer.user.id
    await asyncio.wait_for(watcher, timeout=5)
    await watching.close()
    assert seen[0] == health_pb2.HealthCheckResponse.SERVING
    assert health_pb2.HealthCheckResponse.NOT_SERVING in seen
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _get(address, "x", _auth())
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_slow_shutdown_step_is_named_in_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that outlasts its supervisor's stop timeout says which step held it; quick
    steps say nothing."""
    monkeypatch.setattr(runtime_module, "SLOW_STEP_SECONDS", 0.2)

    async def hanging_close() -> None:
        await asyncio.sleep(0.3)  # stands for a close that waits on a peer

    async def quick_close() -> None:
        return None

    with structlog.testing.capture_logs() as logs:
        async with Runtime("probe", CommonSettings(service_token=TOKEN)) as runtime:
            runtime.on_shutdown(hanging_close)
            runtime.on_shutdown(quick_close)
            runtime.request_shutdown()
    slow = [entry for entry in logs if entry["event"] == "a shutdown step was slow"]
    assert [(entry["service"], entry["step"].rsplit(".", 1)[-1]) for entry in slow] == [
        ("probe", "hanging_close")
    ]
    assert slow[0]["seconds"] >= 0.2
    assert logs[-1]["event"] == "stopped"
