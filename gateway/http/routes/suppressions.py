"""`/api/v1/suppressions`: the suppression list (scope: admin). Entries come from provider
receipts (hard bounces, complaints, opt-outs); an operator lists, looks up and lifts them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Query, Response
from pydantic import BaseModel, Field

from gateway.http.auth import Admin
from gateway.http.errors import domain_errors
from gateway.http.routes import error_responses
from gateway.http.schemas.common import PageQuery, RequestModel, text
from gateway.receipts.suppressions import MAX_CONTACT, MAX_REMOVE_REASON, SuppressionList
from gateway.store.suppressions import Suppression
from gateway.wire import CHANNEL_NAMES
from mesh import rules


class SuppressionQuery(PageQuery):
    channel: rules.ChannelName | None = None
    contact: str | None = text(
        None,
        min_length=1,
        max_length=MAX_CONTACT,
        description="One email address or phone number.",
    )
    include_removed: bool = Field(False, description="Lifted entries too.")


class SuppressionOut(BaseModel):
    id: str
    channel: str
    contact: str
    reason: str = Field(description="bounced, complained or opted_out.")
    detail: str | None
    provider: str | None
    notification_id: str | None
    created_at: datetime
    removed_at: datetime | None
    removed_by: str | None
    remove_reason: str | None


class SuppressionPage(BaseModel):
    items: list[SuppressionOut]
    next_page_token: str | None


class SuppressionRemove(RequestModel):
    reason: str | None = text(None, max_length=MAX_REMOVE_REASON)


def _out(entry: Suppression) -> SuppressionOut:
    return SuppressionOut(
        id=str(entry.id),
        channel=CHANNEL_NAMES.get(entry.channel, str(entry.channel)),
        contact=entry.contact,
        reason=entry.reason,
        detail=entry.detail or None,
        provider=entry.provider or None,
        notification_id=str(entry.notification_id) if entry.notification_id else None,
        created_at=entry.create_time.astimezone(UTC),
        removed_at=entry.remove_time.astimezone(UTC) if entry.remove_time else None,
        removed_by=entry.removed_by or None,
        remove_reason=entry.remove_reason or None,
    )


def router(entries: SuppressionList, prefix: str) -> APIRouter:
    api = APIRouter(prefix=f"{prefix}/suppressions", tags=["suppressions"])

    @api.get("/", responses=error_responses(), summary="List suppressions (scope: admin)")
    async def list_suppressions(
        _: Admin, query: Annotated[SuppressionQuery, Query()]
    ) -> SuppressionPage:
        with domain_errors():
            page = await entries.list(
                channel=query.channel,
                contact=query.contact,
                include_removed=query.include_removed,
                page_size=query.page_size,
                page_token=query.page_token or "",
            )
        return SuppressionPage(
            items=[_out(e) for e in page.entries], next_page_token=page.next_page_token or None
        )

    @api.get(
        "/{suppression_id:uuid}",
        responses=error_responses(404),
        summary="Get a suppression, active or lifted (scope: admin)",
    )
    async def get_suppression(_: Admin, suppression_id: UUID) -> SuppressionOut:
        with domain_errors():
            return _out(await entries.get(suppression_id))

    @api.delete(
        "/{suppression_id:uuid}",
        status_code=204,
        response_class=Response,
        responses=error_responses(404, body=True),
        summary="Lift a suppression; the removal is recorded (scope: admin)",
    )
    async def remove_suppression(
        key: Admin,
        suppression_id: UUID,
        body: Annotated[SuppressionRemove | None, Body()] = None,
    ) -> Response:
        with domain_errors():
            await entries.remove(
                suppression_id,
                removed_by=key.label,
                reason=(body.reason or "") if body else "",
            )
        return Response(status_code=204)

    return api
