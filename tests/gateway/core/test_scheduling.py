"""Scheduling, quiet hours, rate limits, frequency caps and Cancel in the gateway's own
domain objects, in process on the package gateway's notifications database and RabbitMQ
vhost (the real userd and templated of `peers`): time is an injected clock, never a
sleep. The limits are in the real Redis, or in one nothing answers on (fail open).

The package's gateway process runs its own scheduler on the same rows, on the real
clock: the clocks here are set in 2030, so it never finds these rows due.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import aio_pika
import pytest
from psycopg_pool import AsyncConnectionPool

from gateway.apikeys.scopes import Principal, Scope
from gateway.lifecycle import Hop
from gateway.notifications.accept import Acceptor, Timing
from gateway.notifications.model import Caller, NewSend, Outcome
from gateway.notifications.peers import Peers as PeerClients
from gateway.notifications.routing import RoutePolicy
from gateway.notifications.service import Notifications
from gateway.notifications.validation import Limits
from gateway.outbox import RunningOutbox, start_outbox
from gateway.settings import DEFAULT_ROUTE_POLICY
from gateway.status.claims import ClaimAsk, ClaimResult, Claims
from gateway.store import db
from gateway.timing.limits import ClientLimits, ClientThrottled, FrequencyCaps
from gateway.timing.quiet import QuietPolicy, QuietWindow
from gateway.timing.scheduler import Scheduler
from gateway.wire import CHANNELS_BY_NAME
from herald.v1 import delivery_pb2, user_pb2, user_pb2_grpc
from mesh import db as mesh_db
from mesh.client import internal_channel
from mesh.errors import Conflict, InvalidArgument
from mesh.ratelimit import SharedLimits
from tests.gateway.core.helpers import CLIENT_ID, Queues
from tests.gateway.core.peers import METADATA, Peers
from tests.support.infra import POSTGRES_URL, REDIS_URL, SERVICE_TOKEN, Isolation, free_port
from tests.support.metrics import sample
from tests.support.processes import ServiceProcess

OUTCOME = delivery_pb2.AttemptOutcome
LONDON_NIGHT = datetime(2030, 3, 30, 23, 30, tzinfo=UTC)  # 23:30 GMT, the eve of BST
BST_MORNING = datetime(2030, 3, 31, 6, 0, tzinfo=UTC)  # 07:00 BST, the window's end
PRINCIPAL = Principal(
    client_id=CLIENT_ID,
    scopes=frozenset({Scope.NOTIFICATIONS_SEND, Scope.NOTIFICATIONS_READ}),
    label="tests:scheduling",
)
CALLER = Caller(principal=PRINCIPAL, correlation_id="scheduling")


class Clock:
    """The domain's clock, moved by the tests."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Domain:
    clock: Clock
    acceptor: Acceptor
    # The same, its limits in a Redis that refuses every connection.
    without_redis: Acceptor
    notifications: Notifications
    scheduler: Scheduler
    claims: Claims
    pool: AsyncConnectionPool
    london_user: str
    plain_user: str
    # A new user in a time zone (blocking: call it in a thread).
    new_user: Callable[[str], str]


@pytest.fixture(scope="module")
async def domain(
    gateway: ServiceProcess,
    peers: Peers,
    core_database: str,
    core_amqp_url: str,
    isolation: Isolation,
) -> AsyncIterator[Domain]:
    pool = await mesh_db.open_pool(f"{POSTGRES_URL}/{core_database}", max_size=8)
    connection = await aio_pika.connect_robust(core_amqp_url)
    running: RunningOutbox = await start_outbox(
        pool, connection, publish_timeout=5, interval=0.2, grace=1.0, batch_size=200
    )
    userd = internal_channel(peers.userd_addr, SERVICE_TOKEN)
    templated = internal_channel(peers.templated_addr, SERVICE_TOKEN)
    clock = Clock(LONDON_NIGHT)
    scheduler = Scheduler(pool, running.outbox, idle=5.0, batch_size=50, clock=clock)

    def acceptor(redis_url: str) -> Acceptor:
        limits = SharedLimits(redis_url, prefix=f"{isolation.redis_prefix}sched", timeout=1.0)
        return Acceptor(
            pool=pool,
            peers=PeerClients(userd=userd, templated=templated, timeout=5.0, users=None),
            outbox=running.outbox,
            policy=RoutePolicy.from_names(DEFAULT_ROUTE_POLICY),
            limits=Limits(32 * 1024, 8 * 1024, 86400 * 3650),
            deadline_seconds=3600,
            max_batch=500,
            concurrency=32,
            runs=4,
            timing=Timing(
                quiet=QuietPolicy(frozenset({"marketing"}), QuietWindow.parse("22:00-07:00")),
                client_limits=ClientLimits(limits, default=(100, 1000)),
                caps=FrequencyCaps(limits, {"marketing": "3/day"}),
                clock=clock,
            ),
        )

    users = user_pb2_grpc.UserServiceStub(peers.users.channel)

    def create(time_zone: str) -> str:
        request = user_pb2.CreateUserRequest(
            name="Ada",
            email=f"ada.{uuid.uuid4().hex[:12]}@example.com",
            phone="+5511987654321",
            password="correct horse battery",
            time_zone=time_zone,
        )
        return str(users.CreateUser(request, metadata=METADATA, timeout=10).user.id)

    yield Domain(
        clock,
        acceptor(REDIS_URL),
        acceptor(f"redis://127.0.0.1:{free_port()}/0"),
        Notifications(pool=pool, outbox=running.outbox, deadline_seconds=3600, clock=clock),
        scheduler,
        Claims(pool=pool),
        pool,
        await asyncio.to_thread(create, "Europe/London"),
        await asyncio.to_thread(create, "UTC"),
        create,
    )
    await running.stop()
    await connection.close()
    await userd.close()
    await templated.close()
    await pool.close()


