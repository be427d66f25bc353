"""JSON of `/api/v1/notifications` and `/api/v1/{notification_type}/status/` (seed 004)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from gateway.http.schemas.common import (
    MAX_INT32,
    ErrorDetail,
    JsonObject,
    Language,
    MessageTypeName,
    NotificationType,
    QueryModel,
    RequestId,
    RequestModel,
    StatusName,
    TemplateCode,
    Timestamp,
    Uuid,
    integer,
    json_integer,
    text,
)
from mesh import rules

Priority = Annotated[Literal[1, 2, 3, 4], BeforeValidator(json_integer)]
Outcome = Literal[
    "delivered",
    "transient_failure",
    "permanent_failure",
    "skipped",
    "reported",
    "held",
    "released",
    "cancelled",
    "capped",
]


class NotificationCreate(RequestModel):
    """The seed's payload, plus optional message_type, language and template_version."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "notification_type": "email",
                    "user_id": "6f1c2b1e-8a4b-4f7e-9d3c-2a1b0c9d8e7f",
                    "template_code": "auth/welcome",
                    "variables": {"name": "Ada", "link": "https://example.com/start"},
                    "request_id": "signup-6f1c2b1e",
                    "priority": 1,
                    "metadata": {},
                }
            ]
        }
    )

    notification_type: NotificationType = Field(description="The first channel to try.")
    user_id: Uuid
    template_code: TemplateCode
    variables: JsonObject = Field(default_factory=dict)
    request_id: RequestId | None = Field(
        None,
        description="Idempotency key (per API key): the same request_id with the same "
        "payload answers the same notification; with another payload, 409. Also the "
        "correlation id of the notification's log lines unless X-Request-ID is sent.",
    )
    priority: Priority = Field(2, description="1 low, 2 normal, 3 high, 4 critical.")
    metadata: JsonObject = Field(default_factory=dict)
    message_type: MessageTypeName | None = Field(
        None, description="Selects the fallback route; transactional when left out."
    )
    language: Language | None = Field(None, description="Overrides the user's locale.")
    template_version: integer(ge=1, le=MAX_INT32) | None = Field(  # type: ignore[valid-type]
        None, description="Pins a template version."
    )
    send_at: Timestamp | None = Field(
        None,
        description="When to send it (RFC 3339, in the future, within the gateway's "
        "schedule horizon). Until then it is `scheduled` and can be cancelled.",
    )
    quiet_hours: Literal["respect", "bypass"] | None = Field(
        None,
        description="Whether it waits for the end of the user's quiet hours. Left out: the "
        "message type's policy (marketing waits; transactional and alert go at once).",
    )


class NotificationAccepted(BaseModel):
    notification_id: str
    status: StatusName
    duplicate: bool = Field(description="True when request_id matched an earlier notification.")


class NotificationBatch(RequestModel):
    notifications: list[NotificationCreate] = Field(min_length=1, max_length=rules.MAX_BATCH_ITEMS)


class BatchItem(BaseModel):
    """One item's outcome: accepted (notification_id, status) or refused (error)."""

    index: int
    notification_id: str | None
    status: StatusName | None
    duplicate: bool | None
    error: ErrorDetail | None


class BatchResult(BaseModel):
    accepted: int
    rejected: int
    results: list[BatchItem]


class RetryBody(RequestModel):
    reason: str | None = text(None, max_length=500)


class CancelBody(RequestModel):
    reason: str | None = text(None, max_length=500)


class ReceiptOut(BaseModel):
    """A provider's receipt (webhook event) about the attempt."""

    event: str = Field(
        description="accepted, delivered, deferred, bounced, dropped, undelivered, "
        "complained or opted_out."
    )
    reason: str | None
    code: str | None
    occurred_at: datetime
    received_at: datetime
    effect: str = Field(
        description="What it did: delivered, failed over to <channel>, failed, recorded."
    )


class DeliveryAttemptOut(BaseModel):
    """An attempt, or a step that was none (outcome held, released, cancelled, capped:
    attempt 0, `detail` says why; `worker` names who cancelled)."""

    id: str
    channel: NotificationType | None
    provider: str | None
    outcome: Outcome | None
    provider_message_id: str | None
    error: str | None
    detail: str | None
    duration_ms: float | None
    started_at: datetime | None
    attempt: int
    generation: int
    worker: str | None = None
    receipts: list[ReceiptOut] = Field(default_factory=list)


class RetryOut(BaseModel):
    requested_by: str
    reason: str | None
    generation: int
    requested_at: datetime | None


class NotificationOut(BaseModel):
    """A notification with where it stands and its delivery trail."""

    id: str
    user_id: str
    notification_type: NotificationType | None
    route: list[NotificationType]
    template_code: str
    template_version: int | None
    language: str | None
    request_id: str | None
    priority: Priority | None
    message_type: MessageTypeName | None
    metadata: JsonObject
    status: StatusName
    status_reason: str | None
    delivered_channel: NotificationType | None
    delivered_provider: str | None
    provider_message_id: str | None
    attempts: list[DeliveryAttemptOut]
    retries: list[RetryOut]
    created_at: datetime | None
    updated_at: datetime | None
    delivered_at: datetime | None
    send_at: datetime | None = Field(
        None,
        description="When it was (or is) due: its send_at, or the end of the user's quiet "
        "hours; null when it went at once.",
    )


class NotificationPage(BaseModel):
    items: list[NotificationOut]
    next_page_token: str | None


class NotificationQuery(QueryModel):
    """Filters of GET /api/v1/notifications/."""

    user_id: Uuid | None = None
    status: StatusName | None = None
    created_after: Timestamp | None = Field(None, description="Created at or after (RFC 3339).")
    created_before: Timestamp | None = Field(None, description="Created before (RFC 3339).")
    page_size: int = Field(rules.DEFAULT_PAGE_SIZE, ge=1, le=rules.MAX_PAGE_SIZE)
    page_token: str | None = text(None, min_length=1, max_length=1024)


class StatusReport(RequestModel):
    """The seed's status payload (what delivery workers post)."""

    notification_id: Uuid
    status: StatusName
    timestamp: Timestamp | None = None
    error: str | None = text(None, max_length=2000)


class StatusReported(BaseModel):
    notification_id: str
    status: StatusName
    changed: bool = Field(
        description="False when the report repeated what was recorded. True: the report "
        "joined the trail; `status` says whether the notification moved (a pending one "
        "never moves on an external report)."
    )
