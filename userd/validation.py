"""Request validation: every field checked, normalised and bounded before anything is written.

Violations are collected rather than raised one at a time, so a caller learns about every
bad field at once. Field names are paths in the request ("email", "user.phone",
"push_targets[0].token"). Descriptions never repeat a contact point or a password.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
import zoneinfo
from collections.abc import Sequence
from functools import cache
from uuid import UUID

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from mesh import rules
from mesh.errors import FieldViolation, InvalidArgument
from mesh.outbound import OutboundRefused, OutboundRule
from userd.models import (
    DEFAULT_LOCALE,
    DEFAULT_PREFERENCES,
    DEFAULT_TIME_ZONE,
    NewPushTarget,
    NewUser,
    Platform,
    PreferencesPatch,
    PushTargetInput,
    UserChanges,
    UserInput,
)

MAX_NAME = 200
MAX_EMAIL_INPUT = 320
MAX_PHONE_INPUT = 32
MIN_PASSWORD = 8
MAX_PASSWORD = 512
MAX_LOCALE = 64
MAX_TIME_ZONE = 64
MAX_LABEL = 100
MAX_TOKEN = 1024
MAX_ENDPOINT = 2048
MAX_KEY = 200
MAX_PUSH_TARGETS = 20

CHANNELS = rules.CHANNEL_NAMES
MASK_PATHS = frozenset(
    {"name", "email", "phone", "locale", "time_zone", "preferences", "push_targets", "password"}
    | {f"preferences.{channel}" for channel in CHANNELS}
)

# RFC 5646 language tags (grandfathered irregular tags aside): language, script, region,
# variants, extensions, private use.
LANGUAGE_TAG = re.compile(
    r"^(?P<language>[a-z]{2,3}(?:-[a-z]{3}){0,3}|[a-z]{4,8})"
    r"(?:-(?P<script>[a-z]{4}))?"
    r"(?:-(?P<region>[a-z]{2}|[0-9]{3}))?"
    r"(?P<rest>(?:-(?:[a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*"
    r"(?:-[0-9a-wyz](?:-[a-z0-9]{2,8})+)*"
    r"(?:-x(?:-[a-z0-9]{1,8})+)?)$"
)
FCM_TOKEN = re.compile(r"^[A-Za-z0-9_:.\-]+$")
BASE64URL = re.compile(r"^[A-Za-z0-9_\-]+={0,2}$")
P256DH_BYTES = 65
AUTH_BYTES = 16


class Violations:
    """Collects field violations; `check()` raises them all as one INVALID_ARGUMENT."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))

    def check(self) -> None:
        if self.items:
            raise InvalidArgument(self.items)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _text(value: str, field: str, limit: int, errors: Violations, *, required: bool) -> str:
    """A trimmed single-line string of at most `limit` characters."""
    text = value.strip()
    if required and not text:
        errors.add(field, "is required")
    elif len(text) > limit:
        errors.add(field, f"must be at most {limit} characters")
    elif any(unicodedata.category(c).startswith("C") for c in text):
        errors.add(field, "must not contain control characters")
    return text


def user_id(value: str, field: str) -> UUID:
    """A user (or push target) id, which must be a UUID."""
    try:
        return UUID(value[:64])
    except ValueError:
        raise InvalidArgument.field(field, "must be a UUID") from None


def name(value: str, field: str, errors: Violations) -> str:
    return _text(value, field, MAX_NAME, errors, required=True)


def email(value: str, field: str, errors: Violations) -> str:
    """The address as email-validator normalises it (syntax only, no DNS lookups)."""
    if not value.strip():
        errors.add(field, "is required")
        return ""
    if len(value) > MAX_EMAIL_INPUT:
        errors.add(field, f"must be at most {MAX_EMAIL_INPUT} characters")
        return ""
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        errors.add(field, f"not a valid email address: {exc}")
        return ""


