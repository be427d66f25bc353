"""`POST /api/v1/{notification_type}/status/`: the seed's worker status report, recorded
by the gateway's own status domain in process. Herald's own workers report over gRPC;
this route serves external reporters (scope status:report, own client's notifications):
their word is kept in the trail and never decides a pending notification."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.http.auth import StatusReporter
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
        summary="Report a delivery outcome (scope: status:report)",
    )
    async def report_status(
        key: StatusReporter, notification_type: NotificationType, body: StatusReport
    ) -> StatusReported:
        """Records the report in the notification's trail as an external report, with the
        API key that made it. It never moves a pending notification: Herald's own
        delivery (and, later, the provider's receipts) decide. On a final notification
        the same status is a repeat (`changed` false) and another is a 409. Another
        client's notification is a 404 (admin: any client's)."""
        report = convert.report(
            notification_type, body, reporter=key.label, owner=key.principal.acting_owner
        )
        with domain_errors(convert.RENAMES):
            outcome = await statuses.report(report)
        return convert.reported(str(body.notification_id), outcome)

    return api
