"""`POST /api/v1/{notification_type}/status/`: the seed's worker status report, recorded
by the gateway's own status domain in process. Herald's own workers report over gRPC;
this route serves external workers, so it needs the admin scope."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.http.auth import Admin
from gateway.http.convert import notifications as convert
from gateway.http.errors import domain_errors
from gateway.http.routes import error_responses
from gateway.http.schemas.common import NotificationType
from gateway.http.schemas.notifications import StatusReport, StatusReported
from gateway.status.service import Statuses


def router(statuses: Statuses, prefix: str) -> APIRouter:
    api = APIRouter(prefix=prefix, tags=["status"])

    @api.post(
        "/{notification_type}/status/",
        responses=error_responses(404, 409, body=True),
        summary="Report a delivery outcome (scope: admin)",
    )
    async def report_status(
        _: Admin, notification_type: NotificationType, body: StatusReport
    ) -> StatusReported:
        """Moves the notification's status forward; `changed` is false for a repeat."""
        with domain_errors(convert.RENAMES):
            outcome = await statuses.report(convert.report(notification_type, body))
        return convert.reported(str(body.notification_id), outcome)

    return api
