"""The password is stored only as an argon2id hash: never answered, never logged, never cached."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import psycopg
import pytest
import redis
from argon2 import PasswordHasher
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message

from herald.v1 import user_pb2
from tests.conftest import ServiceFactory
from tests.support.infra import Isolation
from tests.support.processes import ServiceProcess
from tests.userd.helpers import Stub, create_request, fcm_target, rpc_error, snapshot

SECRET = "Sw0rdfish-never-to-be-seen"
NEW_SECRET = "Tr0mbone-also-never-seen"


@pytest.fixture(scope="module")
def userd(service_factory: ServiceFactory) -> Iterator[ServiceProcess]:
    """This module's userd logs at DEBUG: the most it would ever write."""
    proc = service_factory("userd", env={"HERALD_LOG_LEVEL": "DEBUG"})
    yield proc
    proc.stop()


async def test_the_password_never_leaves_userd(
    userd: ServiceProcess,
    stub: Stub,
    users_db: psycopg.Connection[dict[str, Any]],
    shared_redis: redis.Redis,
    isolation: Isolation,
) -> None:
    answers: list[Message] = []
    errors: list[str] = []

    created = await stub.CreateUser(create_request(password=SECRET, push_targets=[fcm_target()]))
    answers.append(created)
    user = created.user
    answers.append(await stub.GetUser(user_pb2.GetUserRequest(id=user.id)))
    answers.append(
        await stub.UpdateUser(
            user_pb2.UpdateUserRequest(
                user=user_pb2.User(id=user.id, name="Renamed"),
                update_mask=FieldMask(paths=["name", "password"]),
                password=NEW_SECRET,
            )
        )
    )
    answers.append(
        await stub.UpdatePreferences(
            user_pb2.UpdatePreferencesRequest(
                user_id=user.id, preferences=user_pb2.Preferences(sms=False)
            )
        )
    )
    answers.append(
        await stub.AddPushTarget(
            user_pb2.AddPushTargetRequest(user_id=user.id, target=fcm_target())
        )
    )
    answers.append(await stub.ListUsers(user_pb2.ListUsersRequest(page_size=500)))
    # Refused requests carrying a password: a taken email, bad fields, a password not masked.
    for call in (
        stub.CreateUser(create_request(email=user.email, password=SECRET)),
        stub.CreateUser(create_request(email="bad", password=SECRET)),
        stub.CreateUser(create_request(password=SECRET + "x" * 600)),
        stub.UpdateUser(
            user_pb2.UpdateUserRequest(
                user=user_pb2.User(id=user.id, name="X"),
                update_mask=FieldMask(paths=["name"]),
                password=SECRET,
            )
        ),
    ):
        error = await rpc_error(call)
        errors.append(f"{error.details()} {error.trailing_metadata()}")

    stored = snapshot(users_db, user.id)["user"]
    assert stored["password_hash"].startswith("$argon2id$")
    assert PasswordHasher().verify(stored["password_hash"], NEW_SECRET)

    cache_entry = b"".join(
        cast(list[bytes], shared_redis.hvals(f"{isolation.redis_prefix}user:{user.id}"))
    )
    await stub.DeleteUser(user_pb2.DeleteUserRequest(id=user.id))

    logs = userd.logs()
    assert '"method":"/herald.v1.UserService/UpdateUser"' in logs  # the log was written
    for secret in (SECRET, NEW_SECRET):
        assert all(secret.encode() not in a.SerializeToString() for a in answers)
        assert all(secret not in e for e in errors)
        assert secret.encode() not in cache_entry
        assert secret not in logs
        assert secret not in str(stored)
