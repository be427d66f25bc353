"""NotificationService.SendBatch: bounded, answered per item, efficient."""

from __future__ import annotations

import grpc
import pytest

from herald.v1 import common_pb2, notification_pb2
from mesh import amqp
from mesh.interceptors import field_violations
from tests.gateway.core.helpers import CLIENT, Queues, send_request, struct
from tests.gateway.core.peers import Peers

EMAIL = amqp.queue_name("email")


async def test_each_item_gets_its_own_answer(notifications, queues: Queues, peers: Peers) -> None:
    user = peers.users.add()
    suppressed_user = peers.users.add(email_pref=False, sms_pref=False)
    unknown = "00000000-0000-4000-8000-0000000000aa"
    items = [
        send_request(user.id),
        send_request("nope"),
        send_request(unknown),
        send_request(user.id, variables=struct()),
        send_request(suppressed_user.id),
        send_request(user.id, template_code="missing/template"),
        send_request(user.id),
    ]

    answer = await notifications.SendBatch(
        notification_pb2.SendBatchRequest(requests=items), metadata=CLIENT
    )

    results = list(answer.results)
    assert [r.index for r in results] == list(range(len(items)))
    assert [r.WhichOneof("result") for r in results] == [
        "accepted",
        "error",
        "error",
        "error",
        "accepted",
        "error",
        "accepted",
    ]
    bad_id, no_user, no_var, no_template = (results[i].error for i in (1, 2, 3, 5))
    assert bad_id.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert [(v.field, v.description) for v in bad_id.field_violations] == [
        ("requests[1].user_id", "not a UUID")
    ]
    assert no_user.code == grpc.StatusCode.NOT_FOUND.value[0] and unknown in no_user.message
    assert no_var.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert [v.field for v in no_var.field_violations] == ["requests[3].variables.name"]
    assert no_template.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert results[4].accepted.status == common_pb2.NOTIFICATION_STATUS_SUPPRESSED

    published = await queues.wait_for(EMAIL, 2)
    assert {d.job.notification_id for d in published} == {
        results[0].accepted.notification_id,
        results[6].accepted.notification_id,
    }


async def test_one_user_fetch_and_one_rendering_serve_identical_items(
    notifications, queues: Queues, peers: Peers
) -> None:
    user = peers.users.add()
    gets, renders = peers.users.get_calls, peers.templates.render_calls
    items = [send_request(user.id) for _ in range(50)]

    answer = await notifications.SendBatch(
        notification_pb2.SendBatchRequest(requests=items), metadata=CLIENT
    )

    assert all(r.WhichOneof("result") == "accepted" for r in answer.results)
    assert peers.users.get_calls - gets == 1
    assert peers.templates.render_calls - renders == 1
    assert len({d.job.notification_id for d in await queues.wait_for(EMAIL, 50)}) == 50


async def test_the_users_of_a_batch_come_in_one_call(
    notifications, queues: Queues, peers: Peers
) -> None:
    users = [peers.users.add() for _ in range(3)]
    unknown = "00000000-0000-4000-8000-0000000000bb"
    gets, batches = peers.users.get_calls, peers.users.batch_calls
    items = [send_request(u.id) for u in users * 4] + [send_request(unknown)]

    answer = await notifications.SendBatch(
        notification_pb2.SendBatchRequest(requests=items), metadata=CLIENT
    )

    kinds = [r.WhichOneof("result") for r in answer.results]
    assert kinds == ["accepted"] * 12 + ["error"]
    assert answer.results[12].error.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert (peers.users.get_calls - gets, peers.users.batch_calls - batches) == (0, 1)
    assert len(await queues.wait_for(EMAIL, 12)) == 12


async def test_a_userd_without_batch_get_is_asked_user_by_user(
    notifications, queues: Queues, peers: Peers
) -> None:
    users = [peers.users.add() for _ in range(3)]
    gets = peers.users.get_calls
    peers.users.batch = False
    try:
        answer = await notifications.SendBatch(
            notification_pb2.SendBatchRequest(requests=[send_request(u.id) for u in users]),
            metadata=CLIENT,
        )
    finally:
        peers.users.batch = True

    assert all(r.WhichOneof("result") == "accepted" for r in answer.results)
    assert peers.users.get_calls - gets == 3
    assert len(await queues.wait_for(EMAIL, 3)) == 3


