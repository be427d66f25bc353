"""WatchNotification and WatchNotifications: a notification's progress, and a client's
status changes, as streams of records (the servicer turns them into protobuf).

Who may watch is who may read: a notification watch authorizes as `Notifications.get`
(another client's is NOT_FOUND, in the same words as a missing one); a client-wide watch
needs notifications:read and sees the caller's own client's notifications, whatever else
its scopes let it read. Each stream holds a `Watch` (`gateway.callbacks.watches`) and
removes it when it ends: at the final status, on an error, or when the caller cancels
(gRPC cancels the handler, and the `finally` runs).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable

from psycopg_pool import AsyncConnectionPool

from gateway import lifecycle
from gateway.apikeys.scopes import Principal, Scope
from gateway.callbacks.watches import Watches
from gateway.notifications.service import Notifications, not_found
from gateway.store import db, notifications
from gateway.store.notifications import NotificationRecord
from mesh.errors import InvalidArgument

# Notifications a client-wide stream remembers the last status it read of, so that a
# status read twice (two NOTIFYs, one read after both changes) is sent once.
REMEMBERED = 10_000


class Watching:
    """The streams, over the notification reads and this gateway's watches."""

    def __init__(
        self, *, pool: AsyncConnectionPool, notifications: Notifications, watches: Watches
    ) -> None:
        self._pool = pool
        self._notifications = notifications
        self._watches = watches

    async def notification(
        self, *, notification_id: uuid.UUID, principal: Principal
    ) -> AsyncGenerator[NotificationRecord, None]:
        """The notification with its trail now, then after each change of its status,
        until the status is final."""
        principal.require(Scope.NOTIFICATIONS_READ)
        watch = await self._watches.add_notification(notification_id, owner=principal.reading_owner)
        if watch is None:
            raise not_found(notification_id)
        try:
            while True:
                record = await self._notifications.get(
                    notification_id=notification_id, principal=principal
                )
                if record.status != watch.seen:
                    watch.seen = record.status
                    yield record
                if record.status in lifecycle.FINAL:
                    return
                await watch.changes()
        finally:
            await self._watches.remove(watch)

    async def client(
        self,
        *,
        principal: Principal,
        statuses: frozenset[str] = frozenset(),
        registered: Callable[[], Awaitable[None]] | None = None,
    ) -> AsyncGenerator[NotificationRecord, None]:
        """Each notification of the caller's client whose status changes from now on,
        without its trail, once per change into one of `statuses` (empty: any), until
        the caller stops reading. Changes in quick succession may come as the last.

        `registered` is awaited once the watch is in place: every change committed after
        it is sent."""
        principal.require(Scope.NOTIFICATIONS_READ)
        if unknown := statuses - lifecycle.STATUSES:
            raise InvalidArgument.field("statuses", f"unknown status {min(unknown)!r}")
        client_id = principal.client_id
        watch = await self._watches.add_client(client_id)
        last: OrderedDict[uuid.UUID, str] = OrderedDict()
        try:
            if registered is not None:
                await registered()
            while True:
                changed = await watch.changes()
                async with db.connection(self._pool) as conn:
                    records = await notifications.get_many(conn, changed, client_id=client_id)
                for record in records:
                    if last.get(record.id) == record.status:
                        continue
                    last[record.id] = record.status
                    last.move_to_end(record.id)
                    if len(last) > REMEMBERED:
                        last.popitem(last=False)
                    if not statuses or record.status in statuses:
                        yield record
        finally:
            await self._watches.remove(watch)
