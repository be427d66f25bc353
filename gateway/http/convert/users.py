"""Users: JSON ⇄ herald.v1 UserService."""

from __future__ import annotations

from google.protobuf import field_mask_pb2

from gateway.http.convert.common import PLATFORM_NAMES, PLATFORMS, text, when
from gateway.http.schemas.users import (
    PreferencesIn,
    PreferencesOut,
    PushTargetIn,
    PushTargetOut,
    QuietHoursOut,
    UserCreate,
    UserOut,
    UserUpdate,
    WebPushOut,
    WebPushTarget,
)
from herald.v1 import common_pb2, user_pb2

# UpdateUser names fields under `user.`; the JSON body has them at the top.
RENAMES = {"user": ""}


def preferences(value: PreferencesIn) -> user_pb2.Preferences:
    """Only the channels given are set: the others keep their value."""
    return user_pb2.Preferences(**value.model_dump(exclude_none=True))


def push_target(value: PushTargetIn) -> user_pb2.PushTarget:
    target = user_pb2.PushTarget(platform=PLATFORMS[value.platform], label=value.label or "")
    if isinstance(value, WebPushTarget):
        target.web_push.CopyFrom(
            user_pb2.WebPushSubscription(
                endpoint=value.web_push.endpoint,
                p256dh=value.web_push.p256dh,
                auth=value.web_push.auth,
            )
        )
    else:
        target.token = str(value.token)
    return target


def create_request(body: UserCreate) -> user_pb2.CreateUserRequest:
    targets = [push_target(t) for t in body.push_targets]
    if body.push_token:
        targets.insert(
            0, user_pb2.PushTarget(platform=common_pb2.PUSH_PLATFORM_FCM, token=body.push_token)
        )
    request = user_pb2.CreateUserRequest(
        name=body.name,
        email=body.email,
        phone=body.phone or "",
        password=body.password,
        push_targets=targets,
        locale=body.locale or "",
        time_zone=body.time_zone or "",
    )
    if body.preferences is not None:
        request.preferences.CopyFrom(preferences(body.preferences))
    if body.quiet_hours is not None:
        request.quiet_hours.start = body.quiet_hours.start
        request.quiet_hours.end = body.quiet_hours.end
    return request


def update_request(user_id: str, body: UserUpdate) -> user_pb2.UpdateUserRequest:
    """A partial update: the mask lists exactly the fields the body carries."""
    user = user_pb2.User(id=user_id)
    paths: list[str] = []
    for field in ("name", "email", "phone", "locale", "time_zone"):
        if field in body.model_fields_set:
            setattr(user, field, getattr(body, field) or "")
            paths.append(field)
    if "preferences" in body.model_fields_set:
        user.preferences.CopyFrom(preferences(body.preferences))
        given = body.preferences.model_fields_set
        paths.extend(f"preferences.{channel}" for channel in sorted(given))
    if "quiet_hours" in body.model_fields_set:
        if body.quiet_hours is not None:
            user.quiet_hours.start = body.quiet_hours.start
            user.quiet_hours.end = body.quiet_hours.end
        paths.append("quiet_hours")
    if "password" in body.model_fields_set:
        paths.append("password")
    return user_pb2.UpdateUserRequest(
        user=user,
        update_mask=field_mask_pb2.FieldMask(paths=paths),
        password=body.password or "",
    )


def push_target_out(value: user_pb2.PushTarget) -> PushTargetOut:
    web_push = None
    if value.HasField("web_push"):
        web_push = WebPushOut(endpoint=value.web_push.endpoint, p256dh=value.web_push.p256dh)
    return PushTargetOut(
        id=value.id,
        platform=PLATFORM_NAMES.get(value.platform),
        token=text(value.token),
        web_push=web_push,
        label=text(value.label),
        created_at=when(value.create_time),
    )


def user(value: user_pb2.User) -> UserOut:
    prefs = value.preferences
    fcm = next(
        (t.token for t in value.push_targets if t.platform == common_pb2.PUSH_PLATFORM_FCM),
        None,
    )
    return UserOut(
        id=value.id,
        name=value.name,
        email=value.email,
        push_token=fcm or None,
        # An unset preference has no consent recorded: reported as false.
        preferences=PreferencesOut(
            email=prefs.HasField("email") and prefs.email,
            push=prefs.HasField("push") and prefs.push,
            sms=prefs.HasField("sms") and prefs.sms,
        ),
        phone=text(value.phone),
        locale=text(value.locale),
        time_zone=text(value.time_zone),
        push_targets=[push_target_out(t) for t in value.push_targets],
        created_at=when(value.create_time),
        updated_at=when(value.update_time),
        quiet_hours=QuietHoursOut(start=value.quiet_hours.start, end=value.quiet_hours.end)
        if value.HasField("quiet_hours")
        else None,
    )
