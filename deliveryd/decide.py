"""What a hop's result means for the notification: delivered, retry, next channel, or final.

- delivered → DELIVERED;
- transient failure with tries and time left → PENDING with the same hop, attempt + 1,
  after the backoff delay;
- channel used up (retries spent, permanent failure, no contact point, preference off) and
  the route has a next channel → PENDING with the next channel's first attempt;
- nothing left → FAILED with the last real error, or SUPPRESSED when every channel left
  was skipped only because the user's current choices forbid it.

The gateway records the next hop and publishes it through its outbox; the worker only
reports. `last_error` carries the last real error across channels, for the final status
and the admin alert.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from deliveryd.backoff import RetryPolicy, deadline_passed
from deliveryd.chain import Outcome
from deliveryd.channels import CHANNEL_NAMES, HopResult
from herald.v1 import common_pb2, delivery_pb2

# Marks a `last_error` that is a suppression, not a failure.
SUPPRESSED_PREFIX = "suppressed: "


@dataclass(frozen=True)
class Decision:
    status: common_pb2.NotificationStatus.ValueType
    error: str = ""
    next_job: delivery_pb2.DeliveryJob | None = None
    next_delay: float = 0.0
    # Why, for the attempt's detail.
    note: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == common_pb2.NOTIFICATION_STATUS_FAILED


def is_critical(job: delivery_pb2.DeliveryJob) -> bool:
    """Alerts and high priorities page an admin when they fail."""
    return (
        job.message_type == common_pb2.MESSAGE_TYPE_ALERT
        or job.priority >= common_pb2.PRIORITY_HIGH
    )


def _next(job: delivery_pb2.DeliveryJob, **changes: Any) -> delivery_pb2.DeliveryJob:
    copy = delivery_pb2.DeliveryJob()
    copy.CopyFrom(job)
    for name, value in changes.items():
        setattr(copy, name, value)
    return copy


def decide(
    *, job: delivery_pb2.DeliveryJob, hop: HopResult, policy: RetryPolicy, now: datetime
) -> Decision:
    """The report to make for `hop`."""
    if hop.outcome is Outcome.DELIVERED:
        return Decision(common_pb2.NOTIFICATION_STATUS_DELIVERED)

    reason = hop.error
    if hop.outcome is Outcome.TRANSIENT:
        delay = policy.next_delay(job, now)
        if delay is not None:
            retry = _next(job, attempt=job.attempt + 1, last_error=hop.error)
            return Decision(
                common_pb2.NOTIFICATION_STATUS_PENDING,
                error=hop.error,
                next_job=retry,
                next_delay=delay,
                note={"retry_in_seconds": round(delay, 3), "next_attempt": retry.attempt},
            )
        reason = f"{hop.error} (gave up after {job.attempt} tries)"

    carried = reason
    if hop.suppressed:
        earlier = job.last_error
        has_real_error = bool(earlier) and not earlier.startswith(SUPPRESSED_PREFIX)
        carried = earlier if has_real_error else SUPPRESSED_PREFIX + reason

    index = job.route_index + 1
    # Past the notification's deadline no channel is worth trying: the route ends here.
    if index < len(job.route) and not deadline_passed(job, now):
        channel = job.route[index]
        moved = _next(job, channel=channel, route_index=index, attempt=1, last_error=carried)
        return Decision(
            common_pb2.NOTIFICATION_STATUS_PENDING,
            error=reason,
            next_job=moved,
            note={"next_channel": CHANNEL_NAMES.get(channel, str(channel))},
        )

    if carried.startswith(SUPPRESSED_PREFIX):
        return Decision(
            common_pb2.NOTIFICATION_STATUS_SUPPRESSED,
            error=carried.removeprefix(SUPPRESSED_PREFIX),
            note={"final": "suppressed"},
        )
    return Decision(common_pb2.NOTIFICATION_STATUS_FAILED, error=carried, note={"final": "failed"})
