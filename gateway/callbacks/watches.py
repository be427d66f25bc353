"""The watches open on this gateway, woken by PostgreSQL when a status they watch changes.

A stream adds a `Watch`: an entry here and a `status_watches` row, which makes the status
trigger NOTIFY `herald_status` for the notification watched (or for every notification
of the client watched); unwatched changes send none. One LISTEN per gateway wakes the
watches a NOTIFY names. The stream removes its watch when it ends, however it ends.

The rows are leases: `run` renews this gateway's every LEASE_SECONDS / 3 and deletes any
past its lease (left by a gateway that died). Nothing rests on the LISTEN alone: every
HERALD_WATCH_CHECK_SECONDS one query reads the status of each notification watched here
and wakes a watch that has not seen it (a NOTIFY lost with its connection). A
client-wide watch has nothing to read again, so losing the LISTEN ends it UNAVAILABLE,
and none starts until the LISTEN is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import timedelta
from typing import TypeVar

import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool

from gateway.store import db, watches
from mesh.errors import DomainError, ResourceExhausted, Unavailable
from mesh.listen import Listener

log = structlog.get_logger(__name__)

K = TypeVar("K")

LEASE_SECONDS = 60.0
CHECK_SECONDS = 5.0
# Distinct notifications a client-wide watch may have waiting before it is ended.
MAX_BEHIND = 10_000


class Watch:
    """One open stream's wake-ups: which notifications changed since it last looked."""

    def __init__(
        self, *, client_id: str, notification_id: uuid.UUID | None, max_behind: int
    ) -> None:
        self.id = uuid.uuid4()
        self.client_id = client_id
        self.notification_id = notification_id
        # The status the stream last sent (a one-notification watch): the periodic check
        # wakes the watch when the notification's differs.
        self.seen = ""
        self._max_behind = max_behind
        self._changed: dict[uuid.UUID, None] = {}
        self._wake = asyncio.Event()
        self._ended: DomainError | None = None

    def changed(self, notification_id: uuid.UUID) -> None:
        """Wakes the stream: this notification's status changed."""
        if notification_id not in self._changed and len(self._changed) >= self._max_behind:
            self.end(
                ResourceExhausted(
                    f"the watch fell {self._max_behind} notifications behind: read faster, "
                    "or watch again and list what changed meanwhile"
                )
            )
            return
        self._changed[notification_id] = None
        self._wake.set()

    def end(self, error: DomainError) -> None:
        """Ends the stream with `error` at its next wait (the first error given wins)."""
        if self._ended is None:
            self._ended = error
        self._wake.set()

    async def changes(self) -> list[uuid.UUID]:
        """Waits for a change; the notifications changed since the last call, each once,
        in the order they first changed. Raises the error that ended the watch."""
        await self._wake.wait()
        if self._ended is not None:
            raise self._ended
        self._wake.clear()
        changed = list(self._changed)
        self._changed.clear()
        return changed


