"""Reports the tests send as a delivery worker would."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from herald.v1 import delivery_pb2, status_pb2


def failing_every_channel(
    notification_id: str, route: Iterable[int]
) -> list[status_pb2.ReportStatusRequest]:
    """A permanent failure of each channel of the route in turn (generation 1, attempt 1):
    sent one after the other, they make the notification `failed`."""
    return [
        status_pb2.ReportStatusRequest(
            notification_id=notification_id,
            attempt=delivery_pb2.DeliveryAttempt(
                id=str(uuid.uuid4()),
                channel=channel,  # type: ignore[arg-type]
                provider="test",
                outcome=delivery_pb2.ATTEMPT_OUTCOME_PERMANENT_FAILURE,
                error="every provider refused",
                attempt=1,
                generation=1,
            ),
        )
        for channel in route
    ]
