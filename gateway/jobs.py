"""The delivery job on the queue (`herald.v1.DeliveryJob`): built, read and rebuilt.

The protobuf adapter between the gateway's domain and the workers. The first hop's job
snapshots the recipient and the rendered content, so workers need no lookups. A
notification's row keeps its current hop's job; the lifecycle decides over a `Position`
read from the row and that job (deadline, the carried error), and the next hop's job (a
retry, the next channel, a manual retry) and a failed notification's dead letter are the
stored job with the hop's fields moved, so recipient and content stay what was accepted.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import cast

from gateway.lifecycle import NextHop, Position
from gateway.notifications.model import Recipient, Rendered
from gateway.notifications.validation import SendCommand
from gateway.store.hops import HopState
from gateway.wire import CHANNELS_BY_NAME
from herald.v1 import common_pb2, delivery_pb2, template_pb2, user_pb2

# The job as the domain passes it around, without reading it (only this module does).
Job = delivery_pb2.DeliveryJob


def first_job(
    notification_id: uuid.UUID,
    command: SendCommand,
    user: Recipient,
    route: tuple[int, ...],
    rendered: Rendered,
    *,
    deadline: timedelta,
    correlation_id: str,
    start: datetime | None = None,
) -> bytes:
    """Hop 0 of the route, as the row stores it: generation 1, attempt 1, recipient and
    content snapshots (the push targets and content as userd and templated gave them).
    The deadline counts from `start` (a scheduled notification's due time), else now."""
    send = command.send
    encoded = command.encoded.request
    now = datetime.now(UTC)
    job = delivery_pb2.DeliveryJob(
        notification_id=str(notification_id),
        channel=common_pb2.Channel.ValueType(route[0]),
        route=[common_pb2.Channel.ValueType(c) for c in route],
        route_index=0,
        attempt=1,
        generation=1,
        priority=encoded.priority,
        message_type=encoded.message_type,
        recipient=delivery_pb2.Recipient(
            user_id=command.user_key,
            email=user.email,
            phone=user.phone,
            push_targets=cast(tuple[user_pb2.PushTarget, ...], user.push_targets),
            locale=user.locale,
        ),
        content=cast(template_pb2.LocalizedContent, rendered.content),
        template_code=send.template_code,
        template_version=rendered.version,
        correlation_id=correlation_id,
    )
    job.deadline.FromDatetime(max(start or now, now) + deadline)
    job.create_time.FromDatetime(now)
    return job.SerializeToString()


@dataclass(frozen=True)
class SentContent:
    """What a notification's job carries to the workers, as plain values: the recipient's
    contact points and the rendered parts of every channel of its route ("" when none)."""

    email: str = ""
    phone: str = ""
    language: str = ""
    subject: str = ""
    html: str = ""
    text: str = ""
    sms: str = ""
    push_title: str = ""
    push_body: str = ""
    push_data: dict[str, str] = field(default_factory=dict)


def sent_content(stored: bytes) -> SentContent:
    """The recipient and rendered parts of a stored job."""
    job = read(stored)
    content = job.content
    return SentContent(
        email=job.recipient.email,
        phone=job.recipient.phone,
        language=content.language,
        subject=content.email.subject,
        html=content.email.html_body,
        text=content.email.text_body,
        sms=content.sms.text,
        push_title=content.push.title,
        push_body=content.push.body,
        push_data=dict(content.push.data),
    )


def read(job: bytes) -> Job:
    """A job as a row stores it."""
    return delivery_pb2.DeliveryJob.FromString(job)


def stored_job(state: HopState) -> Job:
    """The current hop's job (an empty one for a notification that never had one)."""
    return delivery_pb2.DeliveryJob.FromString(state.job or b"")


def position(state: HopState, job: delivery_pb2.DeliveryJob) -> Position:
    deadline = None
    if job.HasField("deadline") and job.deadline.seconds > 0:
        deadline = job.deadline.ToDatetime(UTC)
    return Position(
        id=state.id,
        status=state.status,
        generation=state.generation,
        route=state.route,
        route_index=state.route_index,
        channel=state.hop_channel,
        attempt=state.attempt,
        deadline=deadline,
        last_error=job.last_error,
    )


def next_job(
    job: delivery_pb2.DeliveryJob,
    hop: NextHop,
    *,
    generation: int,
    last_error: str,
    deadline: timedelta | None = None,
) -> delivery_pb2.DeliveryJob:
    """The stored job moved to `hop`; `deadline` restarts the clock (a manual retry)."""
    moved = delivery_pb2.DeliveryJob()
    moved.CopyFrom(job)
    moved.generation, moved.route_index, moved.attempt = generation, hop.route_index, hop.attempt
    moved.channel = common_pb2.Channel.ValueType(hop.channel)
    if last_error:
        moved.last_error = last_error
    else:
        moved.ClearField("last_error")
    if deadline is not None:
        moved.deadline.FromDatetime(datetime.now(UTC) + deadline)
    return moved


def dead_letter(
    job: delivery_pb2.DeliveryJob, notification_id: str, reason: str
) -> delivery_pb2.DeliveryJob:
    """A failed notification's last job, for failed.queue and the admin alert."""
    dead = delivery_pb2.DeliveryJob()
    dead.CopyFrom(job)
    dead.notification_id = dead.notification_id or notification_id
    dead.last_error = reason
    return dead


def contact_of(job: Job, channel: int) -> str:
    """The contact point the job's recipient is reached at on `channel` ("" for push,
    whose targets are devices, or when the recipient has none)."""
    if channel == CHANNELS_BY_NAME["email"]:
        return str(job.recipient.email)
    if channel == CHANNELS_BY_NAME["sms"]:
        return str(job.recipient.phone)
    return ""
