"""NotificationService.Send through the real gateway process, PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
import json
import uuid

import grpc
import pytest

from herald.v1 import common_pb2, notification_pb2
from mesh import amqp
from mesh.interceptors import CLIENT_HEADER, field_violations
from tests.gateway.core.conftest import GRACE_SECONDS
from tests.gateway.core.helpers import CLIENT, Queues, send_request, struct
from tests.gateway.core.peers import Peers
from tests.support.metrics import relay_passed
from tests.support.processes import ServiceProcess
from tests.support.waits import eventually

EMAIL = amqp.queue_name("email")
SMS = amqp.queue_name("sms")
PUSH = amqp.queue_name("push")


async def settle(gateway: ServiceProcess) -> None:
    """Until the relay would have republished anything this test left unmarked."""
    await relay_passed(gateway, grace=GRACE_SECONDS)


async def test_accepted_notification_lands_once_on_its_queue_with_rendered_content(
    notifications, queues: Queues, peers: Peers, gateway: ServiceProcess
) -> None:
    user = peers.users.add()
    request = send_request(
        user.id,
        priority=common_pb2.PRIORITY_HIGH,
        metadata=struct(order="A-1"),
    )

    call = notifications.Send(request, metadata=CLIENT)
    answer = await call
    assert answer.status == common_pb2.NOTIFICATION_STATUS_PENDING
    assert not answer.duplicate
    assert dict(await call.initial_metadata())["x-correlation-id"] == request.request_id

    [got] = await queues.wait_for(EMAIL, 1)
    job, message = got.job, got.message
    assert job.notification_id == answer.notification_id
    assert job.channel == common_pb2.CHANNEL_EMAIL
    assert list(job.route) == [common_pb2.CHANNEL_EMAIL, common_pb2.CHANNEL_SMS]
    assert (job.route_index, job.attempt, job.generation) == (0, 1, 1)
    assert job.content.email.subject == "Hello Ada"
    assert job.content.email.text_body == "Welcome, Ada!"
    assert job.content.sms.text == "Hi Ada, welcome"  # rendered for every channel of the route
    assert job.recipient.email == user.email and job.recipient.phone == user.phone
    assert job.template_code == "welcome" and job.template_version == 1
    assert job.priority == common_pb2.PRIORITY_HIGH
    assert job.message_type == common_pb2.MESSAGE_TYPE_TRANSACTIONAL
    assert job.correlation_id == request.request_id
    assert job.deadline.seconds > job.create_time.seconds
    assert message.priority == 6
    assert message.delivery_mode == 2  # persistent
    assert message.content_type == "application/x-protobuf"
    assert message.type == "herald.v1.DeliveryJob"
    assert message.headers["x-correlation-id"] == request.request_id
    assert message.message_id == f"{answer.notification_id}:1:email:1"

    await settle(gateway)
    assert await queues.take(EMAIL) == []  # the relay did not publish it again

    stored = (
        await notifications.GetNotification(
            notification_pb2.GetNotificationRequest(id=answer.notification_id)
        )
    ).notification
    assert stored.status == common_pb2.NOTIFICATION_STATUS_PENDING
    assert stored.client_id == "client-a"
    assert stored.request_id == request.request_id
    assert dict(stored.metadata) == {"order": "A-1"}
    assert stored.template_version == 1
    assert list(stored.route) == [common_pb2.CHANNEL_EMAIL, common_pb2.CHANNEL_SMS]


async def test_same_request_id_twice_gives_one_notification_and_one_message(
    notifications, queues: Queues, peers: Peers, gateway: ServiceProcess
) -> None:
    user = peers.users.add()
    request = send_request(user.id)

    first = await notifications.Send(request, metadata=CLIENT)
    again = await notifications.Send(request, metadata=CLIENT)

    assert again.notification_id == first.notification_id
    assert again.duplicate and not first.duplicate
    await settle(gateway)
    assert [d.job.notification_id for d in await queues.take(EMAIL)] == [first.notification_id]


async def test_a_repeat_answers_the_original_even_when_it_could_no_longer_render(
    notifications, queues: Queues, peers: Peers, gateway: ServiceProcess
) -> None:
    # A repeat is answered from its key, whatever a fresh Send of it would meet now.
    user = peers.users.add()
    code = f"gone-{uuid.uuid4().hex[:8]}"
    peers.templates.add(code, {"subject": "Hi {{ name }}", "text": "Hi", "sms": "Hi"})
    request = send_request(user.id, template_code=code)
    first = await notifications.Send(request, metadata=CLIENT)
    peers.templates.archive(code)

    again = await notifications.Send(request, metadata=CLIENT)

    assert again.duplicate and again.notification_id == first.notification_id
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await notifications.Send(send_request(user.id, template_code=code), metadata=CLIENT)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION  # a new key: no replay
    await settle(gateway)
    assert [d.job.notification_id for d in await queues.take(EMAIL)] == [first.notification_id]


async def test_unset_defaults_and_spelled_out_defaults_are_the_same_payload(
    notifications, queues: Queues, peers: Peers
) -> None:
    user = peers.users.add()
    request = send_request(user.id)
    explicit = send_request(
        user.id,
        request_id=request.request_id,
        priority=common_pb2.PRIORITY_NORMAL,
        message_type=common_pb2.MESSAGE_TYPE_TRANSACTIONAL,
    )
    first = await notifications.Send(request, metadata=CLIENT)
    again = await notifications.Send(explicit, metadata=CLIENT)
    assert again.duplicate and again.notification_id == first.notification_id


async def test_concurrent_identical_sends_give_one_notification_and_one_message(
    notifications, queues: Queues, peers: Peers, gateway: ServiceProcess
) -> None:
    user = peers.users.add()
    request = send_request(user.id)

    answers = await asyncio.gather(
        *(notifications.Send(request, metadata=CLIENT) for _ in range(8))
    )

    assert len({a.notification_id for a in answers}) == 1
    assert sum(not a.duplicate for a in answers) == 1
    await settle(gateway)
    assert len(await queues.take(EMAIL)) == 1


async def test_concurrent_sends_each_hear_their_own_outcome(
    notifications, queues: Queues, peers: Peers, gateway: ServiceProcess
) -> None:
    """Sends arriving together may be accepted in one run: none is affected by another's
    error, keys stay per API client, each job keeps its own correlation id."""
    users = [peers.users.add() for _ in range(3)]
    shared_key = f"shared-{users[0].id}"
    missing = "00000000-0000-4000-8000-000000000002"
    calls = [
        (send_request(users[0].id, request_id=shared_key), CLIENT),
        (send_request(users[0].id, request_id=shared_key), (("x-herald-client-id", "client-b"),)),
        (send_request(users[1].id, variables=struct(other="x")), CLIENT),
        (send_request(missing), CLIENT),
        (send_request(users[2].id), CLIENT),
        (send_request(users[2].id, template_code="no/such"), CLIENT),
    ]

    answers = await asyncio.gather(
        *(notifications.Send(r, metadata=m) for r, m in calls), return_exceptions=True
    )

    mine, theirs, no_variable, no_user, fine, no_template = answers
    assert isinstance(mine, notification_pb2.SendResponse)
    assert isinstance(theirs, notification_pb2.SendResponse)
    assert isinstance(fine, notification_pb2.SendResponse)
    assert not (mine.duplicate or theirs.duplicate or fine.duplicate)
    assert len({mine.notification_id, theirs.notification_id, fine.notification_id}) == 3
    assert isinstance(no_variable, grpc.aio.AioRpcError)
    assert no_variable.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert any(
        f == "variables.name" and d.startswith("is required by the template")
        for f, d in field_violations(no_variable)
    )
    assert isinstance(no_user, grpc.aio.AioRpcError)
    assert no_user.code() == grpc.StatusCode.NOT_FOUND and missing in str(no_user.details())
    assert isinstance(no_template, grpc.aio.AioRpcError)
    assert no_template.code() == grpc.StatusCode.NOT_FOUND
    jobs = {d.job.notification_id: d.job for d in await queues.wait_for(EMAIL, 3)}
    assert jobs[mine.notification_id].correlation_id == shared_key
    assert jobs[fine.notification_id].correlation_id == calls[4][0].request_id
    await settle(gateway)
    assert await queues.take(EMAIL) == []


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ({"score": float("nan")}, "finite"),
        ({"nested": {"limit": float("inf")}}, "finite"),
        ({"note": "a\x00b"}, "NUL"),
        ({"list": ["ok", "a\x00b"]}, "NUL"),
    ],
)
async def test_metadata_that_json_cannot_hold_is_refused_naming_the_field(
    notifications, queues: Queues, peers: Peers, metadata: dict[str, object], problem: str
) -> None:
    user = peers.users.add()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notifications.Send(
            send_request(user.id, metadata=struct(**metadata)), metadata=CLIENT
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    [(field, description)] = field_violations(caught.value)
    assert field == "metadata" and problem in description
    assert await queues.take(EMAIL) == []


async def test_reusing_a_request_id_with_another_payload_is_refused(
    notifications, queues: Queues, peers: Peers, gateway: ServiceProcess
) -> None:
    user = peers.users.add()
    request = send_request(user.id)
    first = await notifications.Send(request, metadata=CLIENT)
    other = send_request(user.id, request_id=request.request_id, variables=struct(name="Bob"))

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notifications.Send(other, metadata=CLIENT)

    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert request.request_id in str(caught.value.details())
    assert "different payload" in str(caught.value.details())
    await settle(gateway)
    assert [d.job.notification_id for d in await queues.take(EMAIL)] == [first.notification_id]


async def test_idempotency_keys_belong_to_one_api_client(
    notifications, queues: Queues, peers: Peers
) -> None:
    user = peers.users.add()
    request = send_request(user.id)
    mine = await notifications.Send(request, metadata=CLIENT)
    theirs = await notifications.Send(request, metadata=((CLIENT_HEADER, "client-b"),))
    internal = await notifications.Send(request, metadata=((CLIENT_HEADER, "internal"),))
    again = await notifications.Send(request)  # this channel's calls act for client-a
    assert len({mine.notification_id, theirs.notification_id, internal.notification_id}) == 3
    assert again.duplicate and again.notification_id == mine.notification_id
    assert len(await queues.wait_for(EMAIL, 3)) == 3


async def test_missing_template_variable_is_invalid_argument_naming_it(
    notifications, queues: Queues, peers: Peers
) -> None:
    user = peers.users.add()
    request = send_request(user.id, variables=struct(other="x"))

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notifications.Send(request, metadata=CLIENT)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert any(
        f == "variables.name" and d.startswith("is required by the template")
        for f, d in field_violations(caught.value)
    )
    # Nothing was stored: the same key with a good payload is a fresh notification.
    fixed = send_request(user.id, request_id=request.request_id)
    answer = await notifications.Send(fixed, metadata=CLIENT)
    assert not answer.duplicate
    assert [d.job.notification_id for d in await queues.wait_for(EMAIL, 1)] == [
        answer.notification_id
    ]


async def test_unknown_user_is_not_found(notifications, queues: Queues) -> None:
    missing = "00000000-0000-4000-8000-000000000001"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notifications.Send(send_request(missing), metadata=CLIENT)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert missing in str(caught.value.details())
    assert await queues.take(EMAIL) == []


async def test_unknown_template_is_not_found(notifications, peers: Peers) -> None:
    user = peers.users.add()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notifications.Send(send_request(user.id, template_code="no/such"), metadata=CLIENT)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no/such" in str(caught.value.details())


async def test_bad_requests_name_every_field_at_fault(notifications) -> None:
    bad = notification_pb2.SendRequest(
        user_id="not-a-uuid",
        template_code="",
        request_id="x" * 200,
        language="not a tag",
        priority=42,  # type: ignore[arg-type]
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notifications.Send(bad, metadata=CLIENT)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = {f for f, _ in field_violations(caught.value)}
    assert fields == {"user_id", "channel", "template_code", "request_id", "language", "priority"}


async def test_oversized_variables_are_refused(notifications, peers: Peers) -> None:
    user = peers.users.add()
    huge = send_request(user.id, variables=struct(name="A" * 40_000))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notifications.Send(huge, metadata=CLIENT)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(caught.value)] == ["variables"]


async def test_preferences_gate_channels_and_the_route_starts_at_an_allowed_one(
    notifications, queues: Queues, peers: Peers
) -> None:
    user = peers.users.add(email_pref=False)

    answer = await notifications.Send(send_request(user.id), metadata=CLIENT)

    [got] = await queues.wait_for(SMS, 1)
    assert got.job.notification_id == answer.notification_id
    assert got.job.channel == common_pb2.CHANNEL_SMS
    assert list(got.job.route) == [common_pb2.CHANNEL_SMS]
    assert got.job.content.sms.text == "Hi Ada, welcome"
    assert await queues.take(EMAIL) == []
    assert not got.job.content.HasField("email")  # rendered for its route only


async def test_a_missing_contact_point_drops_the_channel_from_the_route(
    notifications, queues: Queues, peers: Peers
) -> None:
    user = peers.users.add(phone="")
    await notifications.Send(send_request(user.id), metadata=CLIENT)
    [got] = await queues.wait_for(EMAIL, 1)
    assert list(got.job.route) == [common_pb2.CHANNEL_EMAIL]


async def test_the_route_policy_depends_on_the_message_type(
    notifications, queues: Queues, peers: Peers
) -> None:
    user = peers.users.add(push=True)
    await notifications.Send(
        send_request(user.id, message_type=common_pb2.MESSAGE_TYPE_ALERT), metadata=CLIENT
    )
    await notifications.Send(
        # Marketing waits out the default quiet hours (22:00-07:00 UTC): bypassed, so the
        # route is seen at any hour of the day.
        send_request(
            user.id,
            message_type=common_pb2.MESSAGE_TYPE_MARKETING,
            quiet_hours=notification_pb2.QUIET_HOURS_POLICY_BYPASS,
        ),
        metadata=CLIENT,
    )
    await notifications.Send(
        send_request(user.id, channel=common_pb2.CHANNEL_PUSH), metadata=CLIENT
    )
    alert, marketing, push = await queues.wait_for(EMAIL, 2) + await queues.wait_for(PUSH, 1)
    assert list(alert.job.route) == [1, 2, 3]  # email, sms, push
    assert list(marketing.job.route) == [common_pb2.CHANNEL_EMAIL]  # no fallback
    assert list(push.job.route) == [3, 1, 2]  # requested first, then the policy's order
    assert push.job.content.push.body == "Hi Ada"


async def test_every_channel_disallowed_ends_suppressed_with_the_reason(
    notifications, queues: Queues, peers: Peers, gateway: ServiceProcess
) -> None:
    user = peers.users.add(email_pref=False, sms_pref=False)

    answer = await notifications.Send(send_request(user.id), metadata=CLIENT)

    assert answer.status == common_pb2.NOTIFICATION_STATUS_SUPPRESSED
    stored = (
        await notifications.GetNotification(
            notification_pb2.GetNotificationRequest(id=answer.notification_id)
        )
    ).notification
    assert stored.status == common_pb2.NOTIFICATION_STATUS_SUPPRESSED
    assert "email (preference off)" in stored.status_reason
    assert "sms (preference off)" in stored.status_reason
    assert list(stored.route) == []
    await settle(gateway)
    assert await queues.take(EMAIL) == [] and await queues.take(SMS) == []


async def test_correlation_id_is_in_every_log_line_of_the_send(
    notifications, queues: Queues, peers: Peers, gateway: ServiceProcess
) -> None:
    user = peers.users.add()
    request = send_request(user.id, request_id=f"corr-{user.id}")
    before = len(gateway.logs())
    response = await notifications.Send(request, metadata=CLIENT)
    await queues.wait_for(EMAIL, 1)

    # The Send's lines are chosen by what they are about (the call, the notification),
    # never by the id under test: a line of the Send that lost it is still checked.
    def lines_of_the_send() -> list[dict[str, object]]:
        logged = [json.loads(line) for line in gateway.logs()[before:].splitlines() if line]
        return [
            line
            for line in logged
            if line.get("notification_id") == response.notification_id
            or (line.get("event") == "rpc" and str(line.get("method")).endswith("/Send"))
        ]

    def both_logged() -> bool:  # the access line is written as the call ends
        events = {line.get("event") for line in lines_of_the_send()}
        return {"rpc", "notification accepted"} <= events

    await eventually(both_logged, what="the Send's access and accepted lines")
    lines = lines_of_the_send()
    assert [line for line in lines if line.get("correlation_id") != request.request_id] == []


async def test_without_request_id_the_callers_correlation_id_is_used(
    notifications, queues: Queues, peers: Peers
) -> None:
    user = peers.users.add()
    call = notifications.Send(
        send_request(user.id, request_id=""),
        metadata=(*CLIENT, ("x-correlation-id", "edge-123")),
    )
    await call
    assert dict(await call.initial_metadata())["x-correlation-id"] == "edge-123"
    [got] = await queues.wait_for(EMAIL, 1)
    assert got.job.correlation_id == "edge-123"
