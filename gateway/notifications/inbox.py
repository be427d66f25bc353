"""The sandbox inbox: what the sandbox provider "sent", newest first, as the recipient
would have received it.

The sandbox sends nothing; each attempt it takes is in the delivery trail (its `detail`
holds the recipient and the parts, each cut at 1,000 characters) and the notification's
stored job holds the rendered parts whole. So the inbox is a read of what Herald keeps
anyway, bounded per page: no copy to size or expire.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import orjson
from psycopg_pool import AsyncConnectionPool

from gateway import jobs
from gateway.apikeys.scopes import Principal, Scope
from gateway.store import attempts
from gateway.store.db import transaction
from gateway.wire import CHANNEL_NAMES
from mesh.errors import InvalidArgument


@dataclass(frozen=True)
class InboxItem:
    attempt_id: uuid.UUID
    notification_id: uuid.UUID
    channel: str
    sent_time: datetime
    # The recipient the sandbox was given (email address, phone number or device).
    to: str
    template_code: str
    content: jobs.SentContent


class SandboxInbox:
    """Reads of the sandbox's sends (notifications:read; a client sees its own)."""

    def __init__(self, *, pool: AsyncConnectionPool, max_items: int) -> None:
        self._pool = pool
        self._max = max_items

    async def latest(
        self, *, principal: Principal, before: datetime | None = None, limit: int = 0
    ) -> list[InboxItem]:
        """Up to `limit` (0: the configured size) sends before `before`, newest first."""
        principal.require(Scope.NOTIFICATIONS_READ)
        if limit < 0:
            raise InvalidArgument.field("limit", "must not be negative")
        async with transaction(self._pool) as conn:
            rows = await attempts.sandbox_sends(
                conn,
                client_id=principal.reading_owner,
                before=before,
                limit=min(limit or self._max, self._max),
            )
        return [_item(row) for row in rows]


def _item(row: attempts.SandboxSend) -> InboxItem:
    return InboxItem(
        attempt_id=row.attempt_id,
        notification_id=row.notification_id,
        channel=CHANNEL_NAMES.get(row.channel, str(row.channel)),
        sent_time=row.start_time,
        to=_recipient(row.detail),
        template_code=row.template_code,
        content=jobs.sent_content(row.job) if row.job else jobs.SentContent(),
    )


def _recipient(detail: str) -> str:
    """The `to` (or push `device`) the sandbox recorded, from the attempt's detail."""
    try:
        recorded = orjson.loads(detail or "{}").get("sandbox", {})
    except (orjson.JSONDecodeError, AttributeError):
        return ""
    if not isinstance(recorded, dict):
        return ""
    target = recorded.get("to") or recorded.get("device") or ""
    return (
        str(target.get("token") or target.get("id") or "")
        if isinstance(target, dict)
        else str(target)
    )
