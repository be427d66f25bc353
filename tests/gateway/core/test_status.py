"""StatusService: Claim leases, ReportStatus's state machine, GetStatus, the token."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from herald.v1 import (
    common_pb2,
    delivery_pb2,
    notification_pb2,
    status_pb2,
    status_pb2_grpc,
)
from mesh import amqp
from tests.gateway.core.conftest import GRACE_SECONDS
from tests.gateway.core.helpers import (
    CLIENT,
    Queues,
    fail_every_channel,
    send_request,
)
from tests.gateway.core.peers import Peers
from tests.support.metrics import relay_passed
from tests.support.processes import ServiceProcess
from tests.support.waits import eventually

EMAIL, SMS = amqp.queue_name("email"), amqp.queue_name("sms")
GRANTED = status_pb2.CLAIM_RESULT_GRANTED
PENDING = common_pb2.NOTIFICATION_STATUS_PENDING
DELIVERED = common_pb2.NOTIFICATION_STATUS_DELIVERED
FAILED = common_pb2.NOTIFICATION_STATUS_FAILED
# The gateway's retry policy in these tests (tests/gateway/core/conftest.py).
BACKOFF_BASE = 0.5
EMAIL_ATTEMPTS = 3


async def accepted_job(notifications, queues: Queues, peers: Peers) -> delivery_pb2.DeliveryJob:
    """Sends a notification (route email → sms) and takes its first hop off the queue."""
    user = peers.users.add()
    await notifications.Send(send_request(user.id), metadata=CLIENT)
    [got] = await queues.wait_for(EMAIL, 1)
    return got.job


def claim(job: delivery_pb2.DeliveryJob, worker: str = "w1", lease: int = 60, **over):
    values: dict[str, Any] = dict(
        notification_id=job.notification_id,
        generation=job.generation,
        channel=job.channel,
        attempt=job.attempt,
        worker=worker,
        lease_seconds=lease,
    )
    values.update(over)
    return status_pb2.ClaimRequest(**values)


def attempt(job: delivery_pb2.DeliveryJob, outcome: int, **fields) -> delivery_pb2.DeliveryAttempt:
    values: dict[str, Any] = dict(
        id=str(uuid.uuid4()),
        notification_id=job.notification_id,
        channel=job.channel,
        provider="sandbox",
        outcome=outcome,
        attempt=job.attempt,
        generation=job.generation,
        worker="w1",
        duration=duration_pb2.Duration(nanos=250_000_000),
    )
    values.update(fields)
    message = delivery_pb2.DeliveryAttempt(**values)
    message.start_time.GetCurrentTime()
    return message


def report(job, status, the_attempt=None, **fields) -> status_pb2.ReportStatusRequest:
    return status_pb2.ReportStatusRequest(
        notification_id=job.notification_id, status=status, attempt=the_attempt, **fields
    )


def outcome(job, the_attempt, **fields) -> status_pb2.ReportStatusRequest:
    """A worker's report: what the attempt came to; the gateway decides what follows."""
    return status_pb2.ReportStatusRequest(
        notification_id=job.notification_id, attempt=the_attempt, channel=job.channel, **fields
    )


TRANSIENT = delivery_pb2.ATTEMPT_OUTCOME_TRANSIENT_FAILURE
DELIVERED_OUTCOME = delivery_pb2.ATTEMPT_OUTCOME_DELIVERED
PERMANENT = delivery_pb2.ATTEMPT_OUTCOME_PERMANENT_FAILURE


async def test_a_hop_is_claimed_once_and_a_second_claim_is_told_it_is_taken(
    notifications, statuses, queues: Queues, peers: Peers
) -> None:
    job = await accepted_job(notifications, queues, peers)

    first = await statuses.Claim(claim(job, "w1"))
    other = await statuses.Claim(claim(job, "w2"))
    renewed = await statuses.Claim(claim(job, "w1"))

    assert first.result == GRANTED and not first.takeover and first.status == PENDING
    assert other.result == status_pb2.CLAIM_RESULT_LEASED
    assert other.lease_expire_time.seconds >= first.lease_expire_time.seconds
    assert renewed.result == GRANTED and not renewed.takeover

    done = await statuses.ReportStatus(
        outcome(job, attempt(job, delivery_pb2.ATTEMPT_OUTCOME_DELIVERED))
    )
    assert done.changed and done.status == DELIVERED
    assert (await statuses.Claim(claim(job, "w2"))).result == status_pb2.CLAIM_RESULT_TAKEN
    later_hop = claim(job, "w3", attempt=2)
    assert (await statuses.Claim(later_hop)).result == status_pb2.CLAIM_RESULT_FINAL


