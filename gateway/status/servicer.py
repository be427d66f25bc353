"""herald.v1.StatusService over gRPC: protobuf in, a `Statuses` call, protobuf out.

Only callers with the internal service token get here (mesh's token interceptor).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from gateway.lifecycle import Hop
from gateway.status.claims import ClaimAsk, ClaimOutcome, ClaimResult, Claims
from gateway.status.reports import parse_id, parse_report
from gateway.status.service import MAX_BATCH, ReportOutcome, Statuses
from gateway.wire import STATUS_NUMBERS
from herald.v1 import status_pb2, status_pb2_grpc
from mesh.item_errors import answer_each, indexed, parse_each
from mesh.runtime import GrpcService

SERVICE_NAME = status_pb2.DESCRIPTOR.services_by_name["StatusService"].full_name
CLAIM_RESULTS = {
    ClaimResult.GRANTED: status_pb2.CLAIM_RESULT_GRANTED,
    ClaimResult.TAKEN: status_pb2.CLAIM_RESULT_TAKEN,
    ClaimResult.FINAL: status_pb2.CLAIM_RESULT_FINAL,
    ClaimResult.UNKNOWN: status_pb2.CLAIM_RESULT_UNKNOWN,
    ClaimResult.LEASED: status_pb2.CLAIM_RESULT_LEASED,
    ClaimResult.STALE: status_pb2.CLAIM_RESULT_STALE,
}

Context = grpc.aio.ServicerContext[Any, Any]


def _timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp


def claim_ask(request: status_pb2.ClaimRequest) -> ClaimAsk:
    return ClaimAsk(
        notification_id=parse_id(request.notification_id, "notification_id"),
        hop=Hop(request.generation, request.channel, request.attempt),
        worker=request.worker,
        lease_seconds=request.lease_seconds,
        contact=request.contact[:320],
    )


def claim_response(outcome: ClaimOutcome) -> status_pb2.ClaimResponse:
    return status_pb2.ClaimResponse(
        result=CLAIM_RESULTS[outcome.result],
        status=STATUS_NUMBERS.get(outcome.status or "", 0),  # type: ignore[arg-type]
        takeover=outcome.takeover,
        lease_expire_time=_timestamp(outcome.lease_until),
        suppressed=outcome.suppressed,
    )


def report_response(outcome: ReportOutcome) -> status_pb2.ReportStatusResponse:
    return status_pb2.ReportStatusResponse(
        status=STATUS_NUMBERS[outcome.status],
        changed=outcome.changed,
    )


class StatusServicer(status_pb2_grpc.StatusServiceServicer):
    """Errors are `mesh.errors` exceptions, mapped to status codes by the interceptor."""

    def __init__(self, statuses: Statuses, claims: Claims) -> None:
        self._statuses = statuses
        self._claims = claims

    async def Claim(
        self, request: status_pb2.ClaimRequest, context: Context
    ) -> status_pb2.ClaimResponse:
        return claim_response(await self._claims.claim(claim_ask(request)))

    async def ReportStatus(
        self, request: status_pb2.ReportStatusRequest, context: Context
    ) -> status_pb2.ReportStatusResponse:
        return report_response(await self._statuses.report(parse_report(request)))

    async def BatchClaim(
        self, request: status_pb2.BatchClaimRequest, context: Context
    ) -> status_pb2.BatchClaimResponse:
        asks = parse_each(request.requests, claim_ask, limit=MAX_BATCH)
        outcomes = await answer_each(asks, self._claims.claim_many, claim_response)
        return status_pb2.BatchClaimResponse(
            results=indexed(outcomes, status_pb2.BatchClaimResult, "claimed")
        )

    async def BatchReportStatus(
        self, request: status_pb2.BatchReportStatusRequest, context: Context
    ) -> status_pb2.BatchReportStatusResponse:
        reports = parse_each(request.requests, parse_report, limit=MAX_BATCH)
        outcomes = await answer_each(reports, self._statuses.report_many, report_response)
        return status_pb2.BatchReportStatusResponse(
            results=indexed(outcomes, status_pb2.BatchReportStatusResult, "reported")
        )

    async def GetStatus(
        self, request: status_pb2.GetStatusRequest, context: Context
    ) -> status_pb2.GetStatusResponse:
        row = await self._statuses.get(
            notification_id=parse_id(request.notification_id, "notification_id")
        )
        return status_pb2.GetStatusResponse(
            notification_id=str(row.id),
            status=STATUS_NUMBERS[row.status],
            status_reason=row.status_reason,
            delivered_channel=row.delivered_channel,  # type: ignore[arg-type]
            delivered_provider=row.delivered_provider,
            update_time=_timestamp(row.update_time),
        )


def service(servicer: StatusServicer) -> GrpcService:
    """The servicer as the runtime mounts it."""

    def register(server: grpc.aio.Server) -> None:
        status_pb2_grpc.add_StatusServiceServicer_to_server(servicer, server)

    return GrpcService(SERVICE_NAME, register)
