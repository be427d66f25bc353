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

from psycopg_pool import AsyncConnectionPool

from gateway.apikeys.service import ApiKey, from_row, hash_token, key_id_of, revoke
from gateway.store import apikeys
from gateway.store.apikeys import ApiKeyRow
from mesh.listen import Listener


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
    live at most `ttl` seconds. Concurrent misses for one id share one query. Unknown ids
    are cached too (so a flood of bad keys costs one query per id per ttl), and the cache
    is bounded.
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
        if key_id is None:
            return None
        row = await self._row(key_id)
        if row is None or row["revoke_time"] is not None:
            return None
        if not hmac.compare_digest(bytes(row["key_hash"]), hash_token(token)):
            return None
        return from_row(row)

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
