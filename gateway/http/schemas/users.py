"""JSON of `/api/v1/users` (seed 004's shapes plus contact points and push targets)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from gateway.http.schemas.common import Email, Language, RequestModel, Uuid, text
from mesh import outbound, rules

Platform = Literal["fcm", "onesignal", "webpush"]
E164 = r"^\+[1-9][0-9]{1,14}$"
_AT_LEAST_ONE: JsonDict = {"minProperties": 1}
_PUBLIC = outbound.OutboundRule()


def _time_zone(value: str) -> str:
    if value not in rules.time_zones():
        raise ValueError('must be an IANA time zone such as "UTC" or "America/Sao_Paulo"')
    return value


def _public(value: str) -> str:
    try:
        _PUBLIC.check_url(value)
    except outbound.OutboundRefused as exc:
        raise ValueError(f"{exc}: Web Push endpoints are https URLs of public hosts") from None
    return value


# The names this machine's time zone database has, as userd checks them.
TimeZone = Annotated[
    str,
    Field(json_schema_extra={"enum": sorted(rules.time_zones())}, examples=["Europe/Lisbon"]),
    AfterValidator(_time_zone),
]
# A public https URL by name; loopback and private hosts, which a deployment may let
# userd take (HERALD_OUTBOUND_ALLOW_LOOPBACK), are gRPC-only.
Endpoint = Annotated[
    str,
    Field(
        max_length=rules.MAX_WEB_PUSH_ENDPOINT,
        pattern=outbound.PUBLIC_HTTPS_URL,
        json_schema_extra={"not": {"pattern": outbound.LOCAL_HOST_URL}},
        examples=["https://fcm.googleapis.com/fcm/send/dGVzdA"],
    ),
    AfterValidator(_public),
]
FcmToken = Annotated[str, Field(max_length=rules.MAX_PUSH_TOKEN, pattern=rules.FCM_TOKEN)]
UserName = Annotated[str, text(max_length=rules.MAX_USER_NAME, pattern=rules.PRINTABLE_NOT_BLANK)]
Password = Annotated[str, text(min_length=rules.MIN_PASSWORD, max_length=rules.MAX_PASSWORD)]
Label = Annotated[str, text(max_length=rules.MAX_LABEL, pattern=rules.PRINTABLE)]


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

    endpoint: Endpoint
    p256dh: str = Field(
        max_length=rules.MAX_WEB_PUSH_KEY,
        pattern=rules.WEB_PUSH_P256DH,
        description=f"base64url of the {rules.P256DH_BYTES}-byte public key.",
    )
    auth: str = Field(
        max_length=rules.MAX_WEB_PUSH_KEY,
        pattern=rules.WEB_PUSH_AUTH,
        description=f"base64url of the {rules.AUTH_BYTES}-byte secret.",
    )


class FcmTarget(RequestModel):
    platform: Literal["fcm"]
    token: FcmToken
    label: Label | None = None


class OneSignalTarget(RequestModel):
    platform: Literal["onesignal"]
    token: Uuid = Field(description="The OneSignal subscription id.")
    label: Label | None = None


class WebPushTarget(RequestModel):
    platform: Literal["webpush"]
    web_push: WebPushIn
    label: Label | None = None


PushTargetIn = Annotated[
    FcmTarget | OneSignalTarget | WebPushTarget, Field(discriminator="platform")
]


_HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"


class QuietHoursIn(RequestModel):
    """A daily window in the user's time zone ("22:00" to "07:00" spans midnight; equal
    times: no quiet hours) when messages that respect quiet hours wait."""

    start: str = Field(pattern=_HHMM, examples=["22:00"])
    end: str = Field(pattern=_HHMM, examples=["07:00"])


class QuietHoursOut(BaseModel):
    start: str
    end: str


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

    name: UserName
    email: Email
    push_token: FcmToken | None = Field(None, description="Becomes one FCM push target.")
    preferences: PreferencesIn | None = None
    password: Password = Field(description="Write-only.")
    phone: str | None = Field(None, pattern=E164, description="E.164, e.g. +5511987654321.")
    locale: Language | None = None
    time_zone: TimeZone | None = None
    push_targets: list[PushTargetIn] = Field(
        default_factory=list, max_length=rules.MAX_PUSH_TARGETS
    )
    quiet_hours: QuietHoursIn | None = Field(
        None, description="The user's own quiet window; left out: the gateway's default."
    )


class UserUpdate(RequestModel):
    """Fields to change (at least one); `phone` or `time_zone` null clears them. Push
    targets have their own routes."""

    model_config = ConfigDict(json_schema_extra=_AT_LEAST_ONE)

    # Fields that cannot be cleared are typed non-null with a None default: left out,
    # they do not change; sent as null, they are refused naming the field.
    name: UserName = Field(None)  # type: ignore[assignment]
    email: Email = Field(None)  # type: ignore[assignment]
    password: Password = Field(None)  # type: ignore[assignment]
    phone: str | None = Field(None, pattern=E164)
    locale: Language = Field(None)  # type: ignore[assignment]
    time_zone: TimeZone | None = None
    preferences: PreferencesIn = Field(None)  # type: ignore[assignment]
    quiet_hours: QuietHoursIn | None = Field(
        None, description="The user's own quiet window; null: back to the gateway's default."
    )

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
    quiet_hours: QuietHoursOut | None = Field(
        None, description="The user's own quiet window; null: the gateway's default applies."
    )


class UserPage(BaseModel):
    items: list[UserOut]
    next_page_token: str | None