def phone(value: str, field: str, errors: Violations) -> str | None:
    """An international phone number as E.164, or None when empty."""
    if not value.strip():
        return None
    if len(value) > MAX_PHONE_INPUT:
        errors.add(field, f"must be at most {MAX_PHONE_INPUT} characters")
        return None
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        errors.add(field, "must be an international number starting with +, e.g. +14155550100")
        return None
    if not phonenumbers.is_valid_number(number):
        errors.add(field, "not a valid phone number")
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def locale(value: str, field: str, errors: Violations) -> str:
    """A BCP 47 language tag in canonical case ("pt-br" → "pt-BR"); empty means "en"."""
    text = value.strip()
    if not text:
        return DEFAULT_LOCALE
    match = LANGUAGE_TAG.match(text.replace("_", "-").lower()) if len(text) <= MAX_LOCALE else None
    if match is None:
        errors.add(field, 'must be a BCP 47 language tag such as "en" or "pt-BR"')
        return text
    parts = [match["language"]]
    if match["script"]:
        parts.append(match["script"].title())
    if match["region"]:
        parts.append(match["region"].upper())
    return "-".join(parts) + match["rest"]


@cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def time_zone(value: str, field: str, errors: Violations) -> str:
    """An IANA time zone name; empty means "UTC"."""
    text = value.strip()
    if not text:
        return DEFAULT_TIME_ZONE
    if len(text) > MAX_TIME_ZONE or text not in _time_zones():
        errors.add(field, 'must be an IANA time zone such as "UTC" or "America/Sao_Paulo"')
    return text


def password(value: str, field: str, errors: Violations) -> str:
    if len(value) < MIN_PASSWORD:
        errors.add(field, f"must be at least {MIN_PASSWORD} characters")
    elif len(value) > MAX_PASSWORD:
        errors.add(field, f"must be at most {MAX_PASSWORD} characters")
    return value


def _base64url_key(value: str, field: str, size: int, errors: Violations) -> str:
    """A base64url key of exactly `size` bytes, stored without padding."""
    raw = b""
    if len(value) <= MAX_KEY and BASE64URL.match(value):
        try:
            raw = base64.urlsafe_b64decode(value.rstrip("=") + "=" * (-len(value.rstrip("=")) % 4))
        except (binascii.Error, ValueError):
            raw = b""
    if len(raw) != size or (size == P256DH_BYTES and raw[0] != 4):
        errors.add(field, f"must be base64url of a {size}-byte key")
    return value.rstrip("=")


def endpoint(value: str, field: str, errors: Violations, *, outbound: OutboundRule) -> str:
    """A Web Push endpoint: an https URL of a public host (by syntax: no DNS here)."""
    text = value.strip()
    if len(text) > MAX_ENDPOINT:
        errors.add(field, f"must be an https URL of at most {MAX_ENDPOINT} characters")
        return text
    try:
        outbound.check_url(text)
    except OutboundRefused as exc:
        errors.add(field, f"{exc}: Web Push endpoints are https URLs of public hosts")
    return text


def push_target(
    target: PushTargetInput, field: str, errors: Violations, *, outbound: OutboundRule
) -> NewPushTarget:
    """One device: an FCM token, a OneSignal subscription id or a Web Push subscription."""
    label = _text(target.label, _join(field, "label"), MAX_LABEL, errors, required=False)
    if target.platform is None:
        errors.add(_join(field, "platform"), "is required: FCM, ONESIGNAL or WEBPUSH")
        return NewPushTarget(Platform.FCM, "", label=label)
    if target.platform is Platform.WEBPUSH:
        if target.token:
            errors.add(_join(field, "token"), "must be empty for Web Push (use web_push)")
        if not target.web_push:
            errors.add(_join(field, "web_push"), "is required for Web Push")
            return NewPushTarget(target.platform, "", label=label)
        sub = _join(field, "web_push")
        url = endpoint(target.endpoint, _join(sub, "endpoint"), errors, outbound=outbound)
        p256dh = _base64url_key(target.p256dh, _join(sub, "p256dh"), P256DH_BYTES, errors)
        auth = _base64url_key(target.auth, _join(sub, "auth"), AUTH_BYTES, errors)
        return NewPushTarget(target.platform, url, p256dh, auth, label)
    if target.web_push:
        errors.add(_join(field, "web_push"), "is only for Web Push targets")
    token = target.token.strip()
    token_field = _join(field, "token")
    if not token:
        errors.add(token_field, "is required")
    elif len(token) > MAX_TOKEN:
        errors.add(token_field, f"must be at most {MAX_TOKEN} characters")
    elif target.platform is Platform.ONESIGNAL:
        try:
            token = str(UUID(token))
        except ValueError:
            errors.add(token_field, "must be a OneSignal subscription id (a UUID)")
    elif not FCM_TOKEN.match(token):
        errors.add(token_field, "must be an FCM registration token")
    return NewPushTarget(target.platform, token, label=label)


