"""Keeps every process's head cache honest: LISTEN for the NOTIFY each change sends.

While the listening connection is up, cached heads are trusted and each notification
drops the head of its code. While it is down (or reconnecting), the cache is bypassed
and cleared, because notifications may have been missed: renders then read the head
from PostgreSQL until the listener is back.
"""

from __future__ import annotations

import asyncio
import contextlib

import psycopg
import structlog
from psycopg import sql

from templated.cache import HeadCache
from templated.store import NOTIFY_CHANNEL, execute, parse_notify_payload

_LISTEN = sql.SQL("LISTEN {}").format(sql.Identifier(NOTIFY_CHANNEL))

log = structlog.get_logger(__name__)


class InvalidationListener:
    """A background task holding one LISTEN connection, reconnecting when it drops."""

    def __init__(
        self, *, url: str, heads: HeadCache, origin: str, retry_seconds: float = 1.0
    ) -> None:
        self._url = url
        self._origin = origin
        self._heads = heads
        self._retry = retry_seconds
        self._listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, wait_seconds: float = 5.0) -> None:
        """Starts listening; waits a little for the first LISTEN so renders cache at once."""
        self._task = asyncio.create_task(self._run(), name="template-invalidation")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), wait_seconds)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def ping(self) -> None:
        """Raises while notifications are not being received (health: degraded)."""
        if not self._listening.is_set():
            raise ConnectionError("not listening for template changes")

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except (psycopg.Error, OSError) as exc:
                log.warning("template invalidation lost", error=type(exc).__name__)
            finally:
                self._listening.clear()
                self._heads.set_trusted(False)
            await asyncio.sleep(self._retry)

    async def _listen(self) -> None:
        async with await psycopg.AsyncConnection.connect(
            # libpq keepalives notice a connection that died without a word within
            # ~30 s; the head TTL covers the time until then.
            self._url,
            autocommit=True,
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=5,
        ) as conn:
            await execute(conn, "listen", _LISTEN)
            self._heads.set_trusted(True)
            self._listening.set()
            log.info("listening for template changes", channel=NOTIFY_CHANNEL)
            async for notify in conn.notifies():
                origin, code = parse_notify_payload(notify.payload)
                if origin != self._origin:  # our own writes invalidated when they returned
                    self._heads.invalidate(code)
