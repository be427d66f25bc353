"""Who a job reaches right now: the user as userd knows them, or the job's snapshot.

Preferences and contact points may have changed since the notification was accepted, so
the worker reads the user again (userd serves it from its Redis cache) just before
sending. When userd cannot answer, the snapshot taken at acceptance stands in, and the
trail says so.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
import structlog

from deliveryd.clients import UserClient
from deliveryd.providers.base import Platform, PushDevice
from herald.v1 import common_pb2, delivery_pb2, user_pb2

log = structlog.get_logger(__name__)

PLATFORMS = {
    common_pb2.PUSH_PLATFORM_FCM: Platform.FCM,
    common_pb2.PUSH_PLATFORM_ONESIGNAL: Platform.ONESIGNAL,
    common_pb2.PUSH_PLATFORM_WEBPUSH: Platform.WEBPUSH,
}
CHANNEL_PREFERENCE = {
    common_pb2.CHANNEL_EMAIL: "email",
    common_pb2.CHANNEL_SMS: "sms",
    common_pb2.CHANNEL_PUSH: "push",
}


@dataclass(frozen=True)
class Audience:
    """The contact points and consent to use for one hop."""

    user_id: str
    email: str
    phone: str
    devices: tuple[PushDevice, ...]
    preferences: user_pb2.Preferences | None
    # "userd", or why the snapshot was used instead.
    source: str
    # False when the user no longer exists.
    exists: bool = True

    def allows(self, channel: common_pb2.Channel.ValueType) -> bool:
        """The user's consent for `channel`; an unset preference counts as yes."""
        field = CHANNEL_PREFERENCE.get(channel)
        prefs = self.preferences
        if prefs is None or field is None or not prefs.HasField(field):  # type: ignore[arg-type]
            return True
        return bool(getattr(prefs, field))


def devices(targets: list[user_pb2.PushTarget]) -> tuple[PushDevice, ...]:
    """The push targets Herald knows how to reach."""
    found = []
    for target in targets:
        platform = PLATFORMS.get(target.platform)
        if platform is None:
            continue
        found.append(
            PushDevice(
                id=target.id,
                platform=platform,
                token=target.token,
                endpoint=target.web_push.endpoint,
                p256dh=target.web_push.p256dh,
                auth=target.web_push.auth,
            )
        )
    return tuple(found)


def from_snapshot(recipient: delivery_pb2.Recipient, source: str) -> Audience:
    return Audience(
        user_id=recipient.user_id,
        email=recipient.email,
        phone=recipient.phone,
        devices=devices(list(recipient.push_targets)),
        preferences=None,
        source=source,
    )


async def resolve(
    *, users: UserClient, recipient: delivery_pb2.Recipient, timeout: float
) -> Audience:
    """The audience of a job: userd's current view, else the snapshot."""
    if not recipient.user_id:
        return from_snapshot(recipient, "snapshot: the job names no user")
    try:
        answer = await users.GetUser(user_pb2.GetUserRequest(id=recipient.user_id), timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return Audience(
                recipient.user_id, "", "", (), None, "userd: user deleted", exists=False
            )
        return from_snapshot(recipient, f"snapshot: userd unavailable ({exc.code().name})")
    user = answer.user
    return Audience(
        user_id=user.id or recipient.user_id,
        email=user.email,
        phone=user.phone,
        devices=devices(list(user.push_targets)),
        preferences=user.preferences,
        source="userd",
    )


def device_remover(
    users: UserClient, timeout: float
) -> Callable[[str, PushDevice], Awaitable[bool]]:
    """A function that removes a gone push target from its user through userd."""

    async def remove(user_id: str, device: PushDevice) -> bool:
        request = user_pb2.RemovePushTargetRequest(user_id=user_id)
        if device.id:
            request.target_id = device.id
        else:
            request.token = device.token or device.endpoint
        try:
            answer = await users.RemovePushTarget(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            log.warning("could not remove a gone push target", code=exc.code().name)
            return False
        log.info("removed a gone push target", user_id=user_id, device=device.label)
        return bool(answer.removed)

    return remove
