"""What every provider is: one small class per provider behind one interface per channel.

A provider sends one message and answers the provider's message id, or raises one of
the errors below. The classification is the provider's job, because only it knows what
its API's answers mean:

- `TransientError`: worth trying again, here or through another provider (a timeout, a
  refused connection, 5xx). Errors about the provider account or its configuration
  (401/403 rejected credentials, a 404 for the provider's own endpoint, domain or account,
  an unknown app id, a refused sender) are transient too: another provider may well deliver
  the message. Counts against the circuit breaker.
- `Throttled`, a transient error of its own: the provider answered 429 (too many
  requests). `classify_http` makes every 429 one, waiting the answer's Retry-After.
- `PermanentError`: only errors about this message: an invalid, unsubscribed or
  unregistered recipient, rejected content, a payload too large. Not retried, not failed
  over, and not the provider's fault.
- `TargetGone`: a push target that no longer exists; the worker removes it from the user.
"""

from __future__ import annotations

import enum
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import ClassVar, Generic, Protocol, TypeVar


class ProviderError(Exception):
    """A provider refused or failed a send; `status` is the HTTP/SMTP code when there is one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class TransientError(ProviderError):
    """Try again later or elsewhere."""


class Throttled(TransientError):
    """The provider answered 429: too many requests, try again after `retry_after`
    seconds. Not a failure of the provider (its circuit does not count it) and not an
    attempt used up: the chain waits and sends again."""

    def __init__(self, message: str, *, retry_after: float, status: int | None = 429) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class Headers(Protocol):
    """An answer's headers, as any HTTP client holds them (case-insensitive `get`)."""

    def get(self, name: str, /) -> str | None: ...


# How long to wait after a 429 that does not say (no Retry-After, or an unreadable one).
DEFAULT_RETRY_AFTER = 1.0


def retry_after_seconds(value: str | None, default: float = DEFAULT_RETRY_AFTER) -> float:
    """A Retry-After header's delay: seconds, or an HTTP date (RFC 9110)."""
    if not value:
        return default
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def throttled(provider: str, headers: Headers | None) -> Throttled:
    """A provider's 429 as `Throttled`, waiting what its Retry-After header says."""
    value = headers.get("Retry-After") if headers is not None else None
    return Throttled(
        f"{provider} answered 429 (too many requests)", retry_after=retry_after_seconds(value)
    )


class PermanentError(ProviderError):
    """The message cannot be delivered as it is; trying again would fail the same way."""


class TargetGone(PermanentError):
    """The push target is unregistered or expired: remove it from the user."""


class Platform(enum.StrEnum):
    """The push platform a target belongs to (herald.v1.PushPlatform)."""

    FCM = "fcm"
    ONESIGNAL = "onesignal"
    WEBPUSH = "webpush"


@dataclass(frozen=True)
class EmailMessage:
    to: str
    subject: str
    html: str
    text: str
    # Stable per notification, generation and channel: marks duplicates at the provider.
    key: str
    notification_id: str
    # The worker's id of this attempt, sent along so that the provider's receipts name it
    # (None outside a hop: an admin alert).
    attempt_id: str | None = None


@dataclass(frozen=True)
class SmsMessage:
    to: str
    text: str
    key: str
    notification_id: str
    attempt_id: str | None = None


@dataclass(frozen=True)
class PushDevice:
    """One push target of a user."""

    id: str
    platform: Platform
    token: str = ""
    endpoint: str = ""
    p256dh: str = ""
    auth: str = ""

    @property
    def label(self) -> str:
        """What identifies the device without exposing its token in logs."""
        return self.id or (self.token or self.endpoint)[-8:]


@dataclass(frozen=True)
class PushMessage:
    device: PushDevice
    title: str
    body: str
    key: str
    notification_id: str
    data: Mapping[str, str] = field(default_factory=dict)

    @property
    def device_key(self) -> str:
        """A UUID stable per hop and device, for APIs that want one as idempotency key."""
        name = f"{self.key}:{self.device.id or self.device.token or self.device.endpoint}"
        return str(uuid.uuid3(uuid.NAMESPACE_URL, f"herald:{name}"))


@dataclass(frozen=True)
class Sent:
    """A provider accepted the message."""

    message_id: str
    # A note for the trail (the sandbox puts the whole message here).
    detail: str = ""
    # The provider was asked to call back with this message's receipts.
    awaits_receipt: bool = False


M = TypeVar("M")


class Provider(ABC, Generic[M]):
    """One provider of one channel."""

    name: ClassVar[str]

    def __init__(self, *, timeout: float) -> None:
        self.timeout = timeout

    def accepts(self, message: M) -> bool:
        """Whether this provider can carry `message` at all (push: the device's platform)."""
        return True

    @abstractmethod
    async def send(self, message: M) -> Sent:
        """Sends one message; raises `TransientError` or `PermanentError`."""

    async def close(self) -> None:
        """Releases connections; called once at shutdown."""


# HTTP statuses that refuse the request's content: the message, not the account, is at fault.
MESSAGE_STATUSES = frozenset({400, 413, 414, 422})


def classify_http(
    status: int,
    text: str,
    *,
    provider: str,
    account_error: bool = False,
    headers: Headers | None = None,
) -> ProviderError:
    """The usual meaning of an HTTP error status, for APIs without finer error codes.

    A 429 is `Throttled`, waiting what the Retry-After of the answer's `headers` says.
    Permanent only when the status says the request's content was refused (400, 413, 414,
    422) and the provider's own error code did not show it to be about the account or
    configuration (`account_error`, e.g. OneSignal's unknown app id): a 401, 403 or 404
    (the provider's endpoint, domain or account does not exist) is the configuration's
    fault, not the message's, so it is transient and the chain fails over.
    """
    if status == 429:
        return throttled(provider, headers)
    message = f"{provider} answered {status}: {text[:300]}".rstrip(": ")
    if status in (401, 403):
        # The message is fine; the credentials are not. Another provider may deliver it.
        return TransientError(f"{provider} rejected the credentials ({status})", status=status)
    if account_error or status not in MESSAGE_STATUSES:
        return TransientError(message, status=status)
    return PermanentError(message, status=status)
