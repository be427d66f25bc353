"""The filters of Activity and Failed, read from the query string and written back into
links (paging keeps them)."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from mesh.errors import InvalidArgument

MAX_PAGE = 200
FIELDS = ("status", "channel", "message_type", "template", "user", "since", "until")


@dataclass(frozen=True)
class Filters:
    """As typed in the form; empty means not filtered. Times are UTC (`datetime-local`)."""

    status: str = ""
    channel: str = ""
    message_type: str = ""
    template: str = ""
    user: str = ""
    since: str = ""
    until: str = ""
    after: str = ""
    # Rows per page ("" the page's default).
    size: str = ""

    @classmethod
    def of(cls, params: QueryParams) -> Filters:
        values = {name: params.get(name, "").strip()[:200] for name in (*FIELDS, "after", "size")}
        return cls(**values)

    def page_size(self, default: int) -> int:
        """`size` if given (1-200), else `default`."""
        if not self.size:
            return default
        if not self.size.isdigit() or not 1 <= int(self.size) <= MAX_PAGE:
            raise InvalidArgument.field("size", f"a whole number from 1 to {MAX_PAGE}")
        return int(self.size)

    @property
    def active(self) -> bool:
        return any(getattr(self, name) for name in FIELDS)

    def domain(self, *, with_status: bool = True) -> dict[str, Any]:
        """The keywords of `Notifications.list` (INVALID_ARGUMENT names a bad field)."""
        found: dict[str, Any] = {
            "channel": self.channel or None,
            "message_type": self.message_type or None,
            "template_code": self.template or None,
            "user_id": _uuid("user", self.user),
            "start_time": _time("since", self.since),
            "end_time": _time("until", self.until),
        }
        if with_status:
            found["status"] = self.status or None
        return found

    def query(self, **changes: str) -> str:
        """The query string of these filters with `changes` (empty values left out)."""
        values = {k: v for k, v in asdict(replace(self, **changes)).items() if v}
        return urlencode(values)


def _uuid(name: str, value: str) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument.field(name, "not a UUID") from None


def _time(name: str, value: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidArgument.field(name, "not a date and time (YYYY-MM-DDTHH:MM)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