async def test_concurrent_claims_grant_exactly_one(
    notifications, statuses, queues: Queues, peers: Peers
) -> None:
    job = await accepted_job(notifications, queues, peers)
    answers = await asyncio.gather(*(statuses.Claim(claim(job, f"w{i}")) for i in range(10)))
    assert sum(a.result == GRANTED for a in answers) == 1
    assert sum(a.result == status_pb2.CLAIM_RESULT_LEASED for a in answers) == 9


async def test_an_expired_lease_is_taken_over(
    notifications, statuses, queues: Queues, peers: Peers
) -> None:
    job = await accepted_job(notifications, queues, peers)
    assert (await statuses.Claim(claim(job, "dead", lease=1))).result == GRANTED

    answers: list[status_pb2.ClaimResponse] = []

    async def lease_expired() -> bool:  # until then "alive" is told the hop is leased
        answers.append(await statuses.Claim(claim(job, "alive")))
        return answers[-1].result == GRANTED

    await eventually(lease_expired, what="the dead worker's lease to run out")
    taken = answers[-1]
    assert {a.result for a in answers[:-1]} <= {status_pb2.CLAIM_RESULT_LEASED}
    assert taken.takeover
    assert (await statuses.Claim(claim(job, "dead"))).result == status_pb2.CLAIM_RESULT_LEASED


async def test_claims_of_unknown_or_stale_hops(
    notifications, statuses, queues: Queues, peers: Peers
) -> None:
    job = await accepted_job(notifications, queues, peers)
    unknown = claim(job, notification_id=str(uuid.uuid4()))
    assert (await statuses.Claim(unknown)).result == status_pb2.CLAIM_RESULT_UNKNOWN
    for stale in (
        claim(job, attempt=2),
        claim(job, generation=2),
        claim(job, channel=common_pb2.CHANNEL_SMS),
    ):
        assert (await statuses.Claim(stale)).result == status_pb2.CLAIM_RESULT_STALE


async def test_reporting_the_same_outcome_twice_changes_nothing(
    notifications, statuses, queues: Queues, peers: Peers
) -> None:
    job = await accepted_job(notifications, queues, peers)
    delivered = attempt(
        job, delivery_pb2.ATTEMPT_OUTCOME_DELIVERED, provider_message_id="sg-1", provider="sendgrid"
    )

    first = await statuses.ReportStatus(outcome(job, delivered))
    repeat = await statuses.ReportStatus(outcome(job, delivered))
    another = await statuses.ReportStatus(
        outcome(job, attempt(job, delivery_pb2.ATTEMPT_OUTCOME_DELIVERED))
    )

    assert (first.changed, repeat.changed, another.changed) == (True, False, False)
    status = await statuses.GetStatus(
        status_pb2.GetStatusRequest(notification_id=job.notification_id)
    )
    assert status.status == DELIVERED
    assert status.delivered_channel == common_pb2.CHANNEL_EMAIL
    assert status.delivered_provider == "sendgrid"
    stored = (
        await notifications.GetNotification(
            notification_pb2.GetNotificationRequest(id=job.notification_id)
        )
    ).notification
    assert [a.id for a in stored.attempts] == [delivered.id]
    assert stored.provider_message_id == "sg-1"
    assert stored.deliver_time.seconds > 0


async def test_illegal_moves_are_refused(
    notifications, statuses, queues: Queues, peers: Peers
) -> None:
    job = await accepted_job(notifications, queues, peers)
    await statuses.ReportStatus(outcome(job, attempt(job, delivery_pb2.ATTEMPT_OUTCOME_DELIVERED)))

    for status in (PENDING, FAILED, common_pb2.NOTIFICATION_STATUS_SUPPRESSED):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await statuses.ReportStatus(
                report(job, status, attempt(job, delivery_pb2.ATTEMPT_OUTCOME_PERMANENT_FAILURE))
            )
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "delivered" in str(caught.value.details())

    stored = (
        await notifications.GetNotification(
            notification_pb2.GetNotificationRequest(id=job.notification_id)
        )
    ).notification
    assert stored.status == DELIVERED and len(stored.attempts) == 1  # nothing appended


