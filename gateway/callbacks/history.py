"""What became of a notification's status callbacks: each event with every attempt to
post it (URL, status code, duration, error), for whoever may read the notification."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from gateway.apikeys.scopes import Principal, Scope
from gateway.notifications.service import not_found
from gateway.store import callbacks, db
from gateway.store.callbacks import Attempt, Event


@dataclass(frozen=True)
class Delivery:
    event: Event
    attempts: list[Attempt]


class CallbackHistory:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def of(self, principal: Principal, notification_id: uuid.UUID) -> list[Delivery]:
        """The notification's callbacks in order; NOT_FOUND for another client's."""
        principal.require(Scope.NOTIFICATIONS_READ)
        async with db.transaction(self._pool) as conn:
            owner = await callbacks.notification_owner(conn, notification_id)
            if owner is None or principal.reading_owner not in (None, owner):
                raise not_found(notification_id)
            events = await callbacks.for_notification(conn, notification_id)
            attempts = await callbacks.attempts_for_notification(conn, notification_id)
        by_event: dict[uuid.UUID, list[Attempt]] = {}
        for attempt in attempts:
            by_event.setdefault(attempt.event_id, []).append(attempt)
        return [Delivery(e, by_event.get(e.id, [])) for e in events]
