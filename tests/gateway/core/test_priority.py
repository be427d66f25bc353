"""Priority: under a backlog, higher-priority jobs are delivered first (AMQP priority)."""

from __future__ import annotations

from herald.v1 import common_pb2
from mesh import amqp
from tests.gateway.core.helpers import CLIENT, Queues, send_request
from tests.gateway.core.peers import Peers

EMAIL = amqp.queue_name("email")


async def test_a_critical_job_overtakes_a_backlog_of_lower_ones(
    notifications, queues: Queues, peers: Peers
) -> None:
    user = peers.users.add()
    order = [
        common_pb2.PRIORITY_LOW,
        common_pb2.PRIORITY_LOW,
        common_pb2.PRIORITY_NORMAL,
        common_pb2.PRIORITY_LOW,
        common_pb2.PRIORITY_HIGH,
        common_pb2.PRIORITY_CRITICAL,
    ]
    sent = {}
    for priority in order:  # no consumer: they pile up in email.queue
        answer = await notifications.Send(send_request(user.id, priority=priority), metadata=CLIENT)
        sent[answer.notification_id] = priority

    got = await queues.wait_for(EMAIL, len(order))

    assert [d.job.priority for d in got] == [
        common_pb2.PRIORITY_CRITICAL,
        common_pb2.PRIORITY_HIGH,
        common_pb2.PRIORITY_NORMAL,
        common_pb2.PRIORITY_LOW,
        common_pb2.PRIORITY_LOW,
        common_pb2.PRIORITY_LOW,
    ]
    assert all(sent[d.job.notification_id] == d.job.priority for d in got)
    assert [d.message.priority for d in got] == [9, 6, 3, 1, 1, 1]
