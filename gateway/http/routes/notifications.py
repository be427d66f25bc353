"""`/api/v1/notifications`: send (one or a batch), read, list, retry: the gateway's own
notification domain, called in process."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Query, Request

from gateway.apikeys import ApiKey
from gateway.http.auth import NotificationsRead, NotificationsSend
from gateway.http.convert import notifications as convert
from gateway.http.errors import domain_errors
from gateway.http.middleware import correlation_id, use_request_id
from gateway.http.routes import error_responses
from gateway.http.schemas.notifications import (
    BatchResult,
    CancelBody,
    NotificationAccepted,
    NotificationBatch,
    NotificationCreate,
    NotificationOut,
    NotificationPage,
    NotificationQuery,
    RetryBody,
)
from gateway.notifications.accept import Acceptor
from gateway.notifications.model import Caller
from gateway.notifications.service import Notifications


def caller(key: ApiKey, request: Request) -> Caller:
    """The API key's principal; the request's correlation id wins over body request_ids."""
    return Caller(principal=key.principal, correlation_id=correlation_id(request.scope), given=True)


def router(acceptor: Acceptor, notifications: Notifications, prefix: str) -> APIRouter:
    api = APIRouter(prefix=f"{prefix}/notifications", tags=["notifications"])

    @api.post(
        "/",
        status_code=202,
        responses=error_responses(404, 409, body=True),
        summary="Send a notification (scope: notifications:send)",
    )
    async def send(
        key: NotificationsSend, body: NotificationCreate, request: Request
    ) -> NotificationAccepted:
        """Accepts the seed's payload; 202 once the notification is durably recorded.

        An unknown user is a 404; a template variable missing is a 400 naming it
        (`variables.<name>`); a request_id reused with another payload is a 409; an API
        key over its send rate is a 429 with Retry-After (nothing is stored). With
        `send_at`, or held by the user's quiet hours, it is accepted `scheduled`.
        """
        if body.request_id:
            use_request_id(request.scope, body.request_id)
        with domain_errors(convert.RENAMES):
            answer = await acceptor.send(
                notification=convert.new_send(body), caller=caller(key, request)
            )
        return convert.accepted(answer)

    @api.post(
        "/batch",
        status_code=202,
        responses=error_responses(body=True),
        summary="Send up to 500 notifications (scope: notifications:send)",
    )
    async def send_batch(
        key: NotificationsSend, body: NotificationBatch, request: Request
    ) -> BatchResult:
        """Each item is accepted or refused on its own: `results[i].error` says why."""
        with domain_errors(convert.RENAMES):
            outcomes = await acceptor.send_batch(
                notifications=[convert.new_send(item) for item in body.notifications],
                caller=caller(key, request),
            )
        return convert.batch_result(outcomes, len(body.notifications))

    @api.get(
        "/", responses=error_responses(), summary="List notifications (scope: notifications:read)"
    )
    async def list_notifications(
        key: NotificationsRead, query: Annotated[NotificationQuery, Query()]
    ) -> NotificationPage:
        """The key's client's notifications (operator:read and admin: every client's),
        newest first, filtered by user, status and creation time; without trails."""
        with domain_errors(convert.RENAMES):
            page = await notifications.list(
                principal=key.principal,
                user_id=query.user_id,
                status=query.status,
                start_time=query.created_after,
                end_time=query.created_before,
                page_size=query.page_size,
                page_token=query.page_token or "",
            )
        return NotificationPage(
            items=[convert.notification(n) for n in page.notifications],
            next_page_token=page.next_page_token or None,
        )

    @api.get(
        "/{notification_id:uuid}",
        responses=error_responses(404),
        summary="Get a notification and its delivery trail (scope: notifications:read)",
    )
    async def get_notification(key: NotificationsRead, notification_id: UUID) -> NotificationOut:
        """Another client's notification is a 404, as one that does not exist."""
        with domain_errors():
            record = await notifications.get(
                notification_id=notification_id, principal=key.principal
            )
        return convert.notification(record)

    @api.post(
        "/{notification_id:uuid}/retry",
        status_code=202,
        responses=error_responses(404, 409, body=True),
        summary="Send a failed notification again (scope: notifications:send)",
    )
    async def retry(
        key: NotificationsSend,
        notification_id: UUID,
        body: Annotated[RetryBody | None, Body()] = None,
    ) -> NotificationOut:
        """A manual retry of the key's client's notification (admin: any client's),
        recorded with the API key that asked; 409 unless it failed."""
        with domain_errors():
            record = await notifications.retry(
                notification_id=notification_id,
                requested_by=key.label,
                reason=body.reason or "" if body else "",
                principal=key.principal,
            )
        return convert.notification(record)

    @api.post(
        "/{notification_id:uuid}/cancel",
        responses=error_responses(404, 409, body=True),
        summary="Cancel a notification that has not gone out (scope: notifications:send)",
    )
    async def cancel(
        key: NotificationsSend,
        notification_id: UUID,
        body: Annotated[CancelBody | None, Body()] = None,
    ) -> NotificationOut:
        """Cancels the key's client's notification (admin: any client's) while it is
        scheduled, or pending with no worker on it; the answer is the cancelled
        notification. Otherwise 409, its message naming the status the notification
        reached (a cancel racing the dispatch: exactly one of the two wins)."""
        with domain_errors():
            record = await notifications.cancel(
                notification_id=notification_id,
                principal=key.principal,
                reason=body.reason or "" if body else "",
            )
        return convert.notification(record)

    return api