def new_send(user_id: str, **fields: object) -> NewSend:
    values: dict[str, object] = {
        "user_id": uuid.UUID(user_id),
        "channel": "email",
        "template_code": "welcome",
        "variables": {"name": "Ada"},
        "request_id": f"sched-{uuid.uuid4().hex}",
    }
    values.update(fields)
    return NewSend(**values)  # type: ignore[arg-type]


@pytest.fixture
def at_night(domain: Domain) -> Domain:
    domain.clock.now = LONDON_NIGHT
    return domain


async def outcomes(domain: Domain, notification_id: uuid.UUID) -> list[tuple[int, str]]:
    record = await domain.notifications.get(notification_id=notification_id, principal=PRINCIPAL)
    return [(a.outcome, a.detail) for a in record.attempts]


async def test_marketing_inside_the_quiet_window_waits_until_it_ends_across_dst(
    at_night: Domain, queues: Queues
) -> None:
    domain = at_night
    accepted = await domain.acceptor.send(
        notification=new_send(domain.london_user, message_type="marketing"), caller=CALLER
    )
    assert accepted.status == "scheduled"
    record = await domain.notifications.get(
        notification_id=accepted.notification_id, principal=PRINCIPAL
    )
    # 07:00 the morning the clocks go forward is 06:00 UTC, not 07:00.
    assert record.send_at == BST_MORNING
    reason = "held by quiet hours until 2030-03-31T06:00:00+00:00"
    assert record.status_reason == reason
    assert await outcomes(domain, accepted.notification_id) == [
        (OUTCOME.ATTEMPT_OUTCOME_HELD, reason)
    ]

    # A second before the end: nothing is released. At the end: released, published.
    domain.clock.now = BST_MORNING - timedelta(seconds=1)
    assert await domain.scheduler.release_once() == 0
    domain.clock.now = BST_MORNING
    assert await domain.scheduler.release_once() >= 1
    record = await domain.notifications.get(
        notification_id=accepted.notification_id, principal=PRINCIPAL
    )
    assert record.status == "pending"
    assert [a.outcome for a in record.attempts] == [
        OUTCOME.ATTEMPT_OUTCOME_HELD,
        OUTCOME.ATTEMPT_OUTCOME_RELEASED,
    ]
    published = await queues.wait_for_ids("email.queue", {str(accepted.notification_id)})
    assert published


async def test_a_transactional_one_goes_at_once_and_a_caller_may_bypass(
    at_night: Domain,
) -> None:
    domain = at_night
    now = await domain.acceptor.send(notification=new_send(domain.london_user), caller=CALLER)
    assert now.status == "pending"
    bypass = await domain.acceptor.send(
        notification=new_send(domain.london_user, message_type="marketing", quiet_hours="bypass"),
        caller=CALLER,
    )
    assert bypass.status == "pending"
    respect = await domain.acceptor.send(
        notification=new_send(domain.london_user, quiet_hours="respect"), caller=CALLER
    )
    assert respect.status == "scheduled"


