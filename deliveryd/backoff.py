"""When a transient failure is tried again: exponential backoff with jitter.

The delay comes from tenacity's `wait_exponential_jitter`: `base * 2^(attempt-1)` plus a
random jitter of up to half the base, capped at `maximum`. The jitter spreads retries of
many notifications that failed together; keeping it under the base keeps the delays of
one notification growing. The retry itself travels through RabbitMQ's delay queues
(published by the gateway's outbox), never as a sleep in the consumer.

The notification's deadline bounds both: no retry is scheduled past it, and a job
consumed after it is not sent at all (`deadline_passed`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tenacity import RetryCallState, wait_exponential_jitter

from herald.v1 import delivery_pb2

# The error of a hop not sent because the notification's deadline had passed.
DEADLINE_PASSED = "deadline passed"


def deadline_of(job: delivery_pb2.DeliveryJob) -> datetime | None:
    """The notification's deadline, or None when it has none."""
    if job.HasField("deadline") and job.deadline.seconds > 0:
        return job.deadline.ToDatetime(UTC)
    return None


def deadline_passed(job: delivery_pb2.DeliveryJob, now: datetime) -> bool:
    """Whether the job comes too late to be sent at all (`now` must be aware)."""
    deadline = deadline_of(job)
    return deadline is not None and now >= deadline


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of one hop on one channel."""

    max_attempts: int
    base: float
    maximum: float
    _wait: wait_exponential_jitter = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        wait = wait_exponential_jitter(initial=self.base, max=self.maximum, jitter=self.base / 2)
        object.__setattr__(self, "_wait", wait)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after try number `attempt` (1-based) failed."""
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = attempt
        return float(self._wait(state))

    def next_delay(self, job: delivery_pb2.DeliveryJob, now: datetime) -> float | None:
        """The delay before the job's next try, or None when the channel is used up.

        Used up means: `max_attempts` tries made, or the next one would start after the
        notification's deadline.
        """
        if job.attempt >= self.max_attempts:
            return None
        delay = self.delay(max(job.attempt, 1))
        if deadline_passed(job, now + timedelta(seconds=delay)):
            return None
        return delay
