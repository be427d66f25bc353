"""WatchNotification and WatchNotifications against the gateway process, whose periodic
check is off here (conftest): what a stream sees, NOTIFY woke it. A gateway of its own
for SIGTERM. Then the watches' registry in process, for what a process cannot show:
the periodic check, and a lost LISTEN."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from gateway.callbacks.watches import Watches
from herald.v1 import common_pb2, notification_pb2, notification_pb2_grpc
from mesh import db as mesh_db
from mesh.errors import Unavailable
from mesh.interceptors import CLIENT_HEADER, field_violations
from tests.conftest import ServiceFactory
from tests.gateway.core.conftest import gateway_env
from tests.gateway.core.helpers import CLIENT, CLIENT_ID, Queues, fail_every_channel, send_request
from tests.gateway.core.peers import Peers
from tests.gateway.core.test_status import (
    DELIVERED_OUTCOME,
    EMAIL,
    accepted_job,
    attempt,
    outcome,
)
from tests.support.infra import POSTGRES_URL, Isolation
from tests.support.waits import eventually

PENDING = common_pb2.NOTIFICATION_STATUS_PENDING
DELIVERED = common_pb2.NOTIFICATION_STATUS_DELIVERED
FAILED = common_pb2.NOTIFICATION_STATUS_FAILED
OTHER_CLIENT = ((CLIENT_HEADER, "client-b"),)
TIMEOUT = 10.0

Db = psycopg.Connection[dict[str, Any]]


async def next_notification(call: Any) -> notification_pb2.Notification | None:
    """The stream's next notification; None when it ended (fails after TIMEOUT)."""
    message = await asyncio.wait_for(call.read(), TIMEOUT)
    return None if message is grpc.aio.EOF else message.notification


def watch_rows(db: Db, notification_id: str) -> int:
    row = db.execute(
        "SELECT count(*) AS n FROM status_watches WHERE notification_id = %s", (notification_id,)
    ).fetchone()
    assert row is not None
    return int(row["n"])


def deliver(job: Any) -> Any:
    return outcome(job, attempt(job, DELIVERED_OUTCOME))


def watch_request(notification_id: str) -> notification_pb2.WatchNotificationRequest:
    return notification_pb2.WatchNotificationRequest(id=notification_id)


async def test_a_watch_streams_pending_then_delivered_and_ends(
    notifications, statuses, queues: Queues, peers: Peers, db: Db
) -> None:
    job = await accepted_job(notifications, queues, peers)
    call = notifications.WatchNotification(watch_request(job.notification_id), metadata=CLIENT)

    first = await next_notification(call)
    assert first is not None
    assert (first.id, first.status, len(first.attempts)) == (job.notification_id, PENDING, 0)

    await statuses.ReportStatus(deliver(job))
    second = await next_notification(call)
    assert second is not None and second.status == DELIVERED
    assert [a.outcome for a in second.attempts] == [DELIVERED_OUTCOME]

    assert await next_notification(call) is None
    assert await call.code() == grpc.StatusCode.OK
    await eventually(
        lambda: watch_rows(db, job.notification_id) == 0, TIMEOUT, what="the watch's row gone"
    )


async def test_a_final_notification_is_sent_once(
    notifications, statuses, queues: Queues, peers: Peers, db: Db
) -> None:
    job = await accepted_job(notifications, queues, peers)
    await statuses.ReportStatus(deliver(job))

    call = notifications.WatchNotification(watch_request(job.notification_id), metadata=CLIENT)
    only = await next_notification(call)

    assert only is not None and only.status == DELIVERED
    assert await next_notification(call) is None
    assert await call.code() == grpc.StatusCode.OK
    await eventually(
        lambda: watch_rows(db, job.notification_id) == 0, TIMEOUT, what="the watch's row gone"
    )


async def test_another_clients_notification_is_not_found_like_a_missing_one(
    notifications, queues: Queues, peers: Peers, db: Db
) -> None:
    job = await accepted_job(notifications, queues, peers)
    missing = str(uuid.uuid4())
    for notification_id, metadata in ((job.notification_id, OTHER_CLIENT), (missing, CLIENT)):
        call = notifications.WatchNotification(watch_request(notification_id), metadata=metadata)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await next_notification(call)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        assert error.value.details() == f"notification {notification_id} not found"
    assert watch_rows(db, job.notification_id) == 0

    bad = notifications.WatchNotification(watch_request("nope"), metadata=CLIENT)
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await next_notification(bad)
    assert field_violations(invalid.value) == [("id", "not a UUID")]


async def test_cancelling_a_watch_removes_its_registration(
    notifications, queues: Queues, peers: Peers, db: Db
) -> None:
    job = await accepted_job(notifications, queues, peers)
    call = notifications.WatchNotification(watch_request(job.notification_id), metadata=CLIENT)
    assert await next_notification(call) is not None
    assert watch_rows(db, job.notification_id) == 1

    call.cancel()

    await eventually(
        lambda: watch_rows(db, job.notification_id) == 0, TIMEOUT, what="the watch's row gone"
    )


async def test_a_client_watch_sees_its_clients_changes_and_no_others(
    notifications, statuses, queues: Queues, peers: Peers
) -> None:
    ours = [await accepted_job(notifications, queues, peers) for _ in range(2)]
    user = peers.users.add()
    await notifications.Send(send_request(user.id), metadata=OTHER_CLIENT)
    [theirs] = await queues.wait_for(EMAIL, 1)
    call = notifications.WatchNotifications(
        notification_pb2.WatchNotificationsRequest(), metadata=CLIENT
    )
    await asyncio.wait_for(call.initial_metadata(), TIMEOUT)

    # Theirs changes first: were it sent, it would come before ours.
    for job in (theirs.job, *ours):
        await statuses.ReportStatus(deliver(job))
    seen = [await next_notification(call) for _ in ours]

    assert {(n.id, n.status, n.client_id) for n in seen if n is not None} == {
        (job.notification_id, DELIVERED, CLIENT_ID) for job in ours
    }
    assert all(n is not None and not n.attempts for n in seen)
    call.cancel()


