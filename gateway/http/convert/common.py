"""Protobuf ⇄ JSON pieces every route uses: enum spellings, times, Structs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2

from gateway.wire import CHANNELS_BY_NAME, MESSAGE_TYPES_BY_NAME, STATUS_NUMBERS
from herald.v1 import common_pb2

CHANNELS = CHANNELS_BY_NAME
STATUSES = STATUS_NUMBERS
PRIORITIES: Mapping[int, common_pb2.Priority.ValueType] = {
    1: common_pb2.PRIORITY_LOW,
    2: common_pb2.PRIORITY_NORMAL,
    3: common_pb2.PRIORITY_HIGH,
    4: common_pb2.PRIORITY_CRITICAL,
}
MESSAGE_TYPES = MESSAGE_TYPES_BY_NAME
PLATFORMS: Mapping[str, common_pb2.PushPlatform.ValueType] = {
    "fcm": common_pb2.PUSH_PLATFORM_FCM,
    "onesignal": common_pb2.PUSH_PLATFORM_ONESIGNAL,
    "webpush": common_pb2.PUSH_PLATFORM_WEBPUSH,
}


def reverse(mapping: Mapping[Any, Any]) -> dict[int, Any]:
    """Enum number → JSON spelling (typed Any: the JSON side is a Literal)."""
    return {int(v): k for k, v in mapping.items()}


CHANNEL_NAMES = reverse(CHANNELS)
STATUS_NAMES = reverse(STATUSES)
PRIORITY_NUMBERS = reverse(PRIORITIES)
MESSAGE_TYPE_NAMES = reverse(MESSAGE_TYPES)
PLATFORM_NAMES = reverse(PLATFORMS)


class BadAnswer(Exception):
    """A service answered something the edge cannot represent (a service bug)."""


def status_name(value: int) -> Any:
    """The JSON spelling of a NotificationStatus; BadAnswer for UNSPECIFIED."""
    try:
        return STATUS_NAMES[value]
    except KeyError:
        raise BadAnswer(f"unknown notification status {value}") from None


def when(ts: timestamp_pb2.Timestamp) -> datetime | None:
    """A Timestamp as an aware datetime; None when unset (zero)."""
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime(tzinfo=UTC)


def struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(value)
    return out


def plain_numbers(value: Any) -> Any:
    """Struct numbers are doubles: give integral ones back as integers (1, not 1.0)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: plain_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_numbers(v) for v in value]
    return value


def text(value: str) -> str | None:
    """Proto3 strings are never unset: empty means absent in JSON."""
    return value or None
