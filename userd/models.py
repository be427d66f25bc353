"""The user domain: what userd stores, and requests as received before validation."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from enum import StrEnum
from uuid import UUID


class Platform(StrEnum):
    """A push provider; the value is what the `push_targets.platform` column holds."""

    FCM = "fcm"
    ONESIGNAL = "onesignal"
    WEBPUSH = "webpush"


@dataclass(frozen=True)
class Preferences:
    """Per-channel consent."""

    email: bool
    sms: bool
    push: bool


# A channel a user never chose is allowed: they are reachable on every channel they
# have a contact point for (an address, a phone, a push target) until they opt out.
DEFAULT_PREFERENCES = Preferences(email=True, sms=True, push=True)
DEFAULT_LOCALE = "en"
DEFAULT_TIME_ZONE = "UTC"


@dataclass(frozen=True)
class PreferencesPatch:
    """Channels to change; None keeps the current value."""

    email: bool | None = None
    sms: bool | None = None
    push: bool | None = None

    def is_empty(self) -> bool:
        return self.email is None and self.sms is None and self.push is None

    def apply(self, base: Preferences) -> Preferences:
        return Preferences(
            email=base.email if self.email is None else self.email,
            sms=base.sms if self.sms is None else self.sms,
            push=base.push if self.push is None else self.push,
        )


@dataclass(frozen=True)
class PushTarget:
    """One device. `address` is the FCM token, OneSignal subscription id or Web Push endpoint."""

    id: UUID
    platform: Platform
    address: str
    p256dh: str
    auth: str
    label: str
    create_time: datetime


@dataclass(frozen=True)
class User:
    """A user as stored, without the password hash. `version` grows on every change."""

    id: UUID
    name: str
    email: str
    phone: str | None
    locale: str
    time_zone: str
    preferences: Preferences
    push_targets: tuple[PushTarget, ...]
    version: int
    create_time: datetime
    update_time: datetime
    # The user's own quiet window (start, end) in their time zone; None: the default.
    quiet_hours: tuple[time, time] | None = None


@dataclass(frozen=True)
class PushTargetInput:
    """A push target as a caller sent it (not validated). `web_push` is set for Web Push."""

    platform: Platform | None
    token: str = ""
    endpoint: str = ""
    p256dh: str = ""
    auth: str = ""
    label: str = ""
    web_push: bool = False


@dataclass(frozen=True)
class UserInput:
    """User fields as a caller sent them (not validated); "" means unset."""

    name: str = ""
    email: str = ""
    phone: str = ""
    locale: str = ""
    time_zone: str = ""
    preferences: PreferencesPatch = field(default_factory=PreferencesPatch)
    push_targets: tuple[PushTargetInput, ...] = ()
    # ("HH:MM", "HH:MM") as sent; None: not sent.
    quiet_hours: tuple[str, str] | None = None


@dataclass(frozen=True)
class NewPushTarget:
    """A validated push target, ready to store."""

    platform: Platform
    address: str
    p256dh: str = ""
    auth: str = ""
    label: str = ""


@dataclass(frozen=True)
class NewUser:
    """A validated user, ready to store (the password is hashed later)."""

    name: str
    email: str
    phone: str | None
    locale: str
    time_zone: str
    preferences: Preferences
    push_targets: tuple[NewPushTarget, ...]
    password: str = field(repr=False)
    quiet_hours: tuple[time, time] | None = None


@dataclass(frozen=True)
class UserChanges:
    """A validated partial update: only what the update mask named.

    `columns` maps `users` columns to new values; `push_targets`, when not None,
    replaces the user's devices; `password` is the new clear-text password.
    """

    columns: dict[str, object]
    push_targets: tuple[NewPushTarget, ...] | None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Page:
    """One page of ListUsers: at most `size` users after the `after` cursor."""

    size: int
    after: tuple[datetime, UUID] | None