async def test_a_client_watch_sends_only_the_statuses_asked_for(
    notifications, statuses, queues: Queues, peers: Peers
) -> None:
    delivered, failed = [await accepted_job(notifications, queues, peers) for _ in range(2)]
    call = notifications.WatchNotifications(
        notification_pb2.WatchNotificationsRequest(statuses=[FAILED]), metadata=CLIENT
    )
    await asyncio.wait_for(call.initial_metadata(), TIMEOUT)

    await statuses.ReportStatus(deliver(delivered))
    await fail_every_channel(notifications, statuses, failed.notification_id)
    first = await next_notification(call)

    assert first is not None and (first.id, first.status) == (failed.notification_id, FAILED)
    call.cancel()

    no_status: Any = 99
    unknown = notifications.WatchNotifications(
        notification_pb2.WatchNotificationsRequest(statuses=[FAILED, no_status]), metadata=CLIENT
    )
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await next_notification(unknown)
    assert field_violations(invalid.value) == [("statuses[1]", "not a status")]


async def test_sigterm_ends_open_watches_at_once(
    service_factory: ServiceFactory, peers: Peers, isolation: Isolation, core_amqp_url: str
) -> None:
    env = gateway_env(
        peers,
        HERALD_AMQP_URL=core_amqp_url,
        HERALD_GATEWAY_DATABASE=isolation.database("notifications_watch"),
        HERALD_GRACE_SECONDS="60",
    )
    proc = await asyncio.to_thread(service_factory, "gateway", env=env)
    channel = proc.channel(CLIENT_ID)
    try:
        stub = notification_pb2_grpc.NotificationServiceStub(channel)
        sent = await stub.Send(send_request(peers.users.add().id))
        call = stub.WatchNotification(watch_request(sent.notification_id))
        assert await next_notification(call) is not None

        proc.signal(signal.SIGTERM)

        # Well within the grace period an open stream would otherwise hold.
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await asyncio.wait_for(call.read(), 5)
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "shutting down" in (ended.value.details() or "")
        assert await asyncio.to_thread(proc.stop) == 0
    finally:
        await channel.close()
        await asyncio.to_thread(proc.stop)


@pytest.fixture
async def pool(core_database: str, gateway: Any) -> AsyncIterator[AsyncConnectionPool]:
    """A pool of this process's own to the gateway's database (migrated by the gateway)."""
    opened = await mesh_db.open_pool(f"{POSTGRES_URL}/{core_database}", max_size=2)
    yield opened
    await opened.close()


@pytest.fixture
async def watches(pool: AsyncConnectionPool) -> AsyncIterator[Watches]:
    """A registry with no LISTEN at all, checking statuses every 0.1 s."""
    registry = Watches(pool, check_seconds=0.1)
    upkeep = asyncio.create_task(registry.run())
    yield registry
    upkeep.cancel()
    await asyncio.gather(upkeep, return_exceptions=True)


@pytest.fixture
async def job(notifications, queues: Queues, peers: Peers) -> Any:
    """A pending notification's first hop."""
    return await accepted_job(notifications, queues, peers)


async def test_the_periodic_check_wakes_a_watch_without_a_notify(
    watches: Watches, job: Any, statuses, db: Db
) -> None:
    notification_id = uuid.UUID(job.notification_id)
    watch = await watches.add_notification(notification_id, owner=CLIENT_ID)
    assert watch is not None and watch.client_id == CLIENT_ID
    watch.seen = "pending"

    await statuses.ReportStatus(deliver(job))

    assert await asyncio.wait_for(watch.changes(), TIMEOUT) == [notification_id]
    await watches.remove(watch)
    assert watch_rows(db, job.notification_id) == 0
    assert await watches.add_notification(notification_id, owner="client-b") is None


async def test_shutdown_ends_watches_unavailable(watches: Watches, job: Any) -> None:
    with pytest.raises(Unavailable):
        await watches.add_client(CLIENT_ID)  # never listening: it would miss changes

    watch = await watches.add_notification(uuid.UUID(job.notification_id), owner=None)
    assert watch is not None
    watches.close()

    with pytest.raises(Unavailable, match="shutting down"):
        await asyncio.wait_for(watch.changes(), TIMEOUT)
    with pytest.raises(Unavailable):
        await watches.add_notification(uuid.UUID(job.notification_id), owner=None)
    await watches.remove(watch)


async def test_a_lost_listen_ends_client_watches_unavailable(
    watches: Watches, db: Db, core_database: str
) -> None:
    def listening() -> set[int]:
        rows = db.execute(
            """SELECT pid FROM pg_stat_activity
               WHERE datname = current_database() AND query = 'LISTEN "herald_status"'"""
        ).fetchall()
        return {int(row["pid"]) for row in rows}

    gateways = listening()
    listener = watches.listener(f"{POSTGRES_URL}/{core_database}")
    await listener.start()
    try:
        [ours] = listening() - gateways
        watch = await watches.add_client("client-c")

        db.execute("SELECT pg_terminate_backend(%s)", (ours,))

        with pytest.raises(Unavailable, match="missed"):
            await asyncio.wait_for(watch.changes(), TIMEOUT)
        await watches.remove(watch)
    finally:
        await listener.stop()