async def test_a_transient_failure_schedules_the_retry_through_a_delay_queue(
    notifications, statuses, queues: Queues, peers: Peers
) -> None:
    job = await accepted_job(notifications, queues, peers)
    await statuses.Claim(claim(job))
    failed = attempt(job, TRANSIENT, error="HTTP 503")

    answer = await statuses.ReportStatus(outcome(job, failed))

    assert answer.changed and answer.status == PENDING
    [got] = await queues.wait_for(EMAIL, 1)  # after the backoff, through a delay queue
    assert (got.job.attempt, got.job.channel, got.job.generation) == (2, job.channel, 1)
    assert got.job.last_error == "HTTP 503"
    assert got.job.correlation_id == job.correlation_id  # later hops keep it
    assert got.message.headers["x-correlation-id"] == job.correlation_id
    assert got.job.content == job.content and got.job.recipient == job.recipient
    # The old hop is over; the new one can be claimed.
    assert (await statuses.Claim(claim(job))).result == status_pb2.CLAIM_RESULT_TAKEN
    assert (await statuses.Claim(claim(got.job, "w2"))).result == GRANTED
    # The same report again (the worker's call was retried) changes nothing.
    again = await statuses.ReportStatus(outcome(job, failed))
    assert not again.changed
    # The gateway's decision is in the trail, with the backoff it chose.
    stored = (
        await notifications.GetNotification(
            notification_pb2.GetNotificationRequest(id=job.notification_id)
        )
    ).notification
    [trail] = stored.attempts
    detail = json.loads(trail.detail)
    assert detail["next_attempt"] == 2
    assert BACKOFF_BASE <= detail["retry_in_seconds"] <= BACKOFF_BASE * 1.5
    assert stored.status_reason == "HTTP 503"


