"""The DeliveryJob of a notification's first hop: what the accept pipeline publishes once
the row is stored (the recipient and content are snapshots, so workers need no lookups)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from gateway.notifications.validation import SendCommand
from herald.v1 import common_pb2, delivery_pb2, template_pb2, user_pb2


def first_job(
    notification_id: uuid.UUID,
    command: SendCommand,
    user: user_pb2.User,
    route: tuple[int, ...],
    rendered: template_pb2.RenderResponse,
    *,
    deadline: timedelta,
) -> delivery_pb2.DeliveryJob:
    """Hop 0 of the route: generation 1, attempt 1, recipient and content snapshots."""
    send = command.send
    now = datetime.now(UTC)
    job = delivery_pb2.DeliveryJob(
        notification_id=str(notification_id),
        channel=common_pb2.Channel.ValueType(route[0]),
        route=[common_pb2.Channel.ValueType(c) for c in route],
        route_index=0,
        attempt=1,
        generation=1,
        priority=command.encoded.priority,
        message_type=command.encoded.message_type,
        recipient=delivery_pb2.Recipient(
            user_id=command.user_key,
            email=user.email,
            phone=user.phone,
            push_targets=user.push_targets,
            locale=user.locale,
        ),
        content=rendered.content,
        template_code=send.template_code,
        template_version=rendered.version,
    )
    job.deadline.FromDatetime(now + deadline)
    job.create_time.FromDatetime(now)
    return job
