"""The notification domain's values: what a caller asks (`NewSend`), who asks (`Caller`)
and what it gets back (`Accepted`, `NotificationRecord`, `Page`); who is notified
(`Recipient`) and with what (`Rendered`), as the peers adapter answers. Plain frozen
dataclasses: the gRPC servicer, the REST routes and the peer clients translate their wire
shapes to these.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any

from gateway.apikeys.scopes import Principal
from gateway.store.notifications import NotificationRecord
from gateway.timing.quiet import QuietChoice, QuietWindow
from mesh.errors import DomainError
from mesh.rules import ChannelName, MessageTypeName

__all__ = [
    "Accepted",
    "Caller",
    "ChannelName",
    "MessageTypeName",
    "NewSend",
    "NotificationRecord",
    "Outcome",
    "Page",
    "Priority",
    "Recipient",
    "Rendered",
]


class Priority(IntEnum):
    """The seed's 1..4 (also the herald.v1 Priority numbers)."""

    LOW = 1
    NORMAL = 2
    HIGH = 3
    CRITICAL = 4


@dataclass(frozen=True, kw_only=True)
class NewSend:
    """One notification to accept. `request_id` (optional) is the idempotency key;
    `language` empty means the user's locale, `template_version` 0 the active one;
    `send_at` None means now; `quiet_hours` "" means the message type's policy."""

    user_id: uuid.UUID
    channel: ChannelName
    template_code: str
    variables: Mapping[str, Any] = field(default_factory=dict)
    request_id: str = ""
    priority: Priority = Priority.NORMAL
    message_type: MessageTypeName = "transactional"
    metadata: Mapping[str, Any] = field(default_factory=dict)
    language: str = ""
    template_version: int = 0
    send_at: datetime | None = None
    quiet_hours: QuietChoice = ""


@dataclass(frozen=True)
class Caller:
    """Who is calling (its client is the idempotency scope and the notification's owner)
    and the call's correlation id."""

    principal: Principal
    correlation_id: str
    # The caller named the correlation id (x-correlation-id): it wins over request_ids.
    given: bool = False

    @property
    def client_id(self) -> str:
        return self.principal.client_id


@dataclass(frozen=True)
class Accepted:
    notification_id: uuid.UUID
    status: str
    duplicate: bool = False


# One item of a batch: accepted, or the error it would have raised alone.
Outcome = Accepted | DomainError


@dataclass(frozen=True)
class Page:
    notifications: list[NotificationRecord]
    next_page_token: str


@dataclass(frozen=True)
class Recipient:
    """A user as a Send needs them: contact points, locale and the channel preferences
    they set (a channel absent from `preferences` is allowed: users opt out).

    `push_targets` are the user's devices as userd answered them, opaque here: the domain
    only asks whether there are any, and the delivery job (`gateway.jobs`) carries them.
    """

    id: str
    email: str
    phone: str
    locale: str
    push_targets: tuple[object, ...]
    preferences: Mapping[str, bool]
    time_zone: str = "UTC"
    # The user's own quiet window; None: the gateway's default.
    quiet_hours: QuietWindow | None = None


@dataclass(frozen=True)
class Rendered:
    """A template rendered for a route: the version and the language templated used.

    `content` is the rendered parts as templated answered them, opaque here: only the
    delivery job (`gateway.jobs`) reads it, and carries it unchanged.
    """

    version: int
    language: str
    content: object
