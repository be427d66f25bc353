"""A notification's story: its timeline, the content as it went out (email HTML in a
sandboxed frame of its own, SMS and push as text), its metadata, and Retry."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from console import timeline
from console.render import Pages
from console.security import EMAIL_CSP, Changer, Viewer
from console.services import Services
from gateway.apikeys import Scope


def router(services: Services, pages: Pages) -> APIRouter:
    api = APIRouter()
    notifications = services.notifications

    @api.get("/notifications/{notification_id}")
    async def story(request: Request, operator: Viewer, notification_id: uuid.UUID) -> Response:
        principal = operator.principal
        record = await notifications.get(notification_id=notification_id, principal=principal)
        content = await notifications.content(notification_id=notification_id, principal=principal)
        can_retry = (
            record.status == "failed"
            and operator.may(Scope.NOTIFICATIONS_SEND)
            and (principal.acting_owner in (None, record.client_id))
        )
        return pages(
            request,
            "story.html",
            record=record,
            content=content,
            events=timeline.events(record),
            can_retry=can_retry,
        )

    @api.get("/notifications/{notification_id}/email")
    async def email(request: Request, operator: Viewer, notification_id: uuid.UUID) -> Response:
        """The email's HTML alone, for the story's sandboxed frame: its own CSP makes it a
        unique origin where nothing runs, even if opened outside the frame."""
        content = await notifications.content(
            notification_id=notification_id, principal=operator.principal
        )
        html = content.html if content else ""
        return Response(
            html or "<p>(no HTML part)</p>",
            media_type="text/html",
            headers={"Content-Security-Policy": EMAIL_CSP},
        )

    @api.post("/notifications/{notification_id}/retry")
    async def retry(
        request: Request,
        operator: Changer,
        notification_id: uuid.UUID,
        reason: Annotated[str, Form(max_length=2000)] = "",
    ) -> Response:
        """A manual retry, recorded with the signed-in key (who asked) and the reason."""
        await notifications.retry(
            notification_id=notification_id,
            requested_by=f"console:{operator.key.label}",
            reason=reason or "retried from the console",
            principal=operator.principal,
        )
        base = request.scope.get("root_path", "")
        return RedirectResponse(f"{base}/notifications/{notification_id}", status_code=303)

    return api
