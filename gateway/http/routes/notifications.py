"""`/api/v1/notifications`: send (one or a batch), read, list, retry → NotificationService."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Query, Request

from gateway.http.auth import Admin, Read, Send
from gateway.http.backends import Backends, call, client_metadata
from gateway.http.convert import notifications as convert
from gateway.http.middleware import use_request_id
from gateway.http.routes import error_responses
from gateway.http.schemas.notifications import (
    BatchResult,
    NotificationAccepted,
    NotificationBatch,
    NotificationCreate,
    NotificationOut,
    NotificationPage,
    NotificationQuery,
    RetryBody,
)
from herald.v1 import notification_pb2


def router(backends: Backends, prefix: str) -> APIRouter:
    api = APIRouter(prefix=f"{prefix}/notifications", tags=["notifications"])
    timeout = backends.timeout
    stub = backends.notifications

    @api.post(
        "/",
        status_code=202,
        responses=error_responses(404, 409, body=True),
        summary="Send a notification (scope: send)",
    )
    async def send(key: Send, body: NotificationCreate, request: Request) -> NotificationAccepted:
        """Accepts the seed's payload; 202 once the notification is durably recorded.

        An unknown user is a 404; a template variable missing is a 400 naming it
        (`variables.<name>`); a request_id reused with another payload is a 409.
        """
        if body.request_id:
            use_request_id(request.scope, body.request_id)
        answer = await call(
            stub.Send,
            convert.send_request(body),
            timeout=timeout,
            metadata=client_metadata(key.id),
            renames=convert.RENAMES,
        )
        return convert.accepted(answer)

    @api.post(
        "/batch",
        status_code=202,
        responses=error_responses(body=True),
        summary="Send up to 500 notifications (scope: send)",
    )
    async def send_batch(key: Send, body: NotificationBatch) -> BatchResult:
        """Each item is accepted or refused on its own: `results[i].error` says why."""
        request = notification_pb2.SendBatchRequest(
            requests=[convert.send_request(item) for item in body.notifications]
        )
        answer = await call(
            stub.SendBatch,
            request,
            timeout=timeout,
            metadata=client_metadata(key.id),
            renames=convert.RENAMES,
        )
        return convert.batch_result(answer, len(body.notifications))

    @api.get("/", responses=error_responses(), summary="List notifications (scope: read)")
    async def list_notifications(
        key: Read, query: Annotated[NotificationQuery, Query()]
    ) -> NotificationPage:
        """Newest first, filtered by user, status and creation time; without trails."""
        answer = await call(
            stub.ListNotifications,
            convert.list_request(query),
            timeout=timeout,
            metadata=client_metadata(key.id),
            renames=convert.RENAMES,
        )
        return NotificationPage(
            items=[convert.notification(n) for n in answer.notifications],
            next_page_token=answer.next_page_token or None,
        )

    @api.get(
        "/{notification_id:uuid}",
        responses=error_responses(404),
        summary="Get a notification and its delivery trail (scope: read)",
    )
    async def get_notification(key: Read, notification_id: UUID) -> NotificationOut:
        answer = await call(
            stub.GetNotification,
            notification_pb2.GetNotificationRequest(id=str(notification_id)),
            timeout=timeout,
            metadata=client_metadata(key.id),
        )
        return convert.notification(answer.notification)

    @api.post(
        "/{notification_id:uuid}/retry",
        status_code=202,
        responses=error_responses(404, 409, body=True),
        summary="Send a failed notification again (scope: admin)",
    )
    async def retry(
        key: Admin, notification_id: UUID, body: Annotated[RetryBody | None, Body()] = None
    ) -> NotificationOut:
        """A manual retry, recorded with the API key that asked; 409 unless it failed."""
        answer = await call(
            stub.Retry,
            notification_pb2.RetryRequest(
                id=str(notification_id),
                requested_by=key.label,
                reason=body.reason or "" if body else "",
            ),
            timeout=timeout,
            metadata=client_metadata(key.id),
        )
        return convert.notification(answer.notification)

    return api
