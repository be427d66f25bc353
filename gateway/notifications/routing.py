"""Route planning: which channels a notification may use, in which order.

The route is the requested channel, then the fallbacks the route policy names for the
message type (seed: email → SMS), keeping only the channels the user allows and has a
contact point for. A preference left unset counts as allowed (users opt out, the seed's
`{"email": true, "push": false}` sets both explicitly). When the requested channel is
not allowed but a fallback is, the route starts at the fallback. An empty route is not an
error: the notification is stored SUPPRESSED with the reason this module gives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from herald.v1 import common_pb2, user_pb2

# Channels and message types are plain ints here: their herald.v1 enum numbers.
CHANNEL_NAMES: dict[int, str] = {
    common_pb2.CHANNEL_EMAIL: "email",
    common_pb2.CHANNEL_SMS: "sms",
    common_pb2.CHANNEL_PUSH: "push",
}
CHANNELS_BY_NAME: dict[str, int] = {name: value for value, name in CHANNEL_NAMES.items()}
MESSAGE_TYPES_BY_NAME: dict[str, int] = {
    "transactional": common_pb2.MESSAGE_TYPE_TRANSACTIONAL,
    "alert": common_pb2.MESSAGE_TYPE_ALERT,
    "marketing": common_pb2.MESSAGE_TYPE_MARKETING,
}


@dataclass(frozen=True)
class RoutePolicy:
    """The channel order per message type (fallbacks after the requested channel)."""

    fallbacks: Mapping[int, tuple[int, ...]]

    @classmethod
    def from_names(cls, policy: Mapping[Any, Sequence[str]]) -> RoutePolicy:
        """From the settings' `{"transactional": ["email", "sms"], ...}`."""
        return cls(
            {
                MESSAGE_TYPES_BY_NAME[kind]: tuple(CHANNELS_BY_NAME[c] for c in channels)
                for kind, channels in policy.items()
            }
        )

    def candidates(self, requested: int, message_type: int) -> list[int]:
        """The requested channel first, then the type's fallbacks, each once."""
        order = [requested]
        for channel in self.fallbacks.get(message_type, ()):
            if channel not in order:
                order.append(channel)
        return order


@dataclass(frozen=True)
class Route:
    """The channels to try, in order; `reason` says why it is empty when it is."""

    channels: tuple[int, ...]
    reason: str = ""


def refusal(channel: int, user: user_pb2.User) -> str | None:
    """Why `user` cannot be reached on `channel` (None when it can)."""
    prefs = user.preferences
    if channel == common_pb2.CHANNEL_EMAIL:
        if prefs.HasField("email") and not prefs.email:
            return "preference off"
        return None if user.email else "no email address"
    if channel == common_pb2.CHANNEL_SMS:
        if prefs.HasField("sms") and not prefs.sms:
            return "preference off"
        return None if user.phone else "no phone number"
    if channel == common_pb2.CHANNEL_PUSH:
        if prefs.HasField("push") and not prefs.push:
            return "preference off"
        return None if user.push_targets else "no push target"
    return "unknown channel"


def plan_route(
    *, requested: int, message_type: int, user: user_pb2.User, policy: RoutePolicy
) -> Route:
    """The route of one notification for `user` under `policy`."""
    allowed: list[int] = []
    refused: list[str] = []
    for channel in policy.candidates(requested, message_type):
        why = refusal(channel, user)
        if why is None:
            allowed.append(channel)
        else:
            refused.append(f"{CHANNEL_NAMES.get(channel, str(channel))} ({why})")
    if allowed:
        return Route(tuple(allowed))
    return Route((), "user preferences and contact points allow none of: " + ", ".join(refused))
