"""`/api/v1/callbacks`: a client's status callback endpoints (scope: callbacks:write; admin:
any client's), and `/api/v1/notifications/{id}/callbacks`: what became of a
notification's callbacks (scope: notifications:read). The callback itself is documented
as the OpenAPI webhook `notification-status`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, FastAPI, Query, Response
from pydantic import BaseModel, Field

from gateway.callbacks.endpoints import CallbackEndpoints, Registered
from gateway.callbacks.history import CallbackHistory
from gateway.callbacks.model import payload
from gateway.http.auth import CallbacksWrite, NotificationsRead
from gateway.http.errors import domain_errors
from gateway.http.routes import error_responses
from gateway.http.schemas.common import QueryModel, RequestModel, StatusName, integer, text
from gateway.store.callbacks import Endpoint
from mesh.signing import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER


class CallbackCreate(RequestModel):
    url: str = text(
        min_length=1,
        max_length=2000,
        description="Where to post: https to a public host (loopback only where the "
        "gateway allows it, for tests).",
        examples=["https://api.example.com/herald/status"],
    )
    events: Literal["all", "final"] = Field(
        "all", description="all: every status change; final: delivered, failed, suppressed."
    )
    description: str = text("", max_length=500)
    client_id: str | None = text(
        None, min_length=1, max_length=100, description="admin only: another client's."
    )


OverlapSeconds = integer(ge=0, le=604800)


class CallbackRotate(RequestModel):
    overlap_seconds: OverlapSeconds = Field(  # type: ignore[valid-type]
        86400, description="How long the old secret keeps signing beside the new one."
    )


class CallbackOut(BaseModel):
    id: str
    client_id: str
    url: str
    events: str
    description: str
    created_at: datetime
    failing_since: datetime | None = Field(description="Set while its callbacks fail.")


class CallbackWithSecret(CallbackOut):
    secret: str = Field(
        description="The signing secret (Standard Webhooks, whsec_…): shown in this answer "
        "only. Verify `webhook-signature` over `{webhook-id}.{webhook-timestamp}.{body}`."
    )


class CallbackList(BaseModel):
    items: list[CallbackOut]


class CallbackListQuery(QueryModel):
    client_id: str | None = text(None, min_length=1, max_length=100, description="admin only.")


class StatusCallback(BaseModel):
    """The body of a status callback (headers: webhook-id = `id`, webhook-timestamp,
    webhook-signature)."""

    id: str = Field(description="The event's id, also in `webhook-id`: deduplicate by it.")
    type: Literal["notification.status"]
    notification_id: str
    request_id: str | None
    status: StatusName
    previous_status: str
    channel: str | None
    provider: str | None
    reason: str | None = Field(description="The last error, or the receipt's reason.")
    time: datetime
    metadata: dict[str, Any] = Field(description="The metadata the notification was sent with.")


class CallbackAttemptOut(BaseModel):
    url: str
    status_code: int | None
    duration_ms: float
    error: str | None
    at: datetime


class CallbackEventOut(BaseModel):
    id: str
    status: str
    state: Literal["pending", "delivered", "failed", "cancelled"]
    attempts: list[CallbackAttemptOut]
    next_attempt_at: datetime | None
    last_error: str | None
    body: StatusCallback


class NotificationCallbacks(BaseModel):
    items: list[CallbackEventOut]


def _out(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "id": str(endpoint.id),
        "client_id": endpoint.client_id,
        "url": endpoint.url,
        "events": endpoint.events,
        "description": endpoint.description,
        "created_at": endpoint.create_time.astimezone(UTC),
        "failing_since": endpoint.failing_since,
    }


def _with_secret(registered: Registered) -> CallbackWithSecret:
    return CallbackWithSecret(**_out(registered.endpoint), secret=registered.secret)


def router(endpoints: CallbackEndpoints, history: CallbackHistory, prefix: str) -> APIRouter:
    api = APIRouter(tags=["callbacks"])
    base = f"{prefix}/callbacks"

    @api.post(
        f"{base}/",
        status_code=201,
        responses=error_responses(404, 429, body=True),
        summary="Register a status callback endpoint; its secret is in this answer only "
        "(scope: callbacks:write)",
    )
    async def create_callback(key: CallbacksWrite, body: CallbackCreate) -> CallbackWithSecret:
        with domain_errors():
            registered = await endpoints.create(
                key.principal,
                url=body.url,
                events=body.events,
                description=body.description,
                client_id=body.client_id,
            )
        return _with_secret(registered)

    @api.get(
        f"{base}/",
        responses=error_responses(404),
        summary="List callback endpoints (scope: callbacks:write)",
    )
    async def list_callbacks(
        key: CallbacksWrite, query: Annotated[CallbackListQuery, Query()]
    ) -> CallbackList:
        with domain_errors():
            found = await endpoints.list(key.principal, query.client_id)
        return CallbackList(items=[CallbackOut(**_out(e)) for e in found])

    @api.get(
        f"{base}/{{callback_id}}",
        responses=error_responses(404),
        summary="One callback endpoint (scope: callbacks:write)",
    )
    async def get_callback(key: CallbacksWrite, callback_id: UUID) -> CallbackOut:
        with domain_errors():
            return CallbackOut(**_out(await endpoints.get(key.principal, callback_id)))

    @api.post(
        f"{base}/{{callback_id}}/rotate-secret",
        responses=error_responses(404, body=True),
        summary="A new signing secret, in this answer only; the old one keeps signing "
        "beside it for overlap_seconds (scope: callbacks:write)",
    )
    async def rotate_callback_secret(
        key: CallbacksWrite, callback_id: UUID, body: CallbackRotate
    ) -> CallbackWithSecret:
        with domain_errors():
            registered = await endpoints.rotate(
                key.principal, callback_id, overlap=timedelta(seconds=body.overlap_seconds)
            )
        return _with_secret(registered)

    @api.delete(
        f"{base}/{{callback_id}}",
        status_code=204,
        response_class=Response,
        responses=error_responses(404),
        summary="Delete a callback endpoint; its callbacks not yet posted are cancelled "
        "(scope: callbacks:write)",
    )
    async def delete_callback(key: CallbacksWrite, callback_id: UUID) -> Response:
        with domain_errors():
            await endpoints.delete(key.principal, callback_id)
        return Response(status_code=204)

    @api.get(
        f"{prefix}/notifications/{{notification_id}}/callbacks",
        responses=error_responses(404),
        tags=["notifications"],
        summary="A notification's status callbacks and every attempt to post them "
        "(scope: notifications:read)",
    )
    async def notification_callbacks(
        key: NotificationsRead, notification_id: UUID
    ) -> NotificationCallbacks:
        with domain_errors():
            deliveries = await history.of(key.principal, notification_id)
        items = []
        for d in deliveries:
            e = d.event
            items.append(
                CallbackEventOut(
                    id=str(e.id),
                    status=e.status,
                    state=e.state,
                    attempts=[
                        CallbackAttemptOut(
                            url=a.url,
                            status_code=a.status_code,
                            duration_ms=a.duration_ms,
                            error=a.error or None,
                            at=a.attempt_time.astimezone(UTC),
                        )
                        for a in d.attempts
                    ],
                    next_attempt_at=e.next_attempt_time if e.state == "pending" else None,
                    last_error=e.last_error or None,
                    body=StatusCallback.model_validate(payload(e)),
                )
            )
        return NotificationCallbacks(items=items)

    return api


def document_webhook(app: FastAPI) -> None:
    """The callback as an OpenAPI 3.1 webhook, so clients can generate a receiver."""

    @app.webhooks.post(
        "notification-status",
        summary="A notification's status changed (posted to each registered endpoint)",
        description=f"Signed as Standard Webhooks specify: `{ID_HEADER}` (the event id), "
        f"`{TIMESTAMP_HEADER}` and `{SIGNATURE_HEADER}` (`v1,<base64 HMAC-SHA256 of "
        "{id}.{timestamp}.{body}>` under each live secret, space-separated). Answer 2xx; "
        "a 5xx, 408, 429 or timeout is retried for 24 hours, any other answer is final.",
    )
    def notification_status(body: StatusCallback) -> None:
        """Posted in order per notification; at least once (deduplicate by `id`)."""