async def test_send_at_is_held_then_released_never_early(at_night: Domain) -> None:
    domain = at_night
    due = LONDON_NIGHT + timedelta(minutes=5)
    accepted = await domain.acceptor.send(
        notification=new_send(domain.plain_user, send_at=due), caller=CALLER
    )
    assert accepted.status == "scheduled"
    record = await domain.notifications.get(
        notification_id=accepted.notification_id, principal=PRINCIPAL
    )
    assert (record.send_at, record.status_reason) == (
        due,
        "scheduled for 2030-03-30T23:35:00+00:00",
    )
    domain.clock.now = due - timedelta(microseconds=1)
    await domain.scheduler.release_once()
    assert (
        await domain.notifications.get(
            notification_id=accepted.notification_id, principal=PRINCIPAL
        )
    ).status == "scheduled"
    domain.clock.now = due
    await domain.scheduler.release_once()
    assert (
        await domain.notifications.get(
            notification_id=accepted.notification_id, principal=PRINCIPAL
        )
    ).status == "pending"


async def test_send_at_must_be_ahead_and_within_the_horizon(at_night: Domain) -> None:
    domain = at_night
    for send_at, why in [
        (LONDON_NIGHT - timedelta(seconds=1), "must be in the future"),
        (LONDON_NIGHT + timedelta(days=3651), "seconds ahead"),
    ]:
        with pytest.raises(InvalidArgument) as caught:
            await domain.acceptor.send(
                notification=new_send(domain.plain_user, send_at=send_at), caller=CALLER
            )
        [violation] = caught.value.violations
        assert violation.field == "send_at" and why in violation.description


async def test_idempotency_holds_for_scheduled_sends(at_night: Domain) -> None:
    domain = at_night
    send = new_send(domain.plain_user, send_at=LONDON_NIGHT + timedelta(hours=1))
    first = await domain.acceptor.send(notification=send, caller=CALLER)
    again = await domain.acceptor.send(notification=send, caller=CALLER)
    assert (again.notification_id, again.status, again.duplicate) == (
        first.notification_id,
        "scheduled",
        True,
    )
    other_time = new_send(
        domain.plain_user, request_id=send.request_id, send_at=LONDON_NIGHT + timedelta(hours=2)
    )
    with pytest.raises(Conflict):
        await domain.acceptor.send(notification=other_time, caller=CALLER)


async def test_a_fourth_marketing_notification_a_day_is_suppressed_by_the_cap(
    at_night: Domain,
) -> None:
    domain = at_night
    user = domain.plain_user  # UTC: 23:30 is inside the window, so bypass it
    capped = sample("herald_throttled_total", limit="frequency_cap")
    answers = [
        await domain.acceptor.send(
            notification=new_send(user, message_type="marketing", quiet_hours="bypass"),
            caller=CALLER,
        )
        for _ in range(4)
    ]
    assert [a.status for a in answers] == ["pending"] * 3 + ["suppressed"]
    assert sample("herald_throttled_total", limit="frequency_cap") == capped + 1
    record = await domain.notifications.get(
        notification_id=answers[3].notification_id, principal=PRINCIPAL
    )
    assert record.status_reason == "frequency cap: at most 3/day marketing notifications per user"
    assert [a.outcome for a in record.attempts] == [OUTCOME.ATTEMPT_OUTCOME_CAPPED]


async def test_the_gauges_count_what_is_scheduled_and_what_quiet_hours_hold(
    at_night: Domain,
) -> None:
    domain = at_night
    user = await asyncio.to_thread(domain.new_user, "Europe/London")

    async def gauges() -> tuple[float, float]:
        await domain.scheduler.pass_once()
        return sample("herald_scheduled_waiting"), sample("herald_scheduled_quiet_window")

    waiting, held = await gauges()
    await domain.acceptor.send(
        notification=new_send(user, message_type="marketing"), caller=CALLER
    )  # held by the night
    later = await domain.acceptor.send(
        notification=new_send(user, send_at=LONDON_NIGHT + timedelta(hours=1)), caller=CALLER
    )
    assert await gauges() == (waiting + 2, held + 1)
    await domain.notifications.cancel(notification_id=later.notification_id, principal=PRINCIPAL)
    assert await gauges() == (waiting + 1, held + 1)


def rate_limited(per_second: int, burst: int) -> Caller:
    """A caller with an API key of its own (a client of its own too) and that rate."""
    client = f"rated-{uuid.uuid4().hex[:8]}"
    principal = replace(PRINCIPAL, client_id=client, rate_key=client, rate=(per_second, burst))
    return Caller(principal=principal, correlation_id="rate-limited")


async def stored_for(domain: Domain, caller: Caller) -> int:
    async with db.connection(domain.pool) as conn:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM notifications WHERE client_id = %s", (caller.client_id,)
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row["n"])