def push_targets(
    targets: Sequence[PushTargetInput], field: str, errors: Violations, *, outbound: OutboundRule
) -> tuple[NewPushTarget, ...]:
    """A whole set of devices: bounded in number, no token or endpoint twice."""
    if len(targets) > MAX_PUSH_TARGETS:
        errors.add(field, f"at most {MAX_PUSH_TARGETS} push targets")
        return ()
    out: list[NewPushTarget] = []
    seen: set[str] = set()
    for index, target in enumerate(targets):
        item = push_target(target, f"{field}[{index}]", errors, outbound=outbound)
        if item.address and item.address in seen:
            errors.add(f"{field}[{index}]", "the same token or endpoint is listed twice")
        seen.add(item.address)
        out.append(item)
    return tuple(out)


def preference_columns(patch: PreferencesPatch, field: str, errors: Violations) -> dict[str, bool]:
    """The `pref_*` columns a preferences patch changes; at least one must be set."""
    if patch.is_empty():
        errors.add(field, "set at least one of email, sms, push")
    return {
        f"pref_{channel}": value
        for channel in CHANNELS
        if (value := getattr(patch, channel)) is not None
    }


def new_user(data: UserInput, clear_password: str, *, outbound: OutboundRule) -> NewUser:
    """A CreateUser request, validated; unset locale, time zone and channels get defaults."""
    errors = Violations()
    user = NewUser(
        name=name(data.name, "name", errors),
        email=email(data.email, "email", errors),
        phone=phone(data.phone, "phone", errors),
        locale=locale(data.locale, "locale", errors),
        time_zone=time_zone(data.time_zone, "time_zone", errors),
        preferences=data.preferences.apply(DEFAULT_PREFERENCES),
        push_targets=push_targets(data.push_targets, "push_targets", errors, outbound=outbound),
        password=password(clear_password, "password", errors),
    )
    errors.check()
    return user


def changes(
    data: UserInput, paths: Sequence[str], clear_password: str, *, outbound: OutboundRule
) -> UserChanges:
    """An UpdateUser request, validated: only the fields `paths` (the update mask) names."""
    errors = Violations()
    if not paths:
        errors.add("update_mask", "name at least one field to change")
    for path in paths:
        if path not in MASK_PATHS:
            errors.add("update_mask", f"unknown or read-only path {path[:64]!r}")
    masked = set(paths)
    columns: dict[str, object] = {}
    if "name" in masked:
        columns["name"] = name(data.name, "user.name", errors)
    if "email" in masked:
        columns["email"] = email(data.email, "user.email", errors)
    if "phone" in masked:
        columns["phone"] = phone(data.phone, "user.phone", errors)
    if "locale" in masked:
        columns["locale"] = locale(data.locale, "user.locale", errors)
    if "time_zone" in masked:
        columns["time_zone"] = time_zone(data.time_zone, "user.time_zone", errors)
    if "preferences" in masked:
        columns.update(preference_columns(data.preferences, "user.preferences", errors))
    for channel in CHANNELS:
        if f"preferences.{channel}" in masked:
            value = getattr(data.preferences, channel)
            if value is None:
                errors.add(f"user.preferences.{channel}", "named in update_mask but not set")
            columns[f"pref_{channel}"] = value
    targets = None
    if "push_targets" in masked:
        targets = push_targets(data.push_targets, "user.push_targets", errors, outbound=outbound)
    new_password = None
    if "password" in masked:
        new_password = password(clear_password, "password", errors)
    elif clear_password:
        errors.add("password", 'is set but "password" is not in update_mask')
    errors.check()
    return UserChanges(columns=columns, push_targets=targets, password=new_password)
