"""A PostgreSQL LISTEN held open by a background task, reconnecting when it drops.

Processes keep caches honest with it: a write sends NOTIFY (delivered at commit), every
listening process drops what it cached. While the connection is down notifications may
be missed, so `on_listening(False)` tells the cache to stop trusting itself until the
next LISTEN is in place.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import psycopg
import structlog
from psycopg import sql

log = structlog.get_logger(__name__)


class Listener:
    """Calls `on_notify(payload)` for each NOTIFY on `channel`; `on_listening(True)` once
    LISTEN is in place, `on_listening(False)` whenever the connection is lost."""

    def __init__(
        self,
        *,
        url: str,
        channel: str,
        on_notify: Callable[[str], None],
        on_listening: Callable[[bool], None] = lambda _: None,
        retry_seconds: float = 1.0,
    ) -> None:
        self._url = url
        self._channel = channel
        self._on_notify = on_notify
        self._on_listening = on_listening
        self._retry = retry_seconds
        self._listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, wait_seconds: float = 5.0) -> None:
        """Starts listening; waits a little for the first LISTEN so caches work at once."""
        self._task = asyncio.create_task(self._run(), name=f"listen-{self._channel}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), wait_seconds)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def ping(self) -> None:
        """Raises while notifications are not being received (health: degraded)."""
        if not self._listening.is_set():
            raise ConnectionError(f"not listening on {self._channel}")

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except (psycopg.Error, OSError) as exc:
                log.warning("listening lost", channel=self._channel, error=type(exc).__name__)
            finally:
                self._listening.clear()
                self._on_listening(False)
            await asyncio.sleep(self._retry)

    async def _listen(self) -> None:
        async with await psycopg.AsyncConnection.connect(
            # libpq keepalives notice a connection that died without a word within
            # ~30 s; the caches' TTLs cover the time until then.
            self._url,
            autocommit=True,
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=5,
        ) as conn:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
            self._on_listening(True)
            self._listening.set()
            log.info("listening", channel=self._channel)
            async for notify in conn.notifies():
                self._on_notify(notify.payload)
