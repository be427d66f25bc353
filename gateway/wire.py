"""The herald.v1 enum numbers the gateway's domain carries as opaque ints, and the
names the domain and the REST edge spell them with: written once, here.

The stored `channel`, `route` and `message_type` columns hold these numbers, and so do the
delivery jobs; the domain compares and stores them but learns which is which only here.
"""

from __future__ import annotations

from herald.v1 import common_pb2, delivery_pb2

CHANNELS_BY_NAME: dict[str, common_pb2.Channel.ValueType] = {
    "email": common_pb2.CHANNEL_EMAIL,
    "sms": common_pb2.CHANNEL_SMS,
    "push": common_pb2.CHANNEL_PUSH,
}
CHANNEL_NAMES: dict[int, str] = {value: name for name, value in CHANNELS_BY_NAME.items()}
MESSAGE_TYPES_BY_NAME: dict[str, common_pb2.MessageType.ValueType] = {
    "transactional": common_pb2.MESSAGE_TYPE_TRANSACTIONAL,
    "alert": common_pb2.MESSAGE_TYPE_ALERT,
    "marketing": common_pb2.MESSAGE_TYPE_MARKETING,
}
MESSAGE_TYPE_NAMES: dict[int, str] = {v: k for k, v in MESSAGE_TYPES_BY_NAME.items()}
# Statuses as the domain names them and as herald.v1.NotificationStatus numbers.
STATUS_NUMBERS: dict[str, common_pb2.NotificationStatus.ValueType] = {
    "pending": common_pb2.NOTIFICATION_STATUS_PENDING,
    "delivered": common_pb2.NOTIFICATION_STATUS_DELIVERED,
    "failed": common_pb2.NOTIFICATION_STATUS_FAILED,
    "suppressed": common_pb2.NOTIFICATION_STATUS_SUPPRESSED,
    "sent": common_pb2.NOTIFICATION_STATUS_SENT,
    "scheduled": common_pb2.NOTIFICATION_STATUS_SCHEDULED,
    "cancelled": common_pb2.NOTIFICATION_STATUS_CANCELLED,
}
STATUS_NAMES: dict[int, str] = {number: name for name, number in STATUS_NUMBERS.items()}
# The trail's marks of time-aware delivery (attempt outcomes no worker reports).
HELD = delivery_pb2.ATTEMPT_OUTCOME_HELD
RELEASED = delivery_pb2.ATTEMPT_OUTCOME_RELEASED
CANCELLED = delivery_pb2.ATTEMPT_OUTCOME_CANCELLED
CAPPED = delivery_pb2.ATTEMPT_OUTCOME_CAPPED
# What a delivery attempt came to (herald.v1.AttemptOutcome), as the trail stores it.
OUTCOME_NUMBERS: dict[str, delivery_pb2.AttemptOutcome.ValueType] = {
    "delivered": delivery_pb2.ATTEMPT_OUTCOME_DELIVERED,
    "transient": delivery_pb2.ATTEMPT_OUTCOME_TRANSIENT_FAILURE,
    "permanent": delivery_pb2.ATTEMPT_OUTCOME_PERMANENT_FAILURE,
    "skipped": delivery_pb2.ATTEMPT_OUTCOME_SKIPPED,
    "reported": delivery_pb2.ATTEMPT_OUTCOME_REPORTED,
}
OUTCOME_NAMES: dict[int, str] = {number: name for name, number in OUTCOME_NUMBERS.items()}
