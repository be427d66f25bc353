"""Protobuf ⇄ domain: requests into inputs, users into `herald.v1.User` (answers and cache)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from google.protobuf.timestamp_pb2 import Timestamp

from herald.v1 import common_pb2, user_pb2
from userd.models import (
    Platform,
    Preferences,
    PreferencesPatch,
    PushTarget,
    PushTargetInput,
    User,
    UserInput,
)

_PLATFORM_TO_PROTO = {
    Platform.FCM: common_pb2.PUSH_PLATFORM_FCM,
    Platform.ONESIGNAL: common_pb2.PUSH_PLATFORM_ONESIGNAL,
    Platform.WEBPUSH: common_pb2.PUSH_PLATFORM_WEBPUSH,
}
_PLATFORM_FROM_PROTO = {value: key for key, value in _PLATFORM_TO_PROTO.items()}


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _datetime(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def preferences_patch(message: user_pb2.Preferences) -> PreferencesPatch:
    """Only the channels the caller set (the fields are `optional`)."""
    return PreferencesPatch(
        email=message.email if message.HasField("email") else None,
        sms=message.sms if message.HasField("sms") else None,
        push=message.push if message.HasField("push") else None,
    )


def push_target_input(message: user_pb2.PushTarget) -> PushTargetInput:
    return PushTargetInput(
        platform=_PLATFORM_FROM_PROTO.get(message.platform),
        token=message.token,
        endpoint=message.web_push.endpoint,
        p256dh=message.web_push.p256dh,
        auth=message.web_push.auth,
        label=message.label,
        web_push=message.HasField("web_push"),
    )


def user_input(
    message: user_pb2.CreateUserRequest | user_pb2.User,
) -> UserInput:
    """The user fields of a CreateUserRequest or of UpdateUserRequest.user."""
    return UserInput(
        name=message.name,
        email=message.email,
        phone=message.phone,
        locale=message.locale,
        time_zone=message.time_zone,
        preferences=preferences_patch(message.preferences),
        push_targets=tuple(push_target_input(t) for t in message.push_targets),
        quiet_hours=(message.quiet_hours.start, message.quiet_hours.end)
        if message.HasField("quiet_hours")
        else None,
    )


def push_target_to_proto(target: PushTarget) -> user_pb2.PushTarget:
    message = user_pb2.PushTarget(
        id=str(target.id),
        platform=_PLATFORM_TO_PROTO[target.platform],
        label=target.label,
        create_time=_timestamp(target.create_time),
    )
    if target.platform is Platform.WEBPUSH:
        message.web_push.CopyFrom(
            user_pb2.WebPushSubscription(
                endpoint=target.address, p256dh=target.p256dh, auth=target.auth
            )
        )
    else:
        message.token = target.address
    return message


def user_to_proto(user: User) -> user_pb2.User:
    """The user as answers and the cache carry it (there is no password to leave out)."""
    message = user_pb2.User(
        id=str(user.id),
        name=user.name,
        email=user.email,
        phone=user.phone or "",
        push_targets=[push_target_to_proto(t) for t in user.push_targets],
        locale=user.locale,
        time_zone=user.time_zone,
        preferences=user_pb2.Preferences(
            email=user.preferences.email, sms=user.preferences.sms, push=user.preferences.push
        ),
        create_time=_timestamp(user.create_time),
        update_time=_timestamp(user.update_time),
    )
    if user.quiet_hours is not None:
        start, end = user.quiet_hours
        message.quiet_hours.CopyFrom(
            user_pb2.QuietHours(start=f"{start:%H:%M}", end=f"{end:%H:%M}")
        )
    return message


def user_from_proto(message: user_pb2.User, version: int) -> User:
    """A cached user back into the domain."""
    return User(
        id=UUID(message.id),
        name=message.name,
        email=message.email,
        phone=message.phone or None,
        locale=message.locale,
        time_zone=message.time_zone,
        preferences=Preferences(
            email=message.preferences.email,
            sms=message.preferences.sms,
            push=message.preferences.push,
        ),
        push_targets=tuple(
            PushTarget(
                id=UUID(t.id),
                platform=_PLATFORM_FROM_PROTO[t.platform],
                address=t.web_push.endpoint if t.HasField("web_push") else t.token,
                p256dh=t.web_push.p256dh,
                auth=t.web_push.auth,
                label=t.label,
                create_time=_datetime(t.create_time),
            )
            for t in message.push_targets
        ),
        version=version,
        create_time=_datetime(message.create_time),
        update_time=_datetime(message.update_time),
        quiet_hours=(
            datetime.strptime(message.quiet_hours.start, "%H:%M").time(),
            datetime.strptime(message.quiet_hours.end, "%H:%M").time(),
        )
        if message.HasField("quiet_hours")
        else None,
    )
