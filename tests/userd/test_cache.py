"""The Redis user cache: written through on every change, filled on a miss, evicted on delete,
never moved back to an older version, readable by other services with the reader alone."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg
import pytest
import redis
import redis.asyncio as aioredis
from google.protobuf.field_mask_pb2 import FieldMask

from herald.v1 import user_pb2
from tests.support.infra import REDIS_URL, Isolation
from tests.support.processes import ServiceProcess
from tests.userd.helpers import Stub, cached, create_request, fcm_target, rpc_error, snapshot
from userd.cache import TOMBSTONE_VERSION, UserCache, UserCacheReader
from userd.client_cache import channel

Db = psycopg.Connection[dict[str, Any]]


def assert_cached(client: redis.Redis, isolation: Isolation, db: Db, user: user_pb2.User) -> None:
    version, entry = cached(client, isolation.redis_prefix, user.id)
    assert entry == user
    assert version == snapshot(db, user.id)["user"]["version"]


async def test_every_change_is_written_through(
    stub: Stub, users_db: Db, shared_redis: redis.Redis, isolation: Isolation
) -> None:
    user = (await stub.CreateUser(create_request())).user
    assert_cached(shared_redis, isolation, users_db, user)
    ttl = shared_redis.pttl(f"{isolation.redis_prefix}user:{user.id}")
    assert 0 < ttl <= 3600 * 1000

    user = (
        await stub.UpdateUser(
            user_pb2.UpdateUserRequest(
                user=user_pb2.User(id=user.id, name="Renamed", phone="+447911123456"),
                update_mask=FieldMask(paths=["name", "phone"]),
            )
        )
    ).user
    assert_cached(shared_redis, isolation, users_db, user)

    user = (
        await stub.UpdatePreferences(
            user_pb2.UpdatePreferencesRequest(
                user_id=user.id, preferences=user_pb2.Preferences(email=False)
            )
        )
    ).user
    assert_cached(shared_redis, isolation, users_db, user)

    target = fcm_target()
    user = (
        await stub.AddPushTarget(user_pb2.AddPushTargetRequest(user_id=user.id, target=target))
    ).user
    assert_cached(shared_redis, isolation, users_db, user)

    user = (
        await stub.RemovePushTarget(
            user_pb2.RemovePushTargetRequest(user_id=user.id, token=target.token)
        )
    ).user
    assert_cached(shared_redis, isolation, users_db, user)


async def test_every_change_is_announced_and_a_fill_is_not(
    stub: Stub, shared_redis: redis.Redis, isolation: Isolation
) -> None:
    async with aioredis.Redis.from_url(REDIS_URL) as client, client.pubsub() as pubsub:
        await pubsub.subscribe(channel(isolation.redis_prefix))
        user = (await stub.CreateUser(create_request())).user
        await stub.UpdatePreferences(
            user_pb2.UpdatePreferencesRequest(
                user_id=user.id, preferences=user_pb2.Preferences(sms=False)
            )
        )
        shared_redis.delete(f"{isolation.redis_prefix}user:{user.id}")
        assert (await stub.GetUser(user_pb2.GetUserRequest(id=user.id))).user.id == user.id
        await stub.DeleteUser(user_pb2.DeleteUserRequest(id=user.id))

        assert await announcements(pubsub) == [user.id] * 3


async def test_reads_come_from_the_cache_and_a_miss_fills_it(
    stub: Stub, users_db: Db, shared_redis: redis.Redis, isolation: Isolation, userd: ServiceProcess
) -> None:
    user = (await stub.CreateUser(create_request())).user
    key = f"{isolation.redis_prefix}user:{user.id}"

    # Plant a marker in the entry (same version): GetUser answering it proves a cache hit.
    marked = user_pb2.User()
    marked.CopyFrom(user)
    marked.name = "Served From Redis"
    shared_redis.hset(key, "user", marked.SerializeToString())
    assert (await stub.GetUser(user_pb2.GetUserRequest(id=user.id))).user.name == (
        "Served From Redis"
    )

    shared_redis.delete(key)
    assert (await stub.GetUser(user_pb2.GetUserRequest(id=user.id))).user == user
    assert_cached(shared_redis, isolation, users_db, user)

    async with httpx.AsyncClient() as http:
        port = userd.env["HERALD_USERD_METRICS_PORT"]
        metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    assert 'herald_userd_cache_lookups_total{result="hit"}' in metrics
    assert 'herald_userd_cache_lookups_total{result="miss"}' in metrics


async def test_a_batch_read_takes_hits_from_the_cache_and_fills_the_misses(
    stub: Stub, users_db: Db, shared_redis: redis.Redis, isolation: Isolation
) -> None:
    hit, miss = [(await stub.CreateUser(create_request())).user for _ in range(2)]
    marked = user_pb2.User()
    marked.CopyFrom(hit)
    marked.name = "Served From Redis"
    shared_redis.hset(f"{isolation.redis_prefix}user:{hit.id}", "user", marked.SerializeToString())
    shared_redis.delete(f"{isolation.redis_prefix}user:{miss.id}")

    answer = await stub.BatchGetUsers(user_pb2.BatchGetUsersRequest(ids=[hit.id, miss.id]))

    by_id = {u.id: u for u in answer.users}
    assert by_id[hit.id].name == "Served From Redis"
    assert by_id[miss.id] == miss
    assert_cached(shared_redis, isolation, users_db, miss)


async def test_delete_evicts_the_user(
    stub: Stub, shared_redis: redis.Redis, isolation: Isolation
) -> None:
    user = (await stub.CreateUser(create_request())).user
    await stub.DeleteUser(user_pb2.DeleteUserRequest(id=user.id))

    version, entry = cached(shared_redis, isolation.redis_prefix, user.id)
    assert (version, entry) == (TOMBSTONE_VERSION, None)
    async with aioredis.Redis.from_url(REDIS_URL) as client:
        assert await UserCacheReader(client, isolation.redis_prefix).get(user.id) is None
    gone = await rpc_error(stub.GetUser(user_pb2.GetUserRequest(id=user.id)))
    assert gone.code().name == "NOT_FOUND"


async def test_other_services_read_the_cache_with_the_reader_alone(
    stub: Stub, isolation: Isolation
) -> None:
    user = (await stub.CreateUser(create_request(push_targets=[fcm_target()]))).user
    async with aioredis.Redis.from_url(REDIS_URL) as client:
        reader = UserCacheReader(client, isolation.redis_prefix)
        assert await reader.get(user.id) == user
        assert await reader.get(uuid.uuid4()) is None


@pytest.mark.integration  # the shared Redis, with a prefix of its own
async def test_an_older_version_never_replaces_a_newer_one_nor_a_deleted_user() -> None:
    prefix = f"herald-cache-test-{uuid.uuid4().hex[:8]}:"
    user_id = str(uuid.uuid4())
    async with aioredis.Redis.from_url(REDIS_URL) as client, client.pubsub() as pubsub:
        await pubsub.subscribe(channel(prefix))
        cache = UserCache(client, prefix, ttl_seconds=60)
        try:
            assert await cache.put(user_pb2.User(id=user_id, name="v2"), 2, announce=True)
            assert not await cache.put(user_pb2.User(id=user_id, name="v1"), 1, announce=True)
            assert not await cache.put(user_pb2.User(id=user_id, name="v2 again"), 2, announce=True)
            assert (await cache.get(user_id)) == user_pb2.User(id=user_id, name="v2")
            assert await cache.put(user_pb2.User(id=user_id, name="v3"), 3, announce=False)
            assert (await cache.get(user_id)) == user_pb2.User(id=user_id, name="v3")

            await cache.tombstone(uuid.UUID(user_id))
            assert await cache.get(user_id) is None
            assert not await cache.put(user_pb2.User(id=user_id, name="zombie"), 4, announce=True)
            assert await cache.get(user_id) is None
            # Announced: the stored change (v2) and the deletion; not the refused writes,
            # nor the fill (v3).
            assert await announcements(pubsub) == [user_id, user_id]
        finally:
            await client.delete(cache.key(user_id))


async def announcements(pubsub: aioredis.client.PubSub) -> list[str]:
    """The user ids announced so far (after a PING, so everything published has arrived)."""
    await pubsub.ping(b"done")
    ids: list[str] = []
    while (message := await pubsub.get_message(timeout=5.0)) is not None:
        if message["type"] == "pong":
            return ids
        if message["type"] == "message":
            ids.append(message["data"].decode())
    raise AssertionError(f"no pong after {ids}")