async def test_the_renderings_of_a_batch_come_in_one_call(
    notifications, queues: Queues, peers: Peers
) -> None:
    user = peers.users.add()
    renders, batches = peers.templates.render_calls, peers.templates.batch_calls
    names = ["Ada", "Bob", "Cy"]
    items = [send_request(user.id, variables=struct(name=n)) for n in names * 3]
    items.append(send_request(user.id, variables=struct()))  # a variable missing

    answer = await notifications.SendBatch(
        notification_pb2.SendBatchRequest(requests=items), metadata=CLIENT
    )

    kinds = [r.WhichOneof("result") for r in answer.results]
    assert kinds == ["accepted"] * 9 + ["error"]
    missing = answer.results[9].error
    assert missing.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert [v.field for v in missing.field_violations] == ["requests[9].variables.name"]
    assert (peers.templates.render_calls - renders, peers.templates.batch_calls - batches) == (
        0,
        1,
    )
    published = await queues.wait_for(EMAIL, 9)
    assert sorted(d.job.content.email.subject for d in published) == sorted(
        f"Hello {n}" for n in names * 3
    )


async def test_a_templated_without_batch_render_is_asked_item_by_item(
    notifications, queues: Queues, peers: Peers
) -> None:
    user = peers.users.add()
    renders = peers.templates.render_calls
    peers.templates.batch = False
    try:
        answer = await notifications.SendBatch(
            notification_pb2.SendBatchRequest(
                requests=[send_request(user.id, variables=struct(name=n)) for n in "ABC"]
            ),
            metadata=CLIENT,
        )
    finally:
        peers.templates.batch = True

    assert all(r.WhichOneof("result") == "accepted" for r in answer.results)
    assert peers.templates.render_calls - renders == 3
    assert len(await queues.wait_for(EMAIL, 3)) == 3


async def test_a_key_used_twice_in_one_batch(notifications, queues: Queues, peers: Peers) -> None:
    user = peers.users.add()
    first = send_request(user.id)
    same = send_request(user.id, request_id=first.request_id)
    other = send_request(user.id, request_id=first.request_id, variables=struct(name="Bob"))

    answer = await notifications.SendBatch(
        notification_pb2.SendBatchRequest(requests=[first, same, other]), metadata=CLIENT
    )

    a, b, c = answer.results
    assert b.accepted.duplicate and b.accepted.notification_id == a.accepted.notification_id
    assert c.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert len(await queues.wait_for(EMAIL, 1)) == 1

    # And across calls, the batch's key holds like a Send's.
    again = await notifications.Send(first, metadata=CLIENT)
    assert again.duplicate and again.notification_id == a.accepted.notification_id


async def test_batches_are_bounded(notifications, peers: Peers) -> None:
    user = peers.users.add()
    too_many = notification_pb2.SendBatchRequest(
        requests=[send_request(user.id) for _ in range(501)]
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notifications.SendBatch(too_many, metadata=CLIENT)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(caught.value)] == ["requests"]

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notifications.SendBatch(notification_pb2.SendBatchRequest(), metadata=CLIENT)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_full_batch_of_500_is_accepted(notifications, queues: Queues, peers: Peers) -> None:
    users = [peers.users.add() for _ in range(10)]
    items = [send_request(users[i % 10].id, variables=struct(name=f"n{i}")) for i in range(500)]

    answer = await notifications.SendBatch(
        notification_pb2.SendBatchRequest(requests=items), metadata=CLIENT
    )

    assert sum(r.WhichOneof("result") == "accepted" for r in answer.results) == 500
    jobs = [d.job for d in await queues.wait_for(EMAIL, 500)]
    assert {j.notification_id for j in jobs} == {r.accepted.notification_id for r in answer.results}
    by_id = {r.accepted.notification_id: i for i, r in enumerate(answer.results)}
    assert all(j.content.email.subject == f"Hello n{by_id[j.notification_id]}" for j in jobs)
