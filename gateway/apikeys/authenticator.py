"""Verifies presented API keys, with a cache that revocations reach at once.

A key reads `hk_<id>_<secret>`: the id finds the row, the whole key's SHA-256 proves
possession (`service.hash_token`).
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter
from psycopg_pool import AsyncConnectionPool

from gateway.apikeys.service import ApiKey, from_row, hash_token, key_id_of, revoke
from gateway.store import apikeys
from gateway.store.apikeys import ApiKeyRow
from mesh.listen import Listener

# How often the set of key ids may be read again for an id outside it.
KNOWN_IDS_SECONDS = 1.0
KEY_READS = Counter(
    "herald_api_key_reads_total",
    "Database reads of the API key verifier: a key's row, or the set of every key id.",
    ["read"],
)


@dataclass(frozen=True)
class _Entry:
    expires: float
    row: ApiKeyRow | None


class Authenticator:
    """Verifies presented keys, caching each key's row for `ttl` seconds.

    The cache keeps authentication off the database on the hot path. A revocation reaches
    it three ways: `revoke` here drops the key at once (the revoking process); every
    gateway's `listener` drops it when PostgreSQL delivers the revocation's NOTIFY
    (milliseconds); and should that connection be down, the cache is cleared and entries
    live at most `ttl` seconds. Concurrent misses for one id share one query.

    An id no key has is refused without a query of its own: the authenticator keeps the
    set of every key id, and an id outside it waits for the next read of that set (at
    most one a second, shared by everyone waiting), so a key made a moment ago by another
    process is accepted within a second, and a flood of made-up ids costs one query a
    second, not one each. Only known ids enter the (bounded) row cache.
    """

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        ttl: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._cache: dict[str, _Entry] = {}
        # Moves on every forget/clear: a row read before it may be stale, so not cached.
        self._epoch = 0
        self._pending: dict[str, asyncio.Future[ApiKeyRow | None]] = {}
        self._known: frozenset[str] = frozenset()
        self._known_at = float("-inf")
        self._known_read: asyncio.Task[frozenset[str]] | None = None

    def forget(self, key_id: str) -> None:
        """Drops a key's cached row (it was revoked)."""
        self._cache.pop(key_id, None)
        self._epoch += 1

    def clear(self) -> None:
        self._cache.clear()
        self._epoch += 1

    def listener(self, url: str) -> Listener:
        """Drops each key another process revokes, as PostgreSQL announces it; clears the
        cache whenever announcements may have been missed."""
        return Listener(
            url=url,
            channel=apikeys.REVOKED_CHANNEL,
            on_notify=self.forget,
            on_listening=lambda _: self.clear(),
        )

    async def revoke(self, key_id: str) -> bool:
        """Revokes a live key; it fails at once here, elsewhere when the NOTIFY arrives."""
        async with self._pool.connection() as conn:
            done = await revoke(conn, key_id=key_id)
        self.forget(key_id)
        return done

    async def authenticate(self, token: str) -> ApiKey | None:
        """The live key `token` proves, or None (malformed, unknown, wrong, revoked).

        Raises whatever the database raises when the row cannot be read.
        """
        key_id = key_id_of(token)
        if key_id is None or not await self._exists(key_id):
            return None
        row = await self._row(key_id)
        if row is None or row["revoke_time"] is not None:
            return None
        if not hmac.compare_digest(bytes(row["key_hash"]), hash_token(token)):
            return None
        return from_row(row)

    async def _exists(self, key_id: str) -> bool:
        """Whether some key has this id, from the set of ids, read again for an id outside
        it (at most once every KNOWN_IDS_SECONDS, one read shared by every waiter)."""
        if key_id in self._known:
            return True
        if self._known_read is None:
            self._known_read = asyncio.create_task(self._read_known())
        return key_id in await asyncio.shield(self._known_read)

    async def _read_known(self) -> frozenset[str]:
        try:
            wait = self._known_at + KNOWN_IDS_SECONDS - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
            async with self._pool.connection() as conn:
                ids = await apikeys.all_ids(conn)
            KEY_READS.labels("ids").inc()
            self._known = frozenset(ids)
            self._known_at = self._clock()
            return self._known
        finally:
            self._known_read = None

    async def _row(self, key_id: str) -> ApiKeyRow | None:
        now = self._clock()
        entry = self._cache.get(key_id)
        if entry is not None and entry.expires > now:
            return entry.row
        pending = self._pending.get(key_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ApiKeyRow | None] = asyncio.get_running_loop().create_future()
        self._pending[key_id] = future
        epoch = self._epoch
        try:
            async with self._pool.connection() as conn:
                row = await apikeys.get(conn, key_id=key_id)
            KEY_READS.labels("row").inc()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # marks it retrieved when nobody else waits on it
            raise
        finally:
            del self._pending[key_id]
        future.set_result(row)
        if epoch == self._epoch:
            self._remember(key_id, row, now)
        return row

    def _remember(self, key_id: str, row: ApiKeyRow | None, now: float) -> None:
        if self._ttl <= 0:
            return
        if len(self._cache) >= self._max_entries:
            self._cache = {k: e for k, e in self._cache.items() if e.expires > now}
            if len(self._cache) >= self._max_entries:
                self._cache.clear()
        self._cache[key_id] = _Entry(now + self._ttl, row)
