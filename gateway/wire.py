"""The herald.v1 enum numbers the gateway's domain carries as opaque ints.

The stored `channel`, `route` and `message_type` columns hold these numbers, and so do the
delivery jobs; the domain compares and stores them but learns which is which only here.
"""

from __future__ import annotations

from herald.v1 import common_pb2

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
MESSAGE_TYPE_NAMES: dict[int, str] = {v: k for k, v in MESSAGE_TYPES_BY_NAME.items()}
