"""Redis down, paused or restarted with old data: userd answers from PostgreSQL, its health
shows the degraded dependency, it never serves a cached user older than a successful
update, and it corrects Redis once Redis answers.

Each test runs its own redis-server (never the shared one) and its own users database: the
`cache_repairs` table of a database belongs to the one Redis its userd processes share.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from grpc_health.v1 import health_pb2
from psycopg.rows import dict_row

from herald.v1 import user_pb2, user_pb2_grpc
from tests.conftest import ServiceFactory
from tests.support.infra import POSTGRES_URL, Isolation
from tests.support.processes import SERVING, ServiceProcess, health_status
from tests.support.redis_server import RedisServer
from tests.support.waits import eventually
from tests.userd.helpers import cached, create_request, fcm_target, rpc_error
from userd.cache import TOMBSTONE_VERSION

REDIS_HEALTH = "herald.dependency.redis"
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class Setup:
    """A private Redis, a users database of its own, and a way to start userd on them."""

    redis: RedisServer
    database: str
    prefix: str
    factory: ServiceFactory

    def userd(self) -> ServiceProcess:
        return self.factory(
            "userd",
            env={"HERALD_REDIS_URL": self.redis.url, "HERALD_USERD_DATABASE": self.database},
        )

    def pending_repairs(self) -> set[str]:
        with psycopg.connect(f"{POSTGRES_URL}/{self.database}", row_factory=dict_row) as conn:
            rows = conn.execute("SELECT user_id FROM cache_repairs").fetchall()
        return {str(row["user_id"]) for row in rows}

    def entry(self, user_id: str) -> tuple[int, user_pb2.User | None]:
        return cached(self.redis.client(), self.prefix, user_id)


@pytest.fixture
def setup(tmp_path: Path, isolation: Isolation, service_factory: ServiceFactory) -> Iterator[Setup]:
    server = RedisServer(tmp_path / "redis", persistent=True).start()
    yield Setup(
        redis=server,
        database=isolation.database(f"users_{uuid.uuid4().hex[:8]}"),
        prefix=isolation.redis_prefix,
        factory=service_factory,
    )
    server.kill()


@pytest.fixture
async def running(setup: Setup) -> AsyncIterator[tuple[ServiceProcess, Any]]:
    proc = setup.userd()
    channel = proc.channel()
    yield proc, user_pb2_grpc.UserServiceStub(channel)
    await channel.close()
    proc.stop()


async def get(stub: Any, user_id: str) -> user_pb2.User:
    user: user_pb2.User = (await stub.GetUser(user_pb2.GetUserRequest(id=user_id))).user
    return user


async def test_redis_down_then_back_with_its_old_data(
    setup: Setup, running: tuple[ServiceProcess, Any], tmp_path: Path
) -> None:
    proc, stub = running
    original = user = (await stub.CreateUser(create_request())).user
    doomed = (await stub.CreateUser(create_request())).user
    await eventually(lambda: (setup.entry(user.id)[1], setup.entry(doomed.id)[1]) == (user, doomed))

    setup.redis.kill()
    await eventually(lambda: health_status(proc.grpc_port, REDIS_HEALTH) == NOT_SERVING)
    assert health_status(proc.grpc_port) == SERVING
    assert health_status(proc.grpc_port, "herald.v1.UserService") == SERVING

    # Every RPC still works, from PostgreSQL.
    user = (
        await stub.UpdatePreferences(
            user_pb2.UpdatePreferencesRequest(
                user_id=user.id, preferences=user_pb2.Preferences(email=False, push=True)
            )
        )
    ).user
    user = (
        await stub.UpdateUser(
            user_pb2.UpdateUserRequest(
                user=user_pb2.User(id=user.id, name="Changed While Redis Was Down"),
                update_mask=FieldMask(paths=["name"]),
            )
        )
    ).user
    user = (
        await stub.AddPushTarget(
            user_pb2.AddPushTargetRequest(user_id=user.id, target=fcm_target())
        )
    ).user
    assert await get(stub, user.id) == user
    newcomer = (await stub.CreateUser(create_request())).user
    assert await get(stub, newcomer.id) == newcomer
    await stub.DeleteUser(user_pb2.DeleteUserRequest(id=doomed.id))
    gone = await rpc_error(stub.GetUser(user_pb2.GetUserRequest(id=doomed.id)))
    assert gone.code() == grpc.StatusCode.NOT_FOUND
    listed = await stub.ListUsers(user_pb2.ListUsersRequest())
    assert {u.id for u in listed.users} == {user.id, newcomer.id}
    assert setup.pending_repairs() == {user.id, doomed.id, newcomer.id}

    # Redis comes back with what its AOF kept: the pre-outage entries (a copy shows it).
    copy = RedisServer(tmp_path / "copy", persistent=True)
    shutil.copytree(setup.redis.directory, copy.directory)
    copy.start()
    assert cached(copy.client(), setup.prefix, user.id)[1] == original
    assert cached(copy.client(), setup.prefix, doomed.id)[1] == doomed
    copy.kill()
    setup.redis.start()

    # userd never answers the stale entries, and rewrites them.
    async def corrected() -> bool:
        assert await get(stub, user.id) == user
        missing = await rpc_error(stub.GetUser(user_pb2.GetUserRequest(id=doomed.id)))
        assert missing.code() == grpc.StatusCode.NOT_FOUND
        return (
            setup.entry(user.id)[1] == user
            and setup.entry(doomed.id) == (TOMBSTONE_VERSION, None)
            and setup.entry(newcomer.id)[1] == newcomer
        )

    await eventually(corrected)
    await eventually(lambda: health_status(proc.grpc_port, REDIS_HEALTH) == SERVING)
    assert setup.pending_repairs() == set()


async def test_redis_restarted_from_an_older_snapshot_is_never_served(
    tmp_path: Path, isolation: Isolation, service_factory: ServiceFactory
) -> None:
    """Redis acknowledged the update, then lost it (restarted from an older RDB snapshot):
    no repair was recorded, yet userd must not serve the older entry it came back with."""
    server = RedisServer(tmp_path / "rdb").start()  # no AOF: a restart loads dump.rdb
    setup = Setup(
        redis=server,
        database=isolation.database(f"users_{uuid.uuid4().hex[:8]}"),
        prefix=isolation.redis_prefix,
        factory=service_factory,
    )
    proc = setup.userd()
    channel = proc.channel()
    stub = user_pb2_grpc.UserServiceStub(channel)
    try:
        user = (
            await stub.CreateUser(
                create_request(preferences=user_pb2.Preferences(email=True, sms=True))
            )
        ).user
        assert await get(stub, user.id) == user
        await eventually(lambda: setup.entry(user.id)[1] == user)
        server.client().save()
        updated = (
            await stub.UpdatePreferences(
                user_pb2.UpdatePreferencesRequest(
                    user_id=user.id, preferences=user_pb2.Preferences(sms=False)
                )
            )
        ).user
        await eventually(lambda: setup.entry(user.id)[1] == updated)
        assert setup.pending_repairs() == set()

        server.kill()
        server.start()
        assert setup.entry(user.id)[1] == user  # the snapshot's older entry is back
        await eventually(lambda: "user cache cleared" in proc.logs())

        async def never_stale() -> bool:
            assert await get(stub, user.id) == updated
            return health_status(proc.grpc_port, REDIS_HEALTH) == SERVING and (
                setup.entry(user.id)[1] in (None, updated)
            )

        await eventually(never_stale)

        async def refilled() -> bool:  # once trusted again, a read fills the entry anew
            assert await get(stub, user.id) == updated
            return bool(setup.entry(user.id)[1] == updated)

        await eventually(refilled)
    finally:
        await channel.close()
        proc.stop()
        server.kill()


async def test_paused_redis_keeps_a_stale_entry_that_userd_never_serves(
    setup: Setup, running: tuple[ServiceProcess, Any]
) -> None:
    _, stub = running
    user = (await stub.CreateUser(create_request())).user
    await eventually(lambda: setup.entry(user.id)[1] == user)
    admin = setup.redis.client()
    admin.execute_command("CLIENT", "PAUSE", "60000", "WRITE")
    try:
        # Redis still answers reads but takes no writes: the write-through times out.
        updated = (
            await stub.UpdatePreferences(
                user_pb2.UpdatePreferencesRequest(
                    user_id=user.id, preferences=user_pb2.Preferences(sms=False)
                )
            )
        ).user
        assert updated.preferences.sms is False
        assert setup.entry(user.id)[1] == user
        assert await get(stub, user.id) == updated
        assert setup.pending_repairs() == {user.id}
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")

    async def corrected() -> bool:
        assert await get(stub, user.id) == updated
        return bool(setup.entry(user.id)[1] == updated)

    await eventually(corrected)
    await eventually(lambda: setup.pending_repairs() == set())


async def test_repairs_left_by_a_crashed_userd_are_done_by_the_next(setup: Setup) -> None:
    first = setup.userd()
    channel = first.channel()
    stub = user_pb2_grpc.UserServiceStub(channel)
    user = (await stub.CreateUser(create_request())).user
    await eventually(lambda: setup.entry(user.id)[1] == user)
    admin = setup.redis.client()
    admin.execute_command("CLIENT", "PAUSE", "60000", "WRITE")
    try:
        updated = (
            await stub.UpdatePreferences(
                user_pb2.UpdatePreferencesRequest(
                    user_id=user.id, preferences=user_pb2.Preferences(email=False)
                )
            )
        ).user
    finally:
        await channel.close()
        first.kill()
        admin.execute_command("CLIENT", "UNPAUSE")
    assert setup.entry(user.id)[1] == user
    assert setup.pending_repairs() == {user.id}

    second = setup.userd()
    try:
        await eventually(lambda: setup.entry(user.id)[1] == updated)
        assert setup.pending_repairs() == set()
    finally:
        second.stop()


async def test_userd_starts_without_redis_and_fills_it_when_it_comes(setup: Setup) -> None:
    setup.redis.kill()
    proc = setup.userd()
    channel = proc.channel()
    stub = user_pb2_grpc.UserServiceStub(channel)
    try:
        assert health_status(proc.grpc_port) == SERVING
        assert health_status(proc.grpc_port, REDIS_HEALTH) == NOT_SERVING
        user = (await stub.CreateUser(create_request())).user
        assert await get(stub, user.id) == user

        setup.redis.start()
        await eventually(lambda: setup.entry(user.id)[1] == user)
        await eventually(lambda: health_status(proc.grpc_port, REDIS_HEALTH) == SERVING)
    finally:
        await channel.close()
        proc.stop()
