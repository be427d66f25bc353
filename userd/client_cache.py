"""Users kept in this process, dropped the moment userd announces a change to them.

The gateway and deliveryd need a user for every notification; asking userd each time is a
gRPC hop that costs more CPU than anything done with the answer. userd announces every
change it writes through to its Redis cache (a PUBLISH of the user's id on
`{prefix}users:changed`, in the same Lua script as the write: `userd.cache`), and
`LocalUsers` listens:

- It serves users only while its subscription is confirmed. Losing it drops every user
  and serves none until subscribed again, as announcements in between are lost; a
  confirmation (first, or after redis-py reconnected on its own) drops them too.
- An answer fetched while a change of its user was announced is not kept: it may be the
  user from before the change (`ticket` before the fetch, `keep` after it).
- Entries expire after `ttl` seconds in any case, which bounds what a lost announcement
  can cost (userd unable to reach Redis while we can: userd repairs its entries, and
  announces them, once it can again).
- The subscription is pinged; a connection that stops answering counts as lost.

So a process serves a user that userd has changed only for as long as the announcement
takes to arrive, as userd's own Redis cache does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from uuid import UUID

import redis.asyncio as aioredis
import structlog
from cachetools import TTLCache
from prometheus_client import Counter
from redis.exceptions import RedisError

from herald.v1 import user_pb2
from mesh.runtime import Runtime
from mesh.settings import SharedSettings

CHANNEL_FORMAT = "{prefix}users:changed"
_PING = b"herald-user-cache"

LOOKUPS = Counter(
    "herald_user_cache_lookups_total",
    "Users asked of this process's local cache: hit, miss, or bypass (not subscribed).",
    ["result"],
)
DROPS = Counter(
    "herald_user_cache_drops_total",
    "Local user entries dropped: announced (userd changed the user) or flushed "
    "(subscription lost or renewed).",
    ["reason"],
)

_HIT, _MISS, _BYPASS = (LOOKUPS.labels(result=r) for r in ("hit", "miss", "bypass"))

log = structlog.get_logger(__name__)


def channel(prefix: str) -> str:
    """The Redis channel on which userd announces changed users."""
    return CHANNEL_FORMAT.format(prefix=prefix)


def canonical(user_id: str) -> str | None:
    """The id as userd spells it (lower case, hyphens), or None when it is no UUID."""
    try:
        return str(UUID(user_id))
    except ValueError:
        return None


class LocalUsers:
    """Users by id, kept while userd's announcements can reach us."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        *,
        ttl: float,
        max_entries: int,
        ping_interval: float = 5.0,
        retry_interval: float = 1.0,
    ) -> None:
        self._redis = client
        self._channel = channel(prefix)
        self._users: TTLCache[str, user_pb2.User] = TTLCache(maxsize=max_entries, ttl=ttl)
        self._max_changed = max_entries
        self._ping_interval = ping_interval
        self._retry_interval = retry_interval
        # Announcements counted; `_changed` holds the count at each user's last one, and
        # no answer fetched before `_floor` may be kept.
        self._epoch = 0
        self._floor = 0
        self._changed: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._error: str | None = None
        # Set while the subscription is confirmed: only then are users served and kept.
        self.subscribed = asyncio.Event()

    @property
    def live(self) -> bool:
        return self.subscribed.is_set()

    def get(self, user_id: str) -> user_pb2.User | None:
        """The kept user, or None (fetch it from userd, between `ticket` and `keep`)."""
        if not self.live:
            _BYPASS.inc()
            return None
        key = canonical(user_id)
        user = self._users.get(key) if key else None
        (_MISS if user is None else _HIT).inc()
        return user

    def ticket(self) -> int:
        """Taken before fetching a user from userd; `keep` needs it."""
        return self._epoch

    def keep(self, user: user_pb2.User, ticket: int) -> None:
        """Keeps a user fetched after `ticket`, unless a change of it was announced since."""
        key = canonical(user.id)
        if not self.live or key is None or ticket < self._floor:
            return
        if self._changed.get(key, -1) > ticket:
            return
        self._users[key] = user

    async def fetch(
        self, user_id: str, fetch: Callable[[], Awaitable[user_pb2.User]]
    ) -> user_pb2.User:
        """The kept user, else `fetch()`'s answer, kept unless its user changed meanwhile."""
        kept = self.get(user_id)
        if kept is not None:
            return kept
        ticket = self.ticket()
        user = await fetch()
        self.keep(user, ticket)
        return user

    def _announced(self, data: bytes) -> None:
        key = canonical(data.decode(errors="replace"))
        if key is None:
            return
        self._epoch += 1
        if len(self._changed) >= self._max_changed:
            self._changed.clear()
            self._floor = self._epoch
        self._changed[key] = self._epoch
        if self._users.pop(key, None) is not None:
            DROPS.labels(reason="announced").inc()

    def _flush(self, *, live: bool) -> None:
        if self._users:
            DROPS.labels(reason="flushed").inc(len(self._users))
        self._users.clear()
        self._changed.clear()
        self._epoch += 1
        self._floor = self._epoch
        if live:
            self.subscribed.set()
        else:
            self.subscribed.clear()

    async def _listen(self) -> None:
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            loop = asyncio.get_running_loop()
            answered = pinged = loop.time()
            while True:
                message = await pubsub.get_message(timeout=min(1.0, self._ping_interval))
                now = loop.time()
                if message is not None:
                    answered = now
                    kind = message["type"]
                    if kind == "subscribe":
                        self._flush(live=True)
                        log.info("user cache subscribed", channel=self._channel)
                        self._error = None
                    elif kind == "message":
                        self._announced(message["data"])
                if now - answered > 2 * self._ping_interval:
                    raise TimeoutError("the subscription stopped answering pings")
                if now - pinged >= self._ping_interval:
                    await pubsub.ping(_PING)
                    pinged = now
        finally:
            self._flush(live=False)
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except (RedisError, OSError) as exc:  # TimeoutError is an OSError
                if type(exc).__name__ != self._error:
                    log.warning("user cache unsubscribed: serving none", error=repr(exc))
                self._error = type(exc).__name__
            except Exception:  # a bug must not leave the cache off for good
                log.exception("user cache subscription failed: serving none")
            await asyncio.sleep(self._retry_interval)

    def start(self) -> None:
        """Subscribes in the background (and again whenever the subscription is lost)."""
        self._task = asyncio.create_task(self._run(), name="user-cache-subscription")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


def start_local_users(runtime: Runtime, settings: SharedSettings) -> LocalUsers | None:
    """The process's local user cache, subscribed in the background (None when
    HERALD_USER_CACHE_SECONDS is 0); an outage of Redis only turns it off meanwhile."""
    if not settings.user_cache_seconds:
        return None
    users = LocalUsers(
        runtime.redis(required=False),
        settings.redis_prefix,
        ttl=settings.user_cache_seconds,
        max_entries=settings.user_cache_size,
    )
    users.start()
    runtime.on_shutdown(users.stop)
    return users
