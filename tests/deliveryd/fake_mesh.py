"""A stand-in gateway (StatusService) and userd (UserService) for the worker's tests.

A real grpc.aio server in the test's loop, implementing the claim/report protocol of
status.proto: claims are leases per hop; a report closes the hop's claim, appends the
attempt (idempotent on its id) and, for PENDING with a next job, publishes that job as
the gateway's outbox would (through the channel's delay queue when delayed).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import grpc
from aiohttp import web

from herald.v1 import (
    common_pb2,
    delivery_pb2,
    status_pb2,
    status_pb2_grpc,
    user_pb2,
    user_pb2_grpc,
)
from mesh import amqp
from tests.fakes.base import FakeServer

CHANNEL_KEYS = {
    common_pb2.CHANNEL_EMAIL: "email",
    common_pb2.CHANNEL_SMS: "sms",
    common_pb2.CHANNEL_PUSH: "push",
}
HopKey = tuple[int, int, int]


@dataclass
class Lease:
    worker: str
    until: float
    done: bool = False


@dataclass
class Record:
    job: delivery_pb2.DeliveryJob
    status: common_pb2.NotificationStatus.ValueType = common_pb2.NOTIFICATION_STATUS_PENDING
    error: str = ""
    attempts: list[delivery_pb2.DeliveryAttempt] = field(default_factory=list)
    leases: dict[HopKey, Lease] = field(default_factory=dict)
    reports: list[status_pb2.ReportStatusRequest] = field(default_factory=list)


def hop_of(job: delivery_pb2.DeliveryJob) -> HopKey:
    return (job.generation, job.channel, job.attempt)


async def publish(
    exchange: aio_pika.abc.AbstractExchange,
    job: delivery_pb2.DeliveryJob,
    delay: float = 0.0,
    *,
    dead: bool = False,
) -> None:
    """Publishes a job as the gateway does: to its channel, through a delay queue, or
    (`dead`: the notification failed) to failed.queue."""
    channel = CHANNEL_KEYS[job.channel]
    routing_key = amqp.FAILED_KEY if dead else channel
    expiration = None
    if delay > 0 and not dead:
        routing_key = amqp.delay_queue_name(
            channel, amqp.pick_delay_tier(delay, amqp.DEFAULT_DELAY_TIERS)
        )
        expiration = delay
    await exchange.publish(
        aio_pika.Message(
            job.SerializeToString(),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            priority=int(job.priority),
            expiration=expiration,
            headers={"x-correlation-id": job.correlation_id},
        ),
        routing_key=routing_key,
    )


class FakeStatus(status_pb2_grpc.StatusServiceServicer):
    """The claim/report protocol, in memory."""

    def __init__(
        self,
        republish: Callable[[delivery_pb2.DeliveryJob, float], Awaitable[None]],
        dead_letter: Callable[[delivery_pb2.DeliveryJob], Awaitable[None]],
    ) -> None:
        self.records: dict[str, Record] = {}
        self.claims: list[tuple[status_pb2.ClaimRequest, int]] = []
        self.down = False
        self.fail_reports = 0
        # Every report is refused with this code (None: reports are taken).
        self.refuse_reports: grpc.StatusCode | None = None
        self._republish = republish
        self._dead_letter = dead_letter

    def add(self, job: delivery_pb2.DeliveryJob) -> None:
        self.records[job.notification_id] = Record(job=job)

    def reports(self, notification_id: str) -> list[status_pb2.ReportStatusRequest]:
        return self.records[notification_id].reports

    def status(self, notification_id: str) -> int:
        return self.records[notification_id].status

    async def Claim(
        self, request: status_pb2.ClaimRequest, context: Any
    ) -> status_pb2.ClaimResponse:
        if self.down:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "gateway down")
        answer = self._claim(request)
        self.claims.append((request, answer.result))
        return answer

    def _claim(self, request: status_pb2.ClaimRequest) -> status_pb2.ClaimResponse:
        record = self.records.get(request.notification_id)
        if record is None:
            return status_pb2.ClaimResponse(result=status_pb2.CLAIM_RESULT_UNKNOWN)
        if record.status != common_pb2.NOTIFICATION_STATUS_PENDING:
            return status_pb2.ClaimResponse(
                result=status_pb2.CLAIM_RESULT_FINAL, status=record.status
            )
        hop = (request.generation, request.channel, request.attempt)
        lease = record.leases.get(hop)
        if lease is not None and lease.done:
            return status_pb2.ClaimResponse(result=status_pb2.CLAIM_RESULT_TAKEN)
        if hop != hop_of(record.job):
            return status_pb2.ClaimResponse(result=status_pb2.CLAIM_RESULT_STALE)
        now = time.time()
        answer = status_pb2.ClaimResponse(status=record.status)
        if lease is not None and lease.until > now and lease.worker != request.worker:
            answer.result = status_pb2.CLAIM_RESULT_LEASED
            answer.lease_expire_time.FromSeconds(int(lease.until))
            answer.lease_expire_time.nanos = int((lease.until % 1) * 1e9)
            return answer
        answer.takeover = lease is not None and lease.worker != request.worker
        until = now + request.lease_seconds
        record.leases[hop] = Lease(request.worker, until)
        answer.result = status_pb2.CLAIM_RESULT_GRANTED
        answer.lease_expire_time.FromSeconds(int(until))
        return answer

    async def ReportStatus(
        self, request: status_pb2.ReportStatusRequest, context: Any
    ) -> status_pb2.ReportStatusResponse:
        if self.down:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "gateway down")
        if self.fail_reports:
            self.fail_reports -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "gateway hiccup")
        if self.refuse_reports is not None:
            await context.abort(self.refuse_reports, "report refused")
        record = self.records[request.notification_id]
        if any(a.id == request.attempt.id for a in record.attempts):
            return status_pb2.ReportStatusResponse(status=record.status, changed=False)
        record.attempts.append(request.attempt)
        record.reports.append(request)
        attempt = request.attempt
        lease = record.leases.get((attempt.generation, request.channel, attempt.attempt))
        if lease is not None:
            lease.done = True
        if request.status == common_pb2.NOTIFICATION_STATUS_PENDING and request.HasField(
            "next_job"
        ):
            record.job = request.next_job
            await self._republish(
                request.next_job, request.next_delay.ToTimedelta().total_seconds()
            )
        else:
            record.status = request.status
            record.error = request.error
            if request.status == common_pb2.NOTIFICATION_STATUS_FAILED:
                dead = delivery_pb2.DeliveryJob()
                dead.CopyFrom(record.job)
                dead.last_error = request.error
                await self._dead_letter(dead)
        return status_pb2.ReportStatusResponse(status=record.status, changed=True)


class FakeUsers(user_pb2_grpc.UserServiceServicer):
    """GetUser and RemovePushTarget over a dict of users."""

    def __init__(self) -> None:
        self.users: dict[str, user_pb2.User] = {}
        self.removed: list[user_pb2.RemovePushTargetRequest] = []
        self.down = False
        self.get_calls = 0

    async def GetUser(
        self, request: user_pb2.GetUserRequest, context: Any
    ) -> user_pb2.GetUserResponse:
        self.get_calls += 1
        if self.down:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "userd down")
        user = self.users.get(request.id)
        if user is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"user {request.id} not found")
        return user_pb2.GetUserResponse(user=user)

    async def RemovePushTarget(
        self, request: user_pb2.RemovePushTargetRequest, context: Any
    ) -> user_pb2.RemovePushTargetResponse:
        self.removed.append(request)
        user = self.users.get(request.user_id)
        if user is None:
            return user_pb2.RemovePushTargetResponse(removed=False)
        keep = [
            t
            for t in user.push_targets
            if t.id != request.target_id and (not request.token or t.token != request.token)
        ]
        removed = len(keep) != len(user.push_targets)
        del user.push_targets[:]
        user.push_targets.extend(keep)
        return user_pb2.RemovePushTargetResponse(user=user, removed=removed)


class AlertWebhook(FakeServer):
    """Receives the admin alerts."""

    name = "webhook"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/alerts", self._alert)

    async def _alert(self, request: web.Request) -> web.Response:
        self.deliveries.append(self.recorded(request).json)
        return web.json_response({"ok": True})


@dataclass
class FakeMesh:
    """The fake gateway and userd on one port."""

    status: FakeStatus
    users: FakeUsers
    server: grpc.aio.Server
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @classmethod
    async def start(cls, exchange: aio_pika.abc.AbstractExchange) -> FakeMesh:
        async def republish(job: delivery_pb2.DeliveryJob, delay: float) -> None:
            await publish(exchange, job, delay)

        async def dead_letter(job: delivery_pb2.DeliveryJob) -> None:
            await publish(exchange, job, dead=True)

        status, users = FakeStatus(republish, dead_letter), FakeUsers()
        server = grpc.aio.server()
        status_pb2_grpc.add_StatusServiceServicer_to_server(status, server)
        user_pb2_grpc.add_UserServiceServicer_to_server(users, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return cls(status, users, server, port)

    async def stop(self) -> None:
        await self.server.stop(None)
