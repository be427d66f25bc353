"""Validation of SendRequest, and the payload hash behind idempotency.

Every field is bounded; a bad request names each field at fault (prefixed in batches,
"requests[3].user_id"). Unset priority means NORMAL and unset message type
TRANSACTIONAL; the payload hash is taken over the normalized request, so a request that
spells a default out and one that leaves it unset are the same payload.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from uuid import UUID

from google.protobuf import struct_pb2

from herald.v1 import common_pb2, notification_pb2
from mesh.errors import FieldViolation, InvalidArgument

REQUEST_ID = re.compile(r"^[\x20-\x7e]{1,128}$")
TEMPLATE_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./:-]{0,199}$")
LANGUAGE = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8}){0,3}$")
CHANNELS = (common_pb2.CHANNEL_EMAIL, common_pb2.CHANNEL_SMS, common_pb2.CHANNEL_PUSH)
PRIORITIES = frozenset(common_pb2.Priority.values()) - {common_pb2.PRIORITY_UNSPECIFIED}
MESSAGE_TYPES = frozenset(common_pb2.MessageType.values()) - {common_pb2.MESSAGE_TYPE_UNSPECIFIED}


@dataclass(frozen=True)
class Limits:
    max_variables_bytes: int
    max_metadata_bytes: int


@dataclass(frozen=True)
class SendCommand:
    """A valid, normalized SendRequest and what idempotency needs from it."""

    request: notification_pb2.SendRequest
    user_id: UUID
    payload_hash: bytes


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


def payload_hash(request: notification_pb2.SendRequest) -> bytes:
    """SHA-256 of the deterministic serialization (Struct keys sorted)."""
    return hashlib.sha256(request.SerializeToString(deterministic=True)).digest()


def validate_send(
    request: notification_pb2.SendRequest, *, limits: Limits, prefix: str = ""
) -> SendCommand:
    """The request as a command, or InvalidArgument naming every field at fault."""
    problems: list[FieldViolation] = []

    def bad(field: str, description: str) -> None:
        problems.append(FieldViolation(prefix + field, description))

    user_id: UUID | None = None
    if not request.user_id:
        bad("user_id", "required")
    else:
        try:
            user_id = UUID(request.user_id)
        except ValueError:
            bad("user_id", "not a UUID")
    if request.channel not in CHANNELS:
        bad("channel", "must be email, sms or push")
    if not request.template_code:
        bad("template_code", "required")
    elif not TEMPLATE_CODE.match(request.template_code):
        bad("template_code", "1-200 letters, digits and _ . / : -, starting with a letter or digit")
    if request.request_id and not REQUEST_ID.match(request.request_id):
        bad("request_id", "at most 128 printable ASCII characters")
    if request.priority and request.priority not in PRIORITIES:
        bad("priority", "unknown priority")
    if request.message_type and request.message_type not in MESSAGE_TYPES:
        bad("message_type", "unknown message type")
    if request.language and not LANGUAGE.match(request.language):
        bad("language", "not a BCP 47 language tag")
    if request.template_version < 0:
        bad("template_version", "must be 0 (active) or a version number")
    if request.variables.ByteSize() > limits.max_variables_bytes:
        bad("variables", f"larger than {limits.max_variables_bytes} bytes")
    if request.metadata.ByteSize() > limits.max_metadata_bytes:
        bad("metadata", f"larger than {limits.max_metadata_bytes} bytes")
    elif problem := storable(request.metadata):
        bad("metadata", problem)
    if problems or user_id is None:
        raise InvalidArgument(problems)

    normalized = notification_pb2.SendRequest()
    normalized.CopyFrom(request)
    normalized.priority = request.priority or common_pb2.PRIORITY_NORMAL
    normalized.message_type = request.message_type or common_pb2.MESSAGE_TYPE_TRANSACTIONAL
    return SendCommand(normalized, user_id, payload_hash(normalized))
