"""Validation of a NewSend, and the payload hash behind idempotency.

Every field is bounded (rules: `mesh.rules`); a bad send names each field at fault
(prefixed in batches, "requests[3].template_code"). The hash and the size limits are
taken over the send's herald.v1 SendRequest encoding, as they were before the domain took
dataclasses: the hashes of keys stored earlier still match, and a size limit means the
same number of bytes to a REST and a gRPC caller. That encoding is also what templated
renders (`variables`).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from google.protobuf import struct_pb2

from gateway.notifications.model import NewSend, Priority
from gateway.notifications.routing import CHANNELS_BY_NAME, MESSAGE_TYPES_BY_NAME
from herald.v1 import common_pb2, notification_pb2
from mesh import rules
from mesh.errors import FieldViolation, InvalidArgument


@dataclass(frozen=True)
class Limits:
    max_variables_bytes: int
    max_metadata_bytes: int


@dataclass(frozen=True)
class SendCommand:
    """A valid send, its encoding and what idempotency needs from it."""

    send: NewSend
    encoded: notification_pb2.SendRequest
    payload_hash: bytes

    @property
    def user_key(self) -> str:
        """The user id as userd is asked for it."""
        return str(self.send.user_id)


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


def encode(send: NewSend) -> notification_pb2.SendRequest:
    """The send as a herald.v1 SendRequest (see the module's docstring for why)."""
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
    )
    request.variables.update(send.variables)
    request.metadata.update(send.metadata)
    return request


def payload_hash(request: notification_pb2.SendRequest) -> bytes:
    """SHA-256 of the deterministic serialization (Struct keys sorted)."""
    return hashlib.sha256(request.SerializeToString(deterministic=True)).digest()


def validate_send(send: NewSend, *, limits: Limits, prefix: str = "") -> SendCommand:
    """The send as a command, or InvalidArgument naming every field at fault."""
    problems, encoded = _check(send, limits, prefix)
    if problems:
        raise InvalidArgument(problems)
    return SendCommand(send, encoded, payload_hash(encoded))


def violations(send: NewSend, *, limits: Limits, prefix: str = "") -> list[FieldViolation]:
    """Every field of `send` at fault (none: valid)."""
    return _check(send, limits, prefix)[0]


def _check(
    send: NewSend, limits: Limits, prefix: str
) -> tuple[list[FieldViolation], notification_pb2.SendRequest]:
    problems: list[FieldViolation] = []

    def bad(field: str, description: str) -> None:
        problems.append(FieldViolation(prefix + field, description))

    if send.channel not in rules.CHANNEL_NAMES:
        bad("channel", "must be email, sms or push")
    if not send.template_code:
        bad("template_code", "required")
    elif not rules.matches(rules.TEMPLATE_CODE, send.template_code, rules.MAX_TEMPLATE_CODE):
        bad("template_code", rules.TEMPLATE_CODE_RULE)
    if send.request_id and not rules.matches(
        rules.REQUEST_ID, send.request_id, rules.MAX_REQUEST_ID
    ):
        bad("request_id", rules.REQUEST_ID_RULE)
    if send.priority not in tuple(Priority):
        bad("priority", "unknown priority")
    if send.message_type not in rules.MESSAGE_TYPE_NAMES:
        bad("message_type", "unknown message type")
    if send.language and not rules.matches(rules.LANGUAGE, send.language, rules.MAX_LANGUAGE):
        bad("language", rules.LANGUAGE_RULE)
    if send.template_version < 0:
        bad("template_version", "must be 0 (active) or a version number")
    encoded = encode(send)
    if encoded.variables.ByteSize() > limits.max_variables_bytes:
        bad("variables", f"larger than {limits.max_variables_bytes} bytes")
    if encoded.metadata.ByteSize() > limits.max_metadata_bytes:
        bad("metadata", f"larger than {limits.max_metadata_bytes} bytes")
    elif problem := storable(encoded.metadata):
        bad("metadata", problem)
    return problems, encoded
