"""The suppression list as operators manage it: list and look up entries, lift one (the
removal is recorded with who lifted it and why). Entries are added by receipts
(`service`); claims consult the list (`gateway.status.claims`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from gateway.receipts.service import SUPPRESSIONS
from gateway.store import db, suppressions
from gateway.store.notifications import decode_page_token, encode_page_token
from gateway.store.suppressions import Suppression
from gateway.wire import CHANNEL_NAMES, CHANNELS_BY_NAME
from mesh.errors import InvalidArgument, NotFound
from mesh.rules import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

# The longest contact point looked up (an email address's limit) and removal reason taken.
MAX_CONTACT = 320
MAX_REMOVE_REASON = 500


def _text(field: str, value: str, longest: int) -> str:
    """A caller's text, refused (INVALID_ARGUMENT) when too long or holding NUL, which
    PostgreSQL's text cannot keep."""
    if len(value) > longest:
        raise InvalidArgument.field(field, f"must be at most {longest} characters")
    if "\x00" in value:
        raise InvalidArgument.field(field, "must not contain NUL characters")
    return value


@dataclass(frozen=True)
class SuppressionPage:
    entries: list[Suppression]
    next_page_token: str


class SuppressionList:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def list(
        self,
        *,
        channel: str | None = None,
        contact: str | None = None,
        include_removed: bool = False,
        page_size: int = 0,
        page_token: str = "",
    ) -> SuppressionPage:
        """Newest first; `contact` looks one contact point up (on `channel`, or any)."""
        number = None
        if channel is not None:
            if channel not in CHANNELS_BY_NAME:
                raise InvalidArgument.field("channel", "must be email, sms or push")
            number = CHANNELS_BY_NAME[channel]
        if page_size < 0:
            raise InvalidArgument.field("page_size", "must not be negative")
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        if contact:
            contact = _text("contact", contact, MAX_CONTACT)
        wanted = suppressions.normalized(channel or "email", contact) if contact else None
        after = decode_page_token(page_token) if page_token else None
        async with db.transaction(self._pool) as conn:
            rows = await suppressions.page(
                conn,
                channel=number,
                contact=wanted,
                include_removed=include_removed,
                after=after,
                limit=size + 1,
            )
        more = len(rows) > size
        rows = rows[:size]
        return SuppressionPage(rows, encode_page_token(rows[-1]) if more else "")

    async def get(self, suppression_id: uuid.UUID) -> Suppression:
        """One entry, active or lifted; NOT_FOUND when there is none with that id."""
        async with db.connection(self._pool) as conn:
            entry = await suppressions.get(conn, suppression_id)
        if entry is None:
            raise NotFound(f"no suppression {suppression_id}")
        return entry

    async def remove(
        self, suppression_id: uuid.UUID, *, removed_by: str, reason: str
    ) -> Suppression:
        """Lifts an active entry and returns it lifted; NOT_FOUND when there is no active
        one with that id (never was, or lifted already)."""
        reason = _text("reason", reason, MAX_REMOVE_REASON)
        async with db.transaction(self._pool) as conn:
            lifted = await suppressions.remove(
                conn, suppression_id, removed_by=removed_by, reason=reason
            )
        if lifted is None:
            raise NotFound(f"no active suppression {suppression_id}")
        SUPPRESSIONS.labels(CHANNEL_NAMES.get(lifted.channel, ""), lifted.reason, "removed").inc()
        return lifted
