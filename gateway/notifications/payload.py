"""A send in its herald.v1 SendRequest encoding: the payload hash behind idempotency, the
sizes the limits bound, and the variables and metadata as templated and the row take them.

The hash is SHA-256 of the deterministic serialization (Struct keys sorted), as it was
before the domain took dataclasses: stored idempotency keys hold it, so it must not change
for the same send. The size limits are taken over the same encoding, so a limit means the
same number of bytes to a REST and a gRPC caller.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from google.protobuf import json_format, struct_pb2

from gateway.notifications.model import NewSend
from gateway.wire import CHANNELS_BY_NAME, MESSAGE_TYPES_BY_NAME
from herald.v1 import common_pb2, notification_pb2

# The caller's quiet hours choice as herald.v1.QuietHoursPolicy (unset: not in the hash).
QUIET_CHOICES: dict[str, notification_pb2.QuietHoursPolicy.ValueType] = {
    "": notification_pb2.QUIET_HOURS_POLICY_UNSPECIFIED,
    "respect": notification_pb2.QUIET_HOURS_POLICY_RESPECT,
    "bypass": notification_pb2.QUIET_HOURS_POLICY_BYPASS,
}


@dataclass(frozen=True)
class EncodedSend:
    """What the domain needs of a send's encoding (the encoding itself stays here)."""

    request: notification_pb2.SendRequest
    payload_hash: bytes

    @cached_property
    def variables(self) -> bytes:
        """The variables' deterministic encoding: equal bytes, equal variables (a
        rendering's identity), and what the render request carries."""
        return self.request.variables.SerializeToString(deterministic=True)

    @property
    def variables_size(self) -> int:
        return self.request.variables.ByteSize()

    @property
    def metadata_size(self) -> int:
        return self.request.metadata.ByteSize()

    def metadata_problem(self) -> str:
        """Why the metadata cannot be stored as JSON (jsonb), or "" when it can."""
        return storable(self.request.metadata)

    def metadata_json(self) -> dict[str, Any]:
        """The metadata as the row stores it (numbers as the Struct holds them: doubles)."""
        return json_format.MessageToDict(self.request.metadata)


def encode(send: NewSend) -> EncodedSend:
    """The send as a herald.v1 SendRequest, and its payload hash."""
    request = notification_pb2.SendRequest(
        user_id=str(send.user_id),
        channel=common_pb2.Channel.ValueType(CHANNELS_BY_NAME.get(send.channel, 0)),
        template_code=send.template_code,
        request_id=send.request_id,
        priority=common_pb2.Priority.ValueType(int(send.priority)),
        message_type=common_pb2.MessageType.ValueType(
            MESSAGE_TYPES_BY_NAME.get(send.message_type, 0)
        ),
        language=send.language,
        template_version=send.template_version,
        quiet_hours=QUIET_CHOICES[send.quiet_hours],
    )
    if send.send_at is not None:
        request.send_at.FromDatetime(send.send_at)
    request.variables.update(send.variables)
    request.metadata.update(send.metadata)
    return EncodedSend(
        request, hashlib.sha256(request.SerializeToString(deterministic=True)).digest()
    )


def storable(value: struct_pb2.Value | struct_pb2.Struct) -> str:
    """Why a metadata value cannot be stored as JSON (jsonb), or "" when it can."""
    if isinstance(value, struct_pb2.Struct):
        for key, item in value.fields.items():
            if "\x00" in key:
                return "keys must not contain NUL characters"
            if problem := storable(item):
                return problem
        return ""
    kind = value.WhichOneof("kind")
    if kind == "number_value" and not math.isfinite(value.number_value):
        return "numbers must be finite (no NaN or Infinity)"
    if kind == "string_value" and "\x00" in value.string_value:
        return "strings must not contain NUL characters"
    if kind == "struct_value":
        return storable(value.struct_value)
    if kind == "list_value":
        return next((p for v in value.list_value.values if (p := storable(v))), "")
    return ""
