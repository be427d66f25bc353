"""ListUsers paging: sizes, and opaque tokens that carry the (create_time, id) cursor."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from uuid import UUID

from userd.models import Page
from userd.validation import Violations

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_PAGE_TOKEN = 200


def page(size: int, token: str) -> Page:
    """ListUsers paging: 0 means the default size, more than the maximum means the maximum."""
    errors = Violations()
    if size < 0:
        errors.add("page_size", "must not be negative")
    after = None
    if token:
        after = _decode(token)
        if after is None:
            errors.add("page_token", "not a token from a previous ListUsers answer")
    errors.check()
    return Page(size=min(size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE), after=after)


def next_token(create_time: datetime, last_id: UUID) -> str:
    """An opaque cursor: the (create_time, id) of the last user of a page."""
    raw = f"{create_time.isoformat()}|{last_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str) -> tuple[datetime, UUID] | None:
    if len(token) > MAX_PAGE_TOKEN:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        when, _, last = raw.partition("|")
        created = datetime.fromisoformat(when)
        return (created, UUID(last)) if created.tzinfo is not None else None
    except (ValueError, binascii.Error):
        return None
