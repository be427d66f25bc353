"""GetNotification and ListNotifications."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import timestamp_pb2

from herald.v1 import common_pb2, delivery_pb2, notification_pb2, status_pb2
from mesh.interceptors import field_violations
from tests.gateway.core.helpers import CLIENT, fail_every_channel, send_request
from tests.gateway.core.peers import Peers


def stamp(value: datetime) -> timestamp_pb2.Timestamp:
    message = timestamp_pb2.Timestamp()
    message.FromDatetime(value)
    return message


async def test_get_answers_the_full_delivery_trail(notifications, statuses, peers: Peers) -> None:
    user = peers.users.add()
    sent = await notifications.Send(send_request(user.id), metadata=CLIENT)
    first = delivery_pb2.DeliveryAttempt(
        id=str(uuid.uuid4()),
        channel=common_pb2.CHANNEL_EMAIL,
        provider="sendgrid",
        outcome=delivery_pb2.ATTEMPT_OUTCOME_TRANSIENT_FAILURE,
        error="HTTP 503",
        attempt=1,
        generation=1,
        worker="host:1",
    )
    first.duration.FromMilliseconds(120)
    first.start_time.FromDatetime(datetime.now(UTC) - timedelta(seconds=2))
    second = delivery_pb2.DeliveryAttempt(
        id=str(uuid.uuid4()),
        channel=common_pb2.CHANNEL_EMAIL,
        provider="mailgun",
        outcome=delivery_pb2.ATTEMPT_OUTCOME_DELIVERED,
        provider_message_id="mg-42",
        attempt=2,
        generation=1,
        worker="host:1",
        detail="queued",
    )
    second.duration.FromMilliseconds(80)
    second.start_time.FromDatetime(datetime.now(UTC) - timedelta(seconds=1))
    # As a worker reports: the transient failure (a retry follows), then the delivery.
    for reported in (first, second):
        await statuses.ReportStatus(
            status_pb2.ReportStatusRequest(notification_id=sent.notification_id, attempt=reported)
        )

    got = (
        await notifications.GetNotification(
            notification_pb2.GetNotificationRequest(id=sent.notification_id)
        )
    ).notification

    assert got.status == common_pb2.NOTIFICATION_STATUS_DELIVERED
    assert (got.delivered_channel, got.delivered_provider, got.provider_message_id) == (
        common_pb2.CHANNEL_EMAIL,
        "mailgun",
        "mg-42",
    )
    assert [a.provider for a in got.attempts] == ["sendgrid", "mailgun"]
    assert got.attempts[0].error == "HTTP 503"
    trail = got.attempts[1]
    assert trail.outcome == delivery_pb2.ATTEMPT_OUTCOME_DELIVERED
    assert trail.duration.ToMilliseconds() == 80
    assert trail.start_time == second.start_time
    assert (trail.worker, trail.detail, trail.notification_id) == (
        "host:1",
        "queued",
        sent.notification_id,
    )
    assert got.create_time.seconds <= got.update_time.seconds


async def test_trail_is_ordered_by_start_time(notifications, statuses, peers: Peers) -> None:
    user = peers.users.add()
    sent = await notifications.Send(send_request(user.id), metadata=CLIENT)
    now = datetime.now(UTC)
    ids = []
    for offset, provider in ((-1, "later"), (-3, "earlier")):
        note = delivery_pb2.DeliveryAttempt(
            id=str(uuid.uuid4()),
            channel=common_pb2.CHANNEL_EMAIL,
            provider=provider,
            outcome=delivery_pb2.ATTEMPT_OUTCOME_TRANSIENT_FAILURE,
            start_time=stamp(now + timedelta(seconds=offset)),
        )
        ids.append(note.id)
        await statuses.ReportStatus(
            status_pb2.ReportStatusRequest(
                notification_id=sent.notification_id,
                status=common_pb2.NOTIFICATION_STATUS_PENDING,
                attempt=note,
            )
        )
    got = (
        await notifications.GetNotification(
            notification_pb2.GetNotificationRequest(id=sent.notification_id)
        )
    ).notification
    assert [a.provider for a in got.attempts] == ["earlier", "later"]


async def test_get_of_unknown_or_malformed_ids(notifications) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notifications.GetNotification(
            notification_pb2.GetNotificationRequest(id=str(uuid.uuid4()))
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notifications.GetNotification(notification_pb2.GetNotificationRequest(id="x"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(caught.value)] == ["id"]


async def test_list_by_user_status_and_time_paged(notifications, statuses, peers: Peers) -> None:
    user = peers.users.add()
    before = datetime.now(UTC) - timedelta(seconds=1)
    ids = []
    for _ in range(5):
        sent = await notifications.Send(send_request(user.id), metadata=CLIENT)
        ids.append(sent.notification_id)
    await fail_every_channel(notifications, statuses, ids[1])
    await notifications.Send(send_request(peers.users.add().id), metadata=CLIENT)  # someone else

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await notifications.ListNotifications(
            notification_pb2.ListNotificationsRequest(
                user_id=user.id, page_size=2, page_token=token
            )
        )
        pages += 1
        seen += [n.id for n in page.notifications]
        assert all(not n.attempts for n in page.notifications)
        token = page.next_page_token
        if not token:
            break
    assert pages == 3
    assert seen == list(reversed(ids))  # newest first

    failed = await notifications.ListNotifications(
        notification_pb2.ListNotificationsRequest(
            user_id=user.id, status=common_pb2.NOTIFICATION_STATUS_FAILED
        )
    )
    assert [n.id for n in failed.notifications] == [ids[1]]

    window = await notifications.ListNotifications(
        notification_pb2.ListNotificationsRequest(
            user_id=user.id,
            start_time=stamp(before),
            end_time=stamp(datetime.now(UTC) + timedelta(seconds=5)),
        )
    )
    assert len(window.notifications) == 5
    future = await notifications.ListNotifications(
        notification_pb2.ListNotificationsRequest(
            user_id=user.id, start_time=stamp(datetime.now(UTC) + timedelta(hours=1))
        )
    )
    assert list(future.notifications) == []


async def test_list_refuses_bad_filters(notifications) -> None:
    for request, field in (
        (notification_pb2.ListNotificationsRequest(user_id="nope"), "user_id"),
        (notification_pb2.ListNotificationsRequest(page_token="garbage!"), "page_token"),
        (notification_pb2.ListNotificationsRequest(page_size=-1), "page_size"),
        (notification_pb2.ListNotificationsRequest(status=9), "status"),  # type: ignore[arg-type]
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await notifications.ListNotifications(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [f for f, _ in field_violations(caught.value)] == [field]