class Watches:
    """The registry of this gateway's watches, their leases, and their wake-ups."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        lease_seconds: float = LEASE_SECONDS,
        check_seconds: float = CHECK_SECONDS,
        max_behind: int = MAX_BEHIND,
    ) -> None:
        self._pool = pool
        self._lease = timedelta(seconds=lease_seconds)
        self._check_seconds = check_seconds
        self._max_behind = max_behind
        self._open: dict[uuid.UUID, Watch] = {}
        self._by_notification: dict[uuid.UUID, set[Watch]] = {}
        self._by_client: dict[str, set[Watch]] = {}
        self._listening = False
        self._check_now = asyncio.Event()
        self._closed: Unavailable | None = None

    def listener(self, url: str) -> Listener:
        """The LISTEN that wakes the watches (start and stop it with the gateway)."""
        return Listener(
            url=url,
            channel=watches.CHANNEL,
            on_notify=self._notified,
            on_listening=self._listening_changed,
        )

    async def add_notification(
        self, notification_id: uuid.UUID, *, owner: str | None
    ) -> Watch | None:
        """Watches one notification, registered before the caller reads its state; None
        when it does not exist or (with `owner`) is another client's."""
        self._refuse_if_closed()
        watch = Watch(client_id="", notification_id=notification_id, max_behind=1)
        # Listed before the row exists: a NOTIFY may arrive before this call returns.
        self._by_notification.setdefault(notification_id, set()).add(watch)
        try:
            async with db.connection(self._pool) as conn:
                client_id = await watches.watch_notification(
                    conn, watch.id, notification_id, owner=owner, lease=self._lease
                )
        except BaseException:
            self._forget(watch)
            raise
        if client_id is None:
            self._forget(watch)
            return None
        watch.client_id = client_id
        self._opened(watch)
        return watch

    async def add_client(self, client_id: str) -> Watch:
        """Watches every notification of a client from now on."""
        self._refuse_if_closed()
        if not self._listening:
            raise Unavailable("status changes are not being received now: watch again later")
        watch = Watch(client_id=client_id, notification_id=None, max_behind=self._max_behind)
        self._by_client.setdefault(client_id, set()).add(watch)
        try:
            async with db.connection(self._pool) as conn:
                await watches.watch_client(conn, watch.id, client_id, lease=self._lease)
        except BaseException:
            self._forget(watch)
            raise
        self._opened(watch)
        return watch

    async def remove(self, watch: Watch) -> None:
        """Ends a watch here and deletes its row (should that fail, its lease runs out)."""
        self._forget(watch)
        try:
            async with db.connection(self._pool) as conn:
                await watches.unwatch(conn, watch.id)
        except (Unavailable, psycopg.Error) as exc:
            log.warning("watch left to its lease", watch_id=str(watch.id), error=repr(exc))

    def close(self) -> None:
        """Ends every watch UNAVAILABLE and refuses new ones (the gateway is stopping)."""
        self._closed = Unavailable("the gateway is shutting down: watch again")
        for watch in list(self._open.values()):
            watch.end(self._closed)

    async def run(self) -> None:
        """Renews this gateway's leases and deletes expired ones (every LEASE / 3), checks
        the statuses watched here (every `check_seconds`, and at once when the LISTEN is
        back), until cancelled."""
        renew_every = self._lease.total_seconds() / 3
        next_renew = next_check = time.monotonic()
        while True:
            wait = min(next_renew, next_check) - time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._check_now.wait(), max(wait, 0.0))
            now = time.monotonic()
            renew = now >= next_renew
            check = self._check_now.is_set() or now >= next_check
            self._check_now.clear()
            # Failed or not, the next try waits its turn: a database that is down is not
            # asked again in a loop, and a lease outlives two missed renewals.
            if renew:
                next_renew = now + renew_every
            if check:
                next_check = now + self._check_seconds
            try:
                await self._upkeep(renew=renew, check=check)
            except (Unavailable, psycopg.Error) as exc:
                log.warning("watch upkeep failed", error=repr(exc))

    async def _upkeep(self, *, renew: bool, check: bool) -> None:
        watched = list(self._by_notification) if check else []
        current: dict[uuid.UUID, str] = {}
        async with db.connection(self._pool) as conn:
            if renew:
                held = list(self._open)
                kept = await watches.renew(conn, held, lease=self._lease) if held else set()
                # A row swept while its lease could not be renewed: its NOTIFYs stopped.
                for watch_id in set(held) - kept:
                    if (watch := self._open.get(watch_id)) is not None:
                        watch.end(Unavailable("the watch's registration expired: watch again"))
                swept = await watches.sweep(conn)
                if swept:
                    log.info("expired watches removed", count=swept)
            if watched:
                current = await watches.statuses(conn, watched)
        for notification_id, status in current.items():
            for watch in self._by_notification.get(notification_id, ()):
                if watch.seen != status:
                    watch.changed(notification_id)

    def _notified(self, payload: str) -> None:
        parsed = watches.parse_payload(payload)
        if parsed is None:
            log.warning("malformed status notification", payload=payload)
            return
        notification_id, client_id = parsed
        for watch in self._by_notification.get(notification_id, ()):
            watch.changed(notification_id)
        for watch in self._by_client.get(client_id, ()):
            watch.changed(notification_id)

    def _listening_changed(self, listening: bool) -> None:
        self._listening = listening
        if listening:
            # Whatever changed while nobody listened: read it now, not at the next check.
            self._check_now.set()
            return
        lost = Unavailable("status changes may have been missed: watch again")
        for client_watches in self._by_client.values():
            for watch in client_watches:
                watch.end(lost)

    def _opened(self, watch: Watch) -> None:
        self._open[watch.id] = watch
        if self._closed is not None:  # shutdown began while its row was written
            watch.end(self._closed)

    def _forget(self, watch: Watch) -> None:
        self._open.pop(watch.id, None)
        if watch.notification_id is not None:
            _discard(self._by_notification, watch.notification_id, watch)
        else:
            _discard(self._by_client, watch.client_id, watch)

    def _refuse_if_closed(self) -> None:
        if self._closed is not None:
            raise self._closed


def _discard(registry: dict[K, set[Watch]], key: K, watch: Watch) -> None:
    group = registry.get(key)
    if group is not None:
        group.discard(watch)
        if not group:
            del registry[key]
