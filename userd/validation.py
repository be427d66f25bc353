"""Request validation: every field checked, normalised and bounded before anything is written.

Violations are collected rather than raised one at a time, so a caller learns about every
bad field at once. Field names are paths in the request ("email", "user.phone",
"push_targets[0].token"). Descriptions never repeat a contact point or a password.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import time
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

MAX_NAME = rules.MAX_USER_NAME
MAX_EMAIL_INPUT = 320
MAX_PHONE_INPUT = 32
MAX_LABEL = rules.MAX_LABEL
MAX_PUSH_TARGETS = rules.MAX_PUSH_TARGETS

CHANNELS = rules.CHANNEL_NAMES
MASK_PATHS = frozenset(
    {
        "name",
        "email",
        "phone",
        "locale",
        "time_zone",
        "preferences",
        "push_targets",
        "password",
        "quiet_hours",
    }
    | {f"preferences.{channel}" for channel in CHANNELS}
)


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
    """A trimmed string of at most `limit` characters without control, format or
    private-use characters (`rules.PRINTABLE`)."""
    text = value.strip()
    if required and not text:
        errors.add(field, "is required")
    elif len(text) > limit:
        errors.add(field, f"must be at most {limit} characters")
    elif not rules.matches(rules.PRINTABLE, text, limit):
        errors.add(field, rules.PRINTABLE_RULE)
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
    text = value.strip().replace("_", "-")
    if not text:
        return DEFAULT_LOCALE
    if not rules.matches(rules.LANGUAGE, text, rules.MAX_LANGUAGE):
        errors.add(field, 'must be a BCP 47 language tag such as "en" or "pt-BR"')
        return text
    return rules.canonical_language(text)


def time_zone(value: str, field: str, errors: Violations) -> str:
    """An IANA time zone name; empty means "UTC"."""
    text = value.strip()
    if not text:
        return DEFAULT_TIME_ZONE
    if text not in rules.time_zones():
        errors.add(field, 'must be an IANA time zone such as "UTC" or "America/Sao_Paulo"')
    return text


def password(value: str, field: str, errors: Violations) -> str:
    if len(value) < rules.MIN_PASSWORD:
        errors.add(field, f"must be at least {rules.MIN_PASSWORD} characters")
    elif len(value) > rules.MAX_PASSWORD:
        errors.add(field, f"must be at most {rules.MAX_PASSWORD} characters")
    return value


def _web_push_key(value: str, field: str, pattern: str, errors: Violations) -> str:
    """A base64url key of the size `pattern` says (`rules.WEB_PUSH_*`), stored unpadded."""
    if not rules.matches(pattern, value, rules.MAX_WEB_PUSH_KEY):
        errors.add(field, rules.PATTERN_RULES[pattern])
    return value.rstrip("=")


def endpoint(value: str, field: str, errors: Violations, *, outbound: OutboundRule) -> str:
    """A Web Push endpoint: an https URL of a public host (by syntax: no DNS here)."""
    text = value.strip()
    if len(text) > rules.MAX_WEB_PUSH_ENDPOINT:
        errors.add(
            field, f"must be an https URL of at most {rules.MAX_WEB_PUSH_ENDPOINT} characters"
        )
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
        p256dh = _web_push_key(target.p256dh, _join(sub, "p256dh"), rules.WEB_PUSH_P256DH, errors)
        auth = _web_push_key(target.auth, _join(sub, "auth"), rules.WEB_PUSH_AUTH, errors)
        return NewPushTarget(target.platform, url, p256dh, auth, label)
    if target.web_push:
        errors.add(_join(field, "web_push"), "is only for Web Push targets")
    token = target.token.strip()
    token_field = _join(field, "token")
    if not token:
        errors.add(token_field, "is required")
    elif len(token) > rules.MAX_PUSH_TOKEN:
        errors.add(token_field, f"must be at most {rules.MAX_PUSH_TOKEN} characters")
    elif target.platform is Platform.ONESIGNAL:
        try:
            token = str(UUID(token))
        except ValueError:
            errors.add(token_field, "must be a OneSignal subscription id (a UUID)")
    elif not rules.matches(rules.FCM_TOKEN, token, rules.MAX_PUSH_TOKEN):
        errors.add(token_field, rules.FCM_TOKEN_RULE)
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


_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def quiet_hours(
    value: tuple[str, str] | None, field: str, errors: Violations
) -> tuple[time, time] | None:
    """A quiet window as (start, end) times of day ("HH:MM"); None: unset."""
    if value is None:
        return None
    parsed: list[time] = []
    for part, text in zip(("start", "end"), value, strict=True):
        match = _CLOCK.match(text)
        if match is None:
            errors.add(f"{field}.{part}", "a time of day as HH:MM (00:00 to 23:59)")
        else:
            parsed.append(time(int(match[1]), int(match[2])))
    return (parsed[0], parsed[1]) if len(parsed) == 2 else None


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
        quiet_hours=quiet_hours(data.quiet_hours, "quiet_hours", errors),
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
    if "quiet_hours" in masked:
        window = quiet_hours(data.quiet_hours, "user.quiet_hours", errors)
        columns["quiet_start"] = window[0] if window else None
        columns["quiet_end"] = window[1] if window else None
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