async def test_a_key_over_its_rate_is_refused_before_anything_is_stored(
    at_night: Domain,
) -> None:
    domain = at_night
    caller = rate_limited(1, 1)
    throttled = sample("herald_throttled_total", limit="client")
    first = await domain.acceptor.send(notification=new_send(domain.plain_user), caller=caller)
    assert first.status == "pending"
    with pytest.raises(ClientThrottled) as refused:
        await domain.acceptor.send(notification=new_send(domain.plain_user), caller=caller)
    assert refused.value.retry_after is not None and refused.value.retry_after > 0
    with pytest.raises(ClientThrottled):  # a batch takes a token per item, all or none
        await domain.acceptor.send_batch(
            notifications=[new_send(domain.plain_user) for _ in range(3)], caller=caller
        )
    assert await stored_for(domain, caller) == 1
    assert sample("herald_throttled_total", limit="client") == throttled + 1 + 3


async def test_with_redis_unreachable_every_accept_limit_fails_open(at_night: Domain) -> None:
    """Over its key's rate (1/s, burst 1) and over the user's cap (3 marketing a day), with
    Redis refusing connections: every notification is stored and goes (none refused,
    none suppressed), and what went unchecked is counted."""
    domain = at_night
    user = await asyncio.to_thread(domain.new_user, "UTC")
    caller = rate_limited(1, 1)

    def counted() -> tuple[float, ...]:
        return (
            sample("herald_rate_limit_unavailable_total", limit="client"),
            sample("herald_rate_limit_unavailable_total", limit="frequency_cap"),
            sample("herald_throttled_total", limit="client"),
            sample("herald_throttled_total", limit="frequency_cap"),
        )

    client, cap, throttled, capped = counted()
    marketing = [new_send(user, message_type="marketing", quiet_hours="bypass") for _ in range(6)]
    answers: list[Outcome] = [
        await domain.without_redis.send(notification=send, caller=caller) for send in marketing[:4]
    ]
    answers += await domain.without_redis.send_batch(notifications=marketing[4:], caller=caller)
    assert [getattr(a, "status", a) for a in answers] == ["pending"] * 6
    assert await stored_for(domain, caller) == 6
    # The rate was asked once per call (4 sends, 1 batch), the cap once per notification.
    assert counted() == (client + 5, cap + 6, throttled, capped)


async def test_cancel_before_dispatch_wins_and_records_who(at_night: Domain) -> None:
    domain = at_night
    accepted = await domain.acceptor.send(
        notification=new_send(domain.plain_user, send_at=LONDON_NIGHT + timedelta(hours=1)),
        caller=CALLER,
    )
    record = await domain.notifications.cancel(
        notification_id=accepted.notification_id, principal=PRINCIPAL, reason="changed my mind"
    )
    assert record.status == "cancelled"
    assert record.status_reason == "cancelled by tests:scheduling: changed my mind"
    last = record.attempts[-1]
    assert (last.outcome, last.worker) == (OUTCOME.ATTEMPT_OUTCOME_CANCELLED, "tests:scheduling")
    # Final: its time passing releases nothing, and a second cancel is a conflict.
    domain.clock.now = LONDON_NIGHT + timedelta(hours=2)
    await domain.scheduler.release_once()
    with pytest.raises(Conflict, match="is cancelled"):
        await domain.notifications.cancel(
            notification_id=accepted.notification_id, principal=PRINCIPAL
        )


async def test_a_cancel_racing_the_dispatch_has_exactly_one_winner_200_times(
    at_night: Domain,
) -> None:
    """Each round: a pending notification nobody claimed yet, then a worker's Claim of
    its first hop and a Cancel at the same moment. Exactly one wins, and the loser says
    what the winner made of it."""
    domain = at_night
    sends = [new_send(domain.plain_user) for _ in range(200)]
    accepted = await domain.acceptor.send_batch(notifications=sends, caller=CALLER)
    email = CHANNELS_BY_NAME["email"]
    winners = {"claim": 0, "cancel": 0}
    for answer in accepted:
        assert not isinstance(answer, Exception)
        ask = ClaimAsk(answer.notification_id, Hop(1, email, 1), "race-worker", 30)
        claimed, cancelled = await asyncio.gather(
            domain.claims.claim(ask),
            domain.notifications.cancel(
                notification_id=answer.notification_id, principal=PRINCIPAL
            ),
            return_exceptions=True,
        )
        assert not isinstance(claimed, BaseException), claimed
        granted = claimed.result is ClaimResult.GRANTED
        if granted:
            assert isinstance(cancelled, Conflict), cancelled
            assert "pending and a worker has taken it" in cancelled.message
            winners["claim"] += 1
        else:
            assert claimed.result is ClaimResult.FINAL and claimed.status == "cancelled"
            assert not isinstance(cancelled, BaseException), cancelled
            assert cancelled.status == "cancelled"
            winners["cancel"] += 1
    assert sum(winners.values()) == 200
