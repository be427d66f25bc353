"""Concurrent changes: no update loses another's fields, one email gives one user."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import psycopg
import redis
from google.protobuf.field_mask_pb2 import FieldMask

from herald.v1 import user_pb2
from tests.support.infra import Isolation
from tests.userd.helpers import Stub, cached, create_request, fcm_target, unique_email

Db = psycopg.Connection[dict[str, Any]]
ROUNDS = 15


async def test_concurrent_updates_of_one_user_never_lose_each_others_fields(
    stub: Stub, users_db: Db, shared_redis: redis.Redis, isolation: Isolation
) -> None:
    user = (await stub.CreateUser(create_request())).user
    for round_ in range(ROUNDS):
        name = f"Name {round_}"
        locale = ["en", "fr", "de"][round_ % 3]
        sms = round_ % 2 == 0
        label = f"device {round_}"
        await asyncio.gather(
            stub.UpdateUser(
                user_pb2.UpdateUserRequest(
                    user=user_pb2.User(id=user.id, name=name), update_mask=FieldMask(paths=["name"])
                )
            ),
            stub.UpdateUser(
                user_pb2.UpdateUserRequest(
                    user=user_pb2.User(id=user.id, locale=locale),
                    update_mask=FieldMask(paths=["locale"]),
                )
            ),
            stub.UpdatePreferences(
                user_pb2.UpdatePreferencesRequest(
                    user_id=user.id, preferences=user_pb2.Preferences(sms=sms)
                )
            ),
            stub.UpdateUser(
                user_pb2.UpdateUserRequest(
                    user=user_pb2.User(id=user.id, preferences=user_pb2.Preferences(push=sms)),
                    update_mask=FieldMask(paths=["preferences.push"]),
                )
            ),
            stub.AddPushTarget(
                user_pb2.AddPushTargetRequest(user_id=user.id, target=fcm_target(label=label))
            ),
        )
        got = (await stub.GetUser(user_pb2.GetUserRequest(id=user.id))).user
        assert (got.name, got.locale, got.preferences.sms, got.preferences.push) == (
            name,
            locale,
            sms,
            sms,
        )
        assert got.push_targets[-1].label == label
        assert len(got.push_targets) == round_ + 1
        # The cache holds the last version, whichever write-through came last.
        row = users_db.execute("SELECT version FROM users WHERE id = %s", (user.id,)).fetchone()
        assert row is not None
        assert cached(shared_redis, isolation.redis_prefix, user.id) == (row["version"], got)


async def test_concurrent_creates_with_one_email_give_one_user(stub: Stub, users_db: Db) -> None:
    email = unique_email("race")
    variants = [email, email.upper(), email.capitalize(), email] * 3
    results = await asyncio.gather(
        *(stub.CreateUser(create_request(email=e)) for e in variants), return_exceptions=True
    )
    created = [r for r in results if isinstance(r, user_pb2.CreateUserResponse)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(created) == 1
    assert len(refused) == len(variants) - 1
    assert {e.code() for e in refused} == {grpc.StatusCode.ALREADY_EXISTS}
    rows = users_db.execute(
        "SELECT id FROM users WHERE lower(email) = lower(%s)", (email,)
    ).fetchall()
    assert [str(r["id"]) for r in rows] == [created[0].user.id]


async def test_concurrent_adds_never_exceed_the_push_target_limit(stub: Stub, users_db: Db) -> None:
    user = (
        await stub.CreateUser(create_request(push_targets=[fcm_target() for _ in range(15)]))
    ).user
    results = await asyncio.gather(
        *(
            stub.AddPushTarget(user_pb2.AddPushTargetRequest(user_id=user.id, target=fcm_target()))
            for _ in range(12)
        ),
        return_exceptions=True,
    )
    added = [r for r in results if isinstance(r, user_pb2.AddPushTargetResponse)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert (len(added), len(refused)) == (5, 7)
    assert {e.code() for e in refused} == {grpc.StatusCode.FAILED_PRECONDITION}
    row = users_db.execute(
        "SELECT count(*) AS n FROM push_targets WHERE user_id = %s", (user.id,)
    ).fetchone()
    assert row is not None
    assert row["n"] == 20