async def test_a_worker_may_no_longer_choose_the_next_hop(
    notifications, statuses, queues: Queues, peers: Peers
) -> None:
    job = await accepted_job(notifications, queues, peers)
    failed = attempt(job, TRANSIENT, error="HTTP 503")
    for field, value in (
        ("next_job", job),
        ("next_delay", duration_pb2.Duration(seconds=1)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await statuses.ReportStatus(outcome(job, failed, **{field: value}))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in str(caught.value.details())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await statuses.ReportStatus(outcome(job, attempt(job, 0)))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "attempt.outcome" in str(caught.value.details())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await statuses.ReportStatus(outcome(job, failed, suppressed=True))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "suppressed" in str(caught.value.details())


async def test_retries_used_up_fall_back_to_the_next_channel(
    notifications, statuses, queues: Queues, peers: Peers
) -> None:
    job = await accepted_job(notifications, queues, peers)
    hop = job
    for number in range(1, EMAIL_ATTEMPTS + 1):
        await statuses.ReportStatus(outcome(hop, attempt(hop, TRANSIENT, error="HTTP 503")))
        if number < EMAIL_ATTEMPTS:
            [got] = await queues.wait_for(EMAIL, 1)
            hop = got.job
            assert hop.attempt == number + 1
    [sms] = await queues.wait_for(SMS, 1)
    assert (sms.job.channel, sms.job.route_index, sms.job.attempt) == (2, 1, 1)
    assert sms.job.last_error == f"HTTP 503 (gave up after {EMAIL_ATTEMPTS} tries)"


async def test_suppressed_everywhere_ends_suppressed_without_a_dead_letter(
    notifications, statuses, queues: Queues, peers: Peers
) -> None:
    job = await accepted_job(notifications, queues, peers)
    skipped = delivery_pb2.ATTEMPT_OUTCOME_SKIPPED
    off = attempt(job, skipped, error="email preference off")
    await statuses.ReportStatus(outcome(job, off, suppressed=True))
    [sms] = await queues.wait_for(SMS, 1)
    off = attempt(sms.job, skipped, error="sms preference off")
    final = await statuses.ReportStatus(outcome(sms.job, off, suppressed=True))
    assert final.status == common_pb2.NOTIFICATION_STATUS_SUPPRESSED
    status = await statuses.GetStatus(
        status_pb2.GetStatusRequest(notification_id=job.notification_id)
    )
    assert status.status_reason == "sms preference off"
    # A dead letter is confirmed by the broker before the report is answered: none came.
    assert await queues.take(amqp.FAILED_QUEUE) == []


async def test_the_same_report_sent_twice_at_once_moves_the_notification_once(
    notifications, statuses, queues: Queues, peers: Peers, gateway: ServiceProcess
) -> None:
    job = await accepted_job(notifications, queues, peers)
    failed = attempt(job, TRANSIENT, error="HTTP 503")
    request = outcome(job, failed)

    answers = await asyncio.gather(*(statuses.ReportStatus(request) for _ in range(4)))

    assert sorted(a.changed for a in answers) == [False, False, False, True]
    [got] = await queues.wait_for(EMAIL, 1)
    assert got.job.attempt == 2
    await relay_passed(gateway, grace=GRACE_SECONDS)  # nor left for the relay to publish
    assert await queues.take(EMAIL) == []  # the next hop was published once
    stored = (
        await notifications.GetNotification(
            notification_pb2.GetNotificationRequest(id=job.notification_id)
        )
    ).notification
    assert [a.error for a in stored.attempts] == ["HTTP 503"]


async def test_concurrent_deliveries_of_one_notification_count_once(
    notifications, statuses, queues: Queues, peers: Peers
) -> None:
    """The same DELIVERED report four times at once, and another attempt's beside them:
    one moves the notification, one trail entry, the hop's claim closed."""
    job = await accepted_job(notifications, queues, peers)
    assert (await statuses.Claim(claim(job, "w1"))).result == GRANTED
    delivered = attempt(job, delivery_pb2.ATTEMPT_OUTCOME_DELIVERED, provider_message_id="m-1")
    other = attempt(job, delivery_pb2.ATTEMPT_OUTCOME_DELIVERED, provider_message_id="m-2")
    requests = [outcome(job, delivered)] * 4 + [outcome(job, other)]

    answers = await asyncio.gather(*(statuses.ReportStatus(r) for r in requests))

    assert sorted(a.changed for a in answers) == [False] * 4 + [True]
    assert all(a.status == DELIVERED for a in answers)
    stored = (
        await notifications.GetNotification(
            notification_pb2.GetNotificationRequest(id=job.notification_id)
        )
    ).notification
    [recorded] = stored.attempts
    assert recorded.id in (delivered.id, other.id)
    assert stored.provider_message_id == recorded.provider_message_id
    assert stored.status == DELIVERED and stored.deliver_time.seconds > 0
    assert (await statuses.Claim(claim(job, "w2"))).result == status_pb2.CLAIM_RESULT_TAKEN


async def test_fallback_to_the_next_channel_then_failure_then_manual_retry(
    notifications, statuses, queues: Queues, peers: Peers, gateway: ServiceProcess
) -> None:
    job = await accepted_job(notifications, queues, peers)
    email_failed = attempt(job, PERMANENT, error="bounced")

    await statuses.ReportStatus(outcome(job, email_failed))

    [sms] = await queues.wait_for(SMS, 1)
    assert (sms.job.channel, sms.job.route_index, sms.job.attempt) == (2, 1, 1)
    assert sms.message.message_id == f"{job.notification_id}:1:sms:1"
    sms_failed = attempt(sms.job, PERMANENT, error="twilio 21211")
    final = await statuses.ReportStatus(outcome(sms.job, sms_failed))
    assert final.status == FAILED
    # The failure put the last job on failed.queue (the gateway's outbox, not the worker).
    [dead] = await queues.wait_for(amqp.FAILED_QUEUE, 1)
    assert (dead.job.notification_id, dead.job.channel) == (job.notification_id, 2)
    assert dead.job.last_error == "twilio 21211"
    again = await statuses.ReportStatus(outcome(sms.job, sms_failed))
    assert again.changed is False
    await relay_passed(gateway, grace=GRACE_SECONDS)  # nor left for the relay to publish
    assert await queues.take(amqp.FAILED_QUEUE) == []  # ... dead-letters nothing more

    retried = (
        await notifications.Retry(
            notification_pb2.RetryRequest(
                id=job.notification_id, requested_by="ops@acme", reason="fixed"
            ),
            metadata=CLIENT,
        )
    ).notification

    assert retried.status == PENDING and retried.status_reason == ""
    assert [(r.requested_by, r.reason, r.generation) for r in retried.retries] == [
        ("ops@acme", "fixed", 2)
    ]
    assert [a.error for a in retried.attempts] == ["bounced", "twilio 21211"]  # trail kept
    [again] = await queues.wait_for(EMAIL, 1)
    assert (again.job.generation, again.job.channel, again.job.attempt) == (2, 1, 1)
    assert again.job.route_index == 0 and again.job.last_error == ""
    # Hops of the old generation are stale now.
    assert (await statuses.Claim(claim(sms.job))).result == status_pb2.CLAIM_RESULT_TAKEN
    assert (await statuses.Claim(claim(job, attempt=2))).result == status_pb2.CLAIM_RESULT_STALE
    assert (await statuses.Claim(claim(again.job))).result == GRANTED


async def test_retry_needs_a_failed_notification_and_defaults_who_asked(
    notifications, statuses, queues: Queues, peers: Peers
) -> None:
    job = await accepted_job(notifications, queues, peers)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notifications.Retry(notification_pb2.RetryRequest(id=job.notification_id))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "pending" in str(caught.value.details())

    await fail_every_channel(notifications, statuses, job.notification_id)
    retried = (
        await notifications.Retry(
            notification_pb2.RetryRequest(id=job.notification_id), metadata=CLIENT
        )
    ).notification
    assert retried.retries[0].requested_by == "service:client-a"  # the caller's label

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notifications.Retry(notification_pb2.RetryRequest(id=str(uuid.uuid4())))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_stale_and_malformed_moves_are_refused(
    notifications, statuses, queues: Queues, peers: Peers
) -> None:
    job = await accepted_job(notifications, queues, peers)
    await statuses.ReportStatus(outcome(job, attempt(job, TRANSIENT)))
    old = attempt(job, PERMANENT)  # about attempt 1, which is over
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await statuses.ReportStatus(outcome(job, old))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "stale" in str(caught.value.details())

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await statuses.ReportStatus(report(job, common_pb2.NOTIFICATION_STATUS_UNSPECIFIED))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await statuses.ReportStatus(
            status_pb2.ReportStatusRequest(notification_id=str(uuid.uuid4()), status=FAILED)
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_late_delivery_from_an_older_hop_still_counts(
    notifications, statuses, queues: Queues, peers: Peers
) -> None:
    job = await accepted_job(notifications, queues, peers)
    await statuses.ReportStatus(outcome(job, attempt(job, TRANSIENT)))
    late = attempt(job, delivery_pb2.ATTEMPT_OUTCOME_DELIVERED)  # attempt 1 delivered after all
    answer = await statuses.ReportStatus(outcome(job, late))
    assert answer.changed and answer.status == DELIVERED


async def test_the_seed_payload_is_kept_in_the_trail_and_decides_nothing(
    notifications, statuses, queues: Queues, peers: Peers
) -> None:
    """An external report (status, no attempt) on a pending notification: a REPORTED
    entry in the trail with what it said; the status, the hop and its claim go on, so a
    forged `delivered` cannot stop the real delivery, nor a `failed` skip the fallback."""
    job = await accepted_job(notifications, queues, peers)
    when = timestamp_pb2.Timestamp(seconds=1_800_000_000)
    for status, error in ((FAILED, "mailbox full"), (DELIVERED, "")):
        answer = await statuses.ReportStatus(
            status_pb2.ReportStatusRequest(
                notification_id=job.notification_id,
                status=status,
                error=error,
                channel=common_pb2.CHANNEL_EMAIL,
                timestamp=when,
            )
        )
        assert answer.changed and answer.status == PENDING

    stored = (
        await notifications.GetNotification(
            notification_pb2.GetNotificationRequest(id=job.notification_id)
        )
    ).notification
    assert stored.status == PENDING and stored.status_reason == ""
    assert [a.outcome for a in stored.attempts] == [delivery_pb2.ATTEMPT_OUTCOME_REPORTED] * 2
    failed, delivered = stored.attempts
    assert failed.error == "mailbox full" and failed.start_time == when
    assert json.loads(failed.detail)["reported_status"] == "failed"
    assert json.loads(delivered.detail)["reporter"] == "service"

    # The worker's claim is granted and its delivery is what counts.
    assert (await statuses.Claim(claim(job))).result == GRANTED
    done = await statuses.ReportStatus(outcome(job, attempt(job, DELIVERED_OUTCOME)))
    assert done.changed and done.status == DELIVERED
    # Once final, a report of another status is refused; the same one is a repeat.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await statuses.ReportStatus(
            status_pb2.ReportStatusRequest(notification_id=job.notification_id, status=FAILED)
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    repeat = await statuses.ReportStatus(
        status_pb2.ReportStatusRequest(notification_id=job.notification_id, status=DELIVERED)
    )
    assert not repeat.changed


async def test_a_pending_report_without_next_job_only_adds_to_the_trail(
    notifications, statuses, queues: Queues, peers: Peers
) -> None:
    job = await accepted_job(notifications, queues, peers)
    note = attempt(job, delivery_pb2.ATTEMPT_OUTCOME_TRANSIENT_FAILURE, provider="sendgrid")
    answer = await statuses.ReportStatus(report(job, PENDING, note))
    assert answer.changed and answer.status == PENDING
    assert (await statuses.Claim(claim(job))).result == GRANTED  # the hop goes on


async def test_only_callers_with_the_service_token_may_call(
    gateway: ServiceProcess, notifications, queues: Queues, peers: Peers
) -> None:
    job = await accepted_job(notifications, queues, peers)
    async with grpc.aio.insecure_channel(gateway.address) as bare:
        stub = status_pb2_grpc.StatusServiceStub(bare)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ReportStatus(report(job, DELIVERED))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ReportStatus(
                report(job, DELIVERED), metadata=(("authorization", "Bearer nope"),)
            )
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Claim(claim(job))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    status = await notifications_status(gateway, job)
    assert status == PENDING


async def notifications_status(gateway: ServiceProcess, job) -> int:
    channel = gateway.channel()
    try:
        stub = status_pb2_grpc.StatusServiceStub(channel)
        answer = await stub.GetStatus(
            status_pb2.GetStatusRequest(notification_id=job.notification_id)
        )
        return answer.status
    finally:
        await channel.close()


async def test_batch_claim_and_batch_report_answer_each_item_as_its_own_call_would(
    notifications, statuses, queues: Queues, peers: Peers
) -> None:
    job = await accepted_job(notifications, queues, peers)
    unknown = claim(job, notification_id=str(uuid.uuid4()))

    claims = await statuses.BatchClaim(
        status_pb2.BatchClaimRequest(requests=[claim(job), unknown, claim(job, worker="")])
    )

    granted, not_there, invalid = claims.results
    assert [r.index for r in claims.results] == [0, 1, 2]
    assert granted.claimed.result == GRANTED
    assert not_there.claimed.result == status_pb2.CLAIM_RESULT_UNKNOWN
    assert invalid.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert [v.field for v in invalid.error.field_violations] == ["worker"]

    delivered = attempt(job, delivery_pb2.ATTEMPT_OUTCOME_DELIVERED)
    reports = await statuses.BatchReportStatus(
        status_pb2.BatchReportStatusRequest(
            requests=[
                outcome(job, delivered),
                outcome(job, delivered),
                status_pb2.ReportStatusRequest(notification_id=str(uuid.uuid4()), status=FAILED),
            ]
        )
    )

    first, again, missing = reports.results
    assert sorted([first.reported.changed, again.reported.changed]) == [False, True]
    assert first.reported.status == again.reported.status == DELIVERED
    assert missing.error.code == grpc.StatusCode.NOT_FOUND.value[0]
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await statuses.BatchClaim(status_pb2.BatchClaimRequest())
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_awaiting_a_receipt_this_gateway_cannot_verify_is_delivered_at_once(
    notifications, statuses, queues: Queues, peers: Peers
) -> None:
    """A worker says the provider will call back, but this gateway has no key for that
    provider's receipts: none could ever be taken, so the delivery stands as today."""
    job = await accepted_job(notifications, queues, peers)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await statuses.ReportStatus(
            outcome(job, attempt(job, TRANSIENT, error="HTTP 503"), awaits_receipt=True)
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "awaits_receipt" in str(caught.value.details())
    answer = await statuses.ReportStatus(
        outcome(job, attempt(job, DELIVERED_OUTCOME), awaits_receipt=True)
    )
    assert answer.status == DELIVERED
