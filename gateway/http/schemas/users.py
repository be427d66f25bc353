"""JSON of `/api/v1/users` (seed 004's shapes plus contact points and push targets)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from gateway.http.schemas.common import Email, Language, RequestModel, text

Platform = Literal["fcm", "onesignal", "webpush"]
E164 = r"^\+[1-9][0-9]{1,14}$"
TIME_ZONE = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$"
_AT_LEAST_ONE: JsonDict = {"minProperties": 1}


class PreferencesIn(RequestModel):
    """Per-channel consent (at least one); a channel left out keeps its value."""

    model_config = ConfigDict(json_schema_extra=_AT_LEAST_ONE)

    # Typed non-null with a None default: left out, unchanged; null is refused.
    email: bool = Field(None)  # type: ignore[assignment]
    push: bool = Field(None)  # type: ignore[assignment]
    sms: bool = Field(None)  # type: ignore[assignment]

    @model_validator(mode="after")
    def _something(self) -> PreferencesIn:
        if not self.model_fields_set:
            raise ValueError("give at least one of email, push, sms")
        return self


class WebPushIn(RequestModel):
    """A browser PushSubscription: endpoint and keys.p256dh / keys.auth."""

    endpoint: str = Field(min_length=9, max_length=2048, pattern=r"^https://[^\x00]+$")
    p256dh: str = text(min_length=1, max_length=256)
    auth: str = text(min_length=1, max_length=256)


class _TokenTarget(RequestModel):
    token: str = text(min_length=1, max_length=4096)
    label: str | None = text(None, max_length=100)


class FcmTarget(_TokenTarget):
    platform: Literal["fcm"]


class OneSignalTarget(_TokenTarget):
    platform: Literal["onesignal"]


class WebPushTarget(RequestModel):
    platform: Literal["webpush"]
    web_push: WebPushIn
    label: str | None = text(None, max_length=100)


PushTargetIn = Annotated[
    FcmTarget | OneSignalTarget | WebPushTarget, Field(discriminator="platform")
]


class UserCreate(RequestModel):
    """The seed's payload; phone, locale, time_zone and push_targets are optional extras."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Ada Lovelace",
                    "email": "ada@example.com",
                    "push_token": "fcm-registration-token",
                    "preferences": {"email": True, "push": False},
                    "password": "correct horse battery staple",
                }
            ]
        }
    )

    name: str = text(min_length=1, max_length=200)
    email: Email
    push_token: str | None = text(
        None, min_length=1, max_length=4096, description="Becomes one FCM push target."
    )
    preferences: PreferencesIn | None = None
    password: str = text(min_length=1, max_length=1024, description="Write-only.")
    phone: str | None = Field(None, pattern=E164, description="E.164, e.g. +5511987654321.")
    locale: Language | None = None
    time_zone: str | None = Field(None, max_length=64, pattern=TIME_ZONE)
    push_targets: list[PushTargetIn] = Field(default_factory=list, max_length=20)


class UserUpdate(RequestModel):
    """Fields to change (at least one); `phone` or `time_zone` null clears them. Push
    targets have their own routes."""

    model_config = ConfigDict(json_schema_extra=_AT_LEAST_ONE)

    # Fields that cannot be cleared are typed non-null with a None default: left out,
    # they do not change; sent as null, they are refused naming the field.
    name: str = text(None, min_length=1, max_length=200)
    email: Email = Field(None)  # type: ignore[assignment]
    password: str = text(None, min_length=1, max_length=1024)
    phone: str | None = Field(None, pattern=E164)
    locale: Language = Field(None)  # type: ignore[assignment]
    time_zone: str | None = Field(None, max_length=64, pattern=TIME_ZONE)
    preferences: PreferencesIn = Field(None)  # type: ignore[assignment]

    @model_validator(mode="after")
    def _something(self) -> UserUpdate:
        if not self.model_fields_set:
            raise ValueError("nothing to update: send at least one field")
        return self


class PreferencesOut(BaseModel):
    email: bool
    push: bool
    sms: bool


class WebPushOut(BaseModel):
    endpoint: str
    p256dh: str


class PushTargetOut(BaseModel):
    id: str
    platform: Platform | None
    token: str | None
    web_push: WebPushOut | None = Field(description="The auth secret is write-only.")
    label: str | None
    created_at: datetime | None


class UserOut(BaseModel):
    """The seed's user (`push_token` is the first FCM token) plus contact points."""

    id: str
    name: str
    email: str
    push_token: str | None
    preferences: PreferencesOut
    phone: str | None
    locale: str | None
    time_zone: str | None
    push_targets: list[PushTargetOut]
    created_at: datetime | None
    updated_at: datetime | None


class UserPage(BaseModel):
    items: list[UserOut]
    next_page_token: str | None
