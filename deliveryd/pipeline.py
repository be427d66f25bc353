"""One delivery job, start to finish: claim → re-check the user → send → report.

The worker reports only what the attempt came to (delivered, transient or permanent
failure, skipped, or suppressed by the user's choices); the gateway decides what follows
(retry, next channel, failed) and publishes the next hop itself.

The answer is a `Verdict` telling the consumer what to do with the message: the message is
acknowledged only once the outcome is recorded through StatusService. A job whose claim
says it is done, final, stale or unknown is acknowledged without sending; one leased by
another worker comes back after that lease expires (the consumer re-publishes it through a
delay queue). If the report cannot be made, the message goes back to the queue and the
report is kept, so that the same worker re-reports rather than re-sends when it returns.
"""

from __future__ import annotations

import asyncio
import enum
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import orjson
import structlog
from google.protobuf.message import DecodeError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_exponential_jitter

from deliveryd import metrics
from deliveryd.audience import Audience, resolve
from deliveryd.chain import Outcome
from deliveryd.channels import ChannelSender, HopResult, skipped
from deliveryd.clients import StatusClient, UserClient
from deliveryd.deadline import DEADLINE_PASSED, deadline_passed
from deliveryd.settings import SEND_SHARE_OF_LEASE
from herald.v1 import common_pb2, delivery_pb2, status_pb2
from mesh.logging import bind_correlation_id

log = structlog.get_logger(__name__)

OUTCOMES = {
    Outcome.DELIVERED: delivery_pb2.ATTEMPT_OUTCOME_DELIVERED,
    Outcome.TRANSIENT: delivery_pb2.ATTEMPT_OUTCOME_TRANSIENT_FAILURE,
    Outcome.PERMANENT: delivery_pb2.ATTEMPT_OUTCOME_PERMANENT_FAILURE,
    Outcome.SKIPPED: delivery_pb2.ATTEMPT_OUTCOME_SKIPPED,
}
RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
    }
)
# A refused report whose job is settled anyway: the move is stale or illegal for the
# notification's current state (another copy won), or the notification is gone.
SETTLED_ELSEWHERE = frozenset({grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND})
# The gateway keeps this much of an attempt's detail.
MAX_DETAIL_CHARS = 4000
# Reports kept for re-reporting after the gateway was unreachable (per process).
MAX_UNREPORTED = 10_000
JobKey = tuple[str, int, int, int]


class Action(enum.Enum):
    ACK = "ack"
    DEAD_LETTER = "dead_letter"
    REQUEUE = "requeue"
    DEFER = "defer"


@dataclass(frozen=True)
class Verdict:
    action: Action
    # For DEFER: seconds before the job comes back.
    delay: float = 0.0
    reason: str = ""


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() in RETRYABLE_CODES


def _detail(parts: dict[str, Any]) -> str:
    text = orjson.dumps(parts).decode()
    if len(text) <= MAX_DETAIL_CHARS:
        return text
    # Still valid JSON when too long: the small fields stay, the bulky ones are dropped.
    small = {k: v for k, v in parts.items() if len(orjson.dumps(v)) <= 200}
    small["truncated"] = sorted(set(parts) - set(small))
    return orjson.dumps(small).decode()[:MAX_DETAIL_CHARS]


@dataclass(frozen=True)
class Granted:
    """The claim is ours; `suppressed` says why the contact point must not be sent to."""

    suppressed: str = ""


def _contact(job: delivery_pb2.DeliveryJob) -> str:
    """The contact point the hop would send to, for the suppression list ("" for push)."""
    if job.channel == common_pb2.CHANNEL_EMAIL:
        return job.recipient.email
    if job.channel == common_pb2.CHANNEL_SMS:
        return job.recipient.phone
    return ""


