"""A status callback's body: made from the recorded event alone, so every attempt to post
one event sends the same bytes (and the same `webhook-id`, the event's id).

    {"id": "<event id>", "type": "notification.status", "notification_id": "…",
     "request_id": "signup-42", "status": "delivered", "previous_status": "sent",
     "channel": "email", "provider": "sendgrid", "reason": null,
     "time": "2026-12-07T10:00:00.123456Z", "metadata": {…}}
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import orjson

from gateway.store.callbacks import Event
from gateway.wire import CHANNEL_NAMES

EVENT_TYPE = "notification.status"
# Which status changes an endpoint may ask for.
EVENT_KINDS = ("all", "final")


def payload(event: Event) -> dict[str, Any]:
    return {
        "id": str(event.id),
        "type": EVENT_TYPE,
        "notification_id": str(event.notification_id),
        "request_id": event.request_id or None,
        "status": event.status,
        "previous_status": event.previous_status,
        "channel": CHANNEL_NAMES.get(event.channel),
        "provider": event.provider or None,
        "reason": event.reason or None,
        "time": event.occur_time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "metadata": event.metadata,
    }


def body(event: Event) -> bytes:
    return orjson.dumps(payload(event))
