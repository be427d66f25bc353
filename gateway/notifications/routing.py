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

from gateway.notifications.model import Recipient
from gateway.wire import CHANNEL_NAMES, CHANNELS_BY_NAME, MESSAGE_TYPES_BY_NAME

# Channels and message types are opaque ints here (their stored numbers: `gateway.wire`).


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


def refusal(channel: int, user: Recipient) -> str | None:
    """Why `user` cannot be reached on `channel` (None when it can)."""
    name = CHANNEL_NAMES.get(channel)
    if name is None:
        return "unknown channel"
    if not user.preferences.get(name, True):
        return "preference off"
    if name == "email":
        return None if user.email else "no email address"
    if name == "sms":
        return None if user.phone else "no phone number"
    return None if user.push_targets else "no push target"


def plan_route(*, requested: int, message_type: int, user: Recipient, policy: RoutePolicy) -> Route:
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