class Pipeline:
    """Runs jobs of one channel; shared by every message of the consumer."""

    def __init__(
        self,
        *,
        sender: ChannelSender,
        status: StatusClient,
        users: UserClient,
        worker: str,
        lease_seconds: int,
        rpc_timeout: float,
        report_retry_seconds: float,
    ) -> None:
        self.sender = sender
        self._status = status
        self._users = users
        self._worker = worker
        self._lease_seconds = lease_seconds
        self._rpc_timeout = rpc_timeout
        self._report_retry_seconds = report_retry_seconds
        self._unreported: OrderedDict[JobKey, status_pb2.ReportStatusRequest] = OrderedDict()
        self._in_flight: dict[JobKey, asyncio.Event] = {}

    async def handle(self, body: bytes, correlation_id: str = "") -> Verdict:
        """Processes one message body (a serialized DeliveryJob)."""
        try:
            job = delivery_pb2.DeliveryJob.FromString(body)
        except DecodeError:
            job = delivery_pb2.DeliveryJob()
        if not job.notification_id:
            log.error("unreadable delivery job: dead-lettered", size=len(body))
            return self._count(Verdict(Action.DEAD_LETTER, reason="unreadable"))
        bind_correlation_id(job.correlation_id or correlation_id or job.notification_id)
        key: JobKey = (job.notification_id, job.generation, job.channel, job.attempt)
        # A copy of a job this process is working on (the broker delivered it twice): the
        # claim would grant it again to this same worker, so it waits for the first copy
        # and then claims, which answers that the hop is taken.
        while (running := self._in_flight.get(key)) is not None:
            await running.wait()
        self._in_flight[key] = done = asyncio.Event()
        try:
            return await self._handle(job, key)
        finally:
            del self._in_flight[key]
            done.set()

    async def _handle(self, job: delivery_pb2.DeliveryJob, key: JobKey) -> Verdict:
        kept = self._unreported.pop(key, None)
        if kept is not None:
            # Sent before, report lost: report again, never send again.
            return self._count(await self._report(job, kept))
        verdict = await self._claim(job)
        if isinstance(verdict, Verdict):
            return self._count(verdict)
        deadline = time.monotonic() + self._lease_seconds * SEND_SHARE_OF_LEASE
        audience = await resolve(
            users=self._users, recipient=job.recipient, timeout=self._rpc_timeout
        )
        # Named before the send, which carries it: the provider's receipts come back with it.
        attempt_id = str(uuid.uuid4())
        if verdict.suppressed:
            # The contact point is on the suppression list: no provider is called.
            hop = skipped(f"contact point suppressed ({verdict.suppressed})")
        else:
            hop = await self._send(job, audience, deadline, attempt_id)
        verdict = await self._report(job, self._report_request(job, audience, hop, attempt_id))
        log.info(
            "hop done",
            notification_id=job.notification_id,
            channel=self.sender.name,
            attempt=job.attempt,
            outcome=hop.outcome.value,
            provider=hop.provider,
            then=verdict.reason,
            error=hop.error or None,
            ms=round(hop.duration * 1000, 1),
        )
        return self._count(verdict)

    async def _claim(self, job: delivery_pb2.DeliveryJob) -> Verdict | Granted:
        """Granted when the job is ours to work; else what to do with the message."""
        request = status_pb2.ClaimRequest(
            notification_id=job.notification_id,
            generation=job.generation,
            channel=job.channel,
            attempt=job.attempt,
            worker=self._worker,
            lease_seconds=self._lease_seconds,
            contact=_contact(job),
        )
        try:
            claim = await self._status.Claim(request, timeout=self._rpc_timeout)
        except grpc.aio.AioRpcError as exc:
            log.warning("claim failed", code=exc.code().name, details=exc.details())
            return Verdict(Action.REQUEUE, reason="claim failed")
        result = claim.result
        if result == status_pb2.CLAIM_RESULT_GRANTED:
            if claim.takeover:
                log.warning(
                    "took over a job from an expired lease", notification_id=job.notification_id
                )
            return Granted(suppressed=claim.suppressed)
        name = status_pb2.ClaimResult.Name(result).removeprefix("CLAIM_RESULT_").lower()
        if result == status_pb2.CLAIM_RESULT_LEASED:
            expires = claim.lease_expire_time.ToDatetime(tzinfo=UTC)
            wait = (
                (expires - datetime.now(UTC)).total_seconds()
                if claim.lease_expire_time.seconds
                else 0
            )
            delay = max(wait, 0.0) + 0.5
            log.info("job leased by another worker: deferred", seconds=round(delay, 2))
            return Verdict(Action.DEFER, delay=delay, reason=name)
        if result in (
            status_pb2.CLAIM_RESULT_TAKEN,
            status_pb2.CLAIM_RESULT_FINAL,
            status_pb2.CLAIM_RESULT_STALE,
            status_pb2.CLAIM_RESULT_UNKNOWN,
        ):
            log.info(
                "job not ours to send: dropped", claim=name, notification_id=job.notification_id
            )
            return Verdict(Action.ACK, reason=name)
        log.warning("unexpected claim answer", claim=result)
        return Verdict(Action.REQUEUE, reason="claim unspecified")

    async def _send(
        self, job: delivery_pb2.DeliveryJob, audience: Audience, deadline: float, attempt_id: str
    ) -> HopResult:
        name = self.sender.name
        if deadline_passed(job, datetime.now(UTC)):
            # Too late to send at all: each later channel's hop ends here too, the last FAILED.
            return skipped(DEADLINE_PASSED)
        if not audience.exists:
            return skipped("the user no longer exists", suppressed=True)
        if not audience.allows(job.channel):
            return skipped(f"{name} preference off", suppressed=True)
        missing = self.sender.missing(job, audience)
        if missing:
            return skipped(missing)
        return await self.sender.deliver(job, audience, deadline, attempt_id=attempt_id)

    def _report_request(
        self,
        job: delivery_pb2.DeliveryJob,
        audience: Audience,
        hop: HopResult,
        attempt_id: str,
    ) -> status_pb2.ReportStatusRequest:
        """What the attempt came to; the status is the gateway's to decide."""
        attempt = delivery_pb2.DeliveryAttempt(
            id=attempt_id,
            notification_id=job.notification_id,
            channel=job.channel,
            provider=hop.provider,
            outcome=OUTCOMES[hop.outcome],
            provider_message_id=hop.message_id,
            error=hop.error,
            attempt=job.attempt,
            generation=job.generation,
            worker=self._worker,
            detail=_detail({"recipient": audience.source, **hop.detail}),
        )
        attempt.duration.FromTimedelta(timedelta(seconds=hop.duration))
        attempt.start_time.FromDatetime(hop.start)
        request = status_pb2.ReportStatusRequest(
            notification_id=job.notification_id,
            attempt=attempt,
            channel=job.channel,
            error=hop.error,
            suppressed=hop.suppressed,
            awaits_receipt=hop.awaits_receipt,
        )
        request.timestamp.GetCurrentTime()
        return request

    async def _report(
        self, job: delivery_pb2.DeliveryJob, request: status_pb2.ReportStatusRequest
    ) -> Verdict:
        """Reports (retrying while the gateway is unreachable); then the message's verdict."""
        try:
            answer = await self._send_report(request)
        except grpc.aio.AioRpcError as exc:
            if _retryable(exc):
                log.warning("report failed: requeued, kept to re-report", code=exc.code().name)
                self._keep(job, request)
                return Verdict(Action.REQUEUE, reason="report failed")
            log.error("gateway refused the report", code=exc.code().name, details=exc.details())
            if exc.code() in SETTLED_ELSEWHERE:
                return Verdict(Action.ACK, reason="report refused")
            # Refused for a reason that is not the notification's state (a bad token, a
            # bug): keep the job visible on failed.queue rather than drop it.
            return Verdict(Action.DEAD_LETTER, reason="report refused")
        if answer.status == common_pb2.NOTIFICATION_STATUS_FAILED:
            # The gateway put the job on failed.queue (and alerts.queue, whose consumer
            # alerts when it is critical) in the same transaction as the failed status.
            return Verdict(Action.ACK, reason="failed")
        return Verdict(Action.ACK, reason=common_pb2.NotificationStatus.Name(answer.status))

    async def _send_report(
        self, request: status_pb2.ReportStatusRequest
    ) -> status_pb2.ReportStatusResponse:
        """ReportStatus, retried with backoff for up to report_retry_seconds while the
        gateway is unreachable. The first call goes bare: tenacity's machinery costs more
        CPU than the call itself, so it is set up only once a call has failed."""
        try:
            return await self._status.ReportStatus(request, timeout=self._rpc_timeout)
        except grpc.aio.AioRpcError as exc:
            if not _retryable(exc):
                raise
        retrying = AsyncRetrying(
            stop=stop_after_delay(self._report_retry_seconds),
            wait=wait_exponential_jitter(multiplier=0.2, max=5.0, jitter=0.2),
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._status.ReportStatus(request, timeout=self._rpc_timeout)
        raise AssertionError("tenacity either returns or re-raises")

    def _keep(self, job: delivery_pb2.DeliveryJob, request: status_pb2.ReportStatusRequest) -> None:
        key: JobKey = (job.notification_id, job.generation, job.channel, job.attempt)
        self._unreported[key] = request
        while len(self._unreported) > MAX_UNREPORTED:
            self._unreported.popitem(last=False)

    def _count(self, verdict: Verdict) -> Verdict:
        metrics.JOBS.labels(self.sender.name, verdict.reason or verdict.action.value).inc()
        return verdict
