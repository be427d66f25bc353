"""A notification's deadline, as the worker checks it before sending.

A job consumed after its deadline is not sent at all: the worker reports the hop skipped
("deadline passed") and the gateway's lifecycle ends the route there.
"""

from __future__ import annotations

from datetime import UTC, datetime

from herald.v1 import delivery_pb2

# The error of a hop not sent because the notification's deadline had passed.
DEADLINE_PASSED = "deadline passed"


def deadline_passed(job: delivery_pb2.DeliveryJob, now: datetime) -> bool:
    """Whether the job comes too late to be sent at all (`now` must be aware)."""
    if not job.HasField("deadline") or job.deadline.seconds <= 0:
        return False
    return now >= job.deadline.ToDatetime(UTC)
