"""Small helpers shared by the userd tests."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import grpc
import psycopg
import pytest
import redis

from herald.v1 import common_pb2, user_pb2
from mesh.interceptors import field_violations

if TYPE_CHECKING:
    from herald.v1.user_pb2_grpc import UserServiceAsyncStub

    Stub: TypeAlias = UserServiceAsyncStub
else:
    Stub = Any


PASSWORD = "correct horse battery staple"


def unique_email(tag: str = "user") -> str:
    return f"{tag}.{uuid.uuid4().hex[:10]}@example.com"


def fcm_target(token: str | None = None, label: str = "") -> user_pb2.PushTarget:
    return user_pb2.PushTarget(
        platform=common_pb2.PUSH_PLATFORM_FCM,
        token=token or f"fcm-{uuid.uuid4().hex}:APA91b{uuid.uuid4().hex}",
        label=label,
    )


def create_request(**fields: Any) -> user_pb2.CreateUserRequest:
    """A valid CreateUserRequest (the seed's payload plus a phone); `fields` override."""
    values: dict[str, Any] = {
        "name": "Ada Lovelace",
        "email": unique_email(),
        "phone": "+14155550100",
        "password": PASSWORD,
        "preferences": user_pb2.Preferences(email=True, push=False),
    }
    values.update(fields)
    return user_pb2.CreateUserRequest(**values)


def snapshot(db: psycopg.Connection[dict[str, Any]], user_id: str) -> dict[str, Any]:
    """Everything stored about a user (hash and version included), to prove nothing changed."""
    row = db.execute("SELECT * FROM users WHERE id = %s", (user_id,)).fetchone()
    targets = db.execute(
        "SELECT * FROM push_targets WHERE user_id = %s ORDER BY id", (user_id,)
    ).fetchall()
    return {"user": row, "targets": targets}


def cached(client: redis.Redis, prefix: str, user_id: str) -> tuple[int, user_pb2.User | None]:
    """(version, user) as stored under the documented key; (0, None) when absent."""
    fields = cast(dict[bytes, bytes], client.hgetall(f"{prefix}user:{user_id}"))
    if not fields:
        return 0, None
    data = fields.get(b"user")
    return int(fields[b"version"]), user_pb2.User.FromString(data) if data else None


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def webpush_target(endpoint: str | None = None, label: str = "") -> user_pb2.PushTarget:
    """A Web Push subscription shaped like a browser's (P-256 key, 16-byte auth secret)."""
    return user_pb2.PushTarget(
        platform=common_pb2.PUSH_PLATFORM_WEBPUSH,
        web_push=user_pb2.WebPushSubscription(
            endpoint=endpoint or f"https://push.example.net/send/{uuid.uuid4().hex}",
            p256dh=b64url(b"\x04" + os.urandom(64)),
            auth=b64url(os.urandom(16)),
        ),
        label=label,
    )


def onesignal_target(label: str = "") -> user_pb2.PushTarget:
    return user_pb2.PushTarget(
        platform=common_pb2.PUSH_PLATFORM_ONESIGNAL, token=str(uuid.uuid4()), label=label
    )


async def rpc_error(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    """The error a call fails with (the test fails if it succeeds)."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


async def invalid_fields(call: Awaitable[Any]) -> dict[str, str]:
    """The field violations of a call that must answer INVALID_ARGUMENT."""
    error = await rpc_error(call)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    violations = dict(field_violations(error))
    assert violations, "INVALID_ARGUMENT without field violations"
    return violations
