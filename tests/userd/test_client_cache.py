"""The local user cache against a real (private) redis-server: kept users are served only
while subscribed, dropped on userd's announcement, on expiry and whenever the
subscription is lost, silent or renewed; an answer racing an announcement is not kept."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from herald.v1 import user_pb2
from mesh.cache import create_redis
from tests.support.redis_server import RedisServer
from tests.support.waits import eventually
from userd.cache import UserCache
from userd.client_cache import LocalUsers, channel

# A redis-server of its own (the installed binary), not the shared one.
pytestmark = pytest.mark.integration

PREFIX = "herald-local-users-test:"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.kill()


@pytest.fixture
async def client(server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = create_redis(server.url)
    yield client
    await client.aclose()


Start = Callable[..., Awaitable[LocalUsers]]


@pytest.fixture
async def start(client: aioredis.Redis) -> AsyncIterator[Start]:
    """Starts a subscribed LocalUsers (`ttl`, `ping` interval); each is stopped after the test."""
    running: list[LocalUsers] = []

    async def started(*, ttl: float = 60, ping: float = 5) -> LocalUsers:
        users = LocalUsers(
            client, PREFIX, ttl=ttl, max_entries=100, ping_interval=ping, retry_interval=0.1
        )
        running.append(users)
        users.start()
        await asyncio.wait_for(users.subscribed.wait(), 10)
        return users

    yield started
    for users in running:
        await users.stop()


def user(name: str = "Ada", user_id: str | None = None) -> user_pb2.User:
    return user_pb2.User(id=user_id or str(uuid.uuid4()), name=name, email="ada@example.com")


async def test_a_kept_user_is_served_until_userd_announces_a_change(
    client: aioredis.Redis, start: Start
) -> None:
    users = await start()
    ada, bob = user("Ada"), user("Bob")
    users.keep(ada, users.ticket())
    users.keep(bob, users.ticket())
    assert users.get(ada.id.upper()) == ada  # any spelling of the UUID
    assert users.get(str(uuid.uuid4())) is None

    # What userd's write-through does on UpdateUser: the entry and the announcement.
    assert await UserCache(client, PREFIX, 60).put(ada, 2, announce=True)
    await eventually(lambda: users.get(ada.id) is None)
    assert users.get(bob.id) == bob


async def test_an_answer_fetched_across_an_announcement_is_not_kept(
    client: aioredis.Redis, start: Start
) -> None:
    users = await start()
    ada, bob = user("Ada"), user("Bob")
    ticket = users.ticket()  # a fetch of Ada (and one of Bob) starts...
    users.keep(bob, users.ticket())
    await client.publish(channel(PREFIX), ada.id)  # ...Ada changes meanwhile...
    users.keep(bob, users.ticket())
    await client.publish(channel(PREFIX), bob.id)
    await eventually(lambda: users.get(bob.id) is None)

    users.keep(ada, ticket)  # ...so the answer may be the old Ada: not kept
    assert users.get(ada.id) is None
    users.keep(ada, users.ticket())  # fetched after the announcement: kept
    assert users.get(ada.id) == ada


async def test_kept_users_expire(start: Start) -> None:
    users = await start(ttl=0.2)
    ada = user()
    users.keep(ada, users.ticket())
    assert users.get(ada.id) == ada
    await eventually(lambda: users.get(ada.id) is None, what="Ada to expire")


async def test_nothing_is_served_or_kept_while_redis_is_down_and_all_resumes_after(
    server: RedisServer, start: Start
) -> None:
    users = await start()
    ada = user()
    users.keep(ada, users.ticket())
    stale = users.ticket()

    server.kill()
    await eventually(lambda: not users.live)
    assert users.get(ada.id) is None
    users.keep(ada, users.ticket())
    assert users.get(ada.id) is None

    server.start()  # the same port and directory; the fixture kills it after
    await asyncio.wait_for(users.subscribed.wait(), 10)
    assert users.live
    assert users.get(ada.id) is None  # dropped with the subscription, not back
    users.keep(ada, stale)  # fetched before the outage: announcements were missed
    assert users.get(ada.id) is None
    users.keep(ada, users.ticket())
    assert users.get(ada.id) == ada


async def test_a_quiet_healthy_subscription_stays_up(start: Start) -> None:
    users = await start(ping=0.1)
    ada = user()
    users.keep(ada, users.ticket())
    # A negative check needs a window: ten pings answered, nothing announced, so no
    # reason to drop Ada. (Short: a ping every 0.1 s.)
    await asyncio.sleep(1.0)
    assert users.live
    assert users.get(ada.id) == ada


async def test_a_subscription_that_stops_answering_counts_as_lost(
    server: RedisServer, start: Start
) -> None:
    users = await start(ping=0.2)
    assert server.process is not None
    ada = user()
    users.keep(ada, users.ticket())
    server.process.send_signal(signal.SIGSTOP)  # the socket stays open, nothing answers
    try:
        await eventually(lambda: not users.live, timeout=5)
        assert users.get(ada.id) is None
    finally:
        server.process.send_signal(signal.SIGCONT)
    await eventually(lambda: users.live)
    assert users.get(ada.id) is None
