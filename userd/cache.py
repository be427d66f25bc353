"""The user cache in Redis: what deliveryd and the gateway read on every notification.

Key scheme (HERALD_REDIS_PREFIX, "herald:" by default, comes first):

    {prefix}user:{id}    a Redis hash; {id} is the user's UUID, lower case with hyphens
        version   decimal integer: the user's row version in PostgreSQL, which grows by
                  one on every change (preferences, contact points, push targets, ...)
        user      the serialized `herald.v1.User` protobuf: email, phone, push targets,
                  locale, time zone, preferences. Never a password.

Entries expire after HERALD_USERD_CACHE_TTL_SECONDS (one hour by default). A deleted user
leaves a tombstone for as long: `version` = 2**53 - 1 and no `user` field, which readers
see as a miss.

Only userd writes, through one Lua script that replaces an entry only by a strictly newer
version: a slow cache fill or a late write-through never puts an older user back over a
newer one, nor a deleted user back at all. When a write-through fails (Redis down or
paused), userd records the user in PostgreSQL and refreshes the entry once Redis answers.

Every write-through, repair and deletion that replaces an entry also announces the user's
id on the channel `{prefix}users:changed` (`userd.client_cache`: the gateway and deliveryd
drop their local copy of that user); filling an entry after a miss announces nothing.

Readers elsewhere: `UserCacheReader(redis_client, prefix).get(user_id)` returns the
`herald.v1.User`, or None on a miss (then ask userd's GetUser, which fills the entry).
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import redis.asyncio as aioredis

from herald.v1 import user_pb2
from userd.client_cache import channel

TOMBSTONE_VERSION = 2**53 - 1  # exact in Lua's doubles; above any real row version
KEY_FORMAT = "{prefix}user:{id}"

# KEYS[1] the entry; ARGV: version, serialized user ("" for a tombstone), TTL in ms, and
# the channel and user id to announce a stored change on ("" announces nothing).
_STORE_IF_NEWER = """
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if current >= tonumber(ARGV[1]) then
  return 0
end
redis.call('DEL', KEYS[1])
if ARGV[2] == '' then
  redis.call('HSET', KEYS[1], 'version', ARGV[1])
else
  redis.call('HSET', KEYS[1], 'version', ARGV[1], 'user', ARGV[2])
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if ARGV[4] ~= '' then
  redis.call('PUBLISH', ARGV[4], ARGV[5])
end
return 1
"""


class UserCacheReader:
    """Reads cached users; needs nothing but a redis client and the key prefix."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix

    def key(self, user_id: UUID | str) -> str:
        return KEY_FORMAT.format(prefix=self._prefix, id=str(user_id).lower())

    async def entry(self, user_id: UUID | str) -> tuple[int, user_pb2.User] | None:
        """The cached (version, user), or None on a miss or for a deleted user."""
        version, data = await self._redis.hmget(self.key(user_id), ["version", "user"])
        if version is None or not isinstance(data, bytes):
            return None
        return int(version), user_pb2.User.FromString(data)

    async def entries(
        self, user_ids: Sequence[UUID | str]
    ) -> list[tuple[int, user_pb2.User] | None]:
        """`entry` for each id, in order, in one round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.hmget(self.key(user_id), ["version", "user"])
            answers = await pipe.execute()
        return [
            (int(version), user_pb2.User.FromString(data))
            if version is not None and isinstance(data, bytes)
            else None
            for version, data in answers
        ]

    async def get(self, user_id: UUID | str) -> user_pb2.User | None:
        """The cached user, or None (ask userd's GetUser). Raises redis errors as they come."""
        found = await self.entry(user_id)
        return found[1] if found else None


class UserCache(UserCacheReader):
    """userd's side: writes entries, newest version wins."""

    def __init__(self, client: aioredis.Redis, prefix: str, ttl_seconds: float) -> None:
        super().__init__(client, prefix)
        self._ttl_ms = int(ttl_seconds * 1000)
        self._store = client.register_script(_STORE_IF_NEWER)
        self._channel = channel(prefix)

    def _args(
        self, user_id: UUID | str, version: int, data: bytes, *, announce: bool
    ) -> list[int | str | bytes]:
        if not announce:
            return [version, data, self._ttl_ms, "", ""]
        return [version, data, self._ttl_ms, self._channel, str(user_id).lower()]

    async def put(self, user: user_pb2.User, version: int, *, announce: bool) -> bool:
        """Stores `user` at `version` unless the entry is as new or newer; True if stored.
        `announce`: a change (not a fill after a miss), published when stored."""
        args = self._args(user.id, version, user.SerializeToString(), announce=announce)
        stored = await self._store(keys=[self.key(user.id)], args=args)
        return bool(stored)

    async def put_many(self, users: Sequence[tuple[user_pb2.User, int]]) -> None:
        """Fills for each (user, version), in one round trip (nothing announced)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for user, version in users:
                args = self._args(user.id, version, user.SerializeToString(), announce=False)
                await self._store(keys=[self.key(user.id)], args=args, client=pipe)
            await pipe.execute()

    async def tombstone(self, user_id: UUID) -> None:
        """Marks a deleted user: readers miss, and no older version can be stored again."""
        args = self._args(user_id, TOMBSTONE_VERSION, b"", announce=True)
        await self._store(keys=[self.key(user_id)], args=args)

    async def ping(self) -> None:
        await self._redis.ping()

    async def server_run(self) -> str:
        """The Redis server's run id: it changes whenever the server restarts."""
        info = await self._redis.info("server")
        return str(info["run_id"])

    async def clear(self) -> int:
        """Removes every user entry (tombstones too); returns how many."""
        pattern = KEY_FORMAT.format(prefix=self._prefix, id="*")
        removed = 0
        batch: list[bytes | str] = []
        async for key in self._redis.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                removed += await self._redis.unlink(*batch)
                batch = []
        if batch:
            removed += await self._redis.unlink(*batch)
        return removed
