"""Failed: the dead letters (failed notifications) with their last error, filtered; retry
one, or all that match the filter: at most HERALD_CONSOLE_BULK_RETRY_MAX, after a page
that shows how many and asks to confirm."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from console.filters import FIELDS, Filters
from console.render import Pages
from console.security import Changer, Viewer
from console.services import Services
from gateway.wire import CHANNELS_BY_NAME, MESSAGE_TYPES_BY_NAME

PAGE_SIZE = 50


def router(services: Services, pages: Pages) -> APIRouter:
    api = APIRouter()
    notifications = services.notifications
    most = services.bulk_retry_max

    @api.get("/failed")
    async def failed(request: Request, operator: Viewer) -> Response:
        filters = Filters.of(request.query_params)
        found = await notifications.list(
            principal=operator.principal,
            status="failed",
            page_size=filters.page_size(PAGE_SIZE),
            page_token=filters.after,
            **filters.domain(with_status=False),
        )
        return pages(
            request,
            "failed.html",
            filters=filters,
            rows=found.notifications,
            next_page=filters.query(after=found.next_page_token) if found.next_page_token else "",
            channels=list(CHANNELS_BY_NAME),
            message_types=list(MESSAGE_TYPES_BY_NAME),
            most=most,
        )

    @api.post("/failed/retry-all")
    async def retry_all(
        request: Request,
        operator: Changer,
        confirm: Annotated[str, Form(max_length=10)] = "",
        expected: Annotated[int, Form(ge=0, le=100_000)] = 0,
    ) -> Response:
        """Without `confirm`: how many would be retried, and a form to confirm. With it:
        retries them (each recorded with the signed-in key) and says how many."""
        form = await request.form()
        filters = Filters(**{name: str(form.get(name, "")).strip()[:200] for name in FIELDS})
        kwargs = filters.domain(with_status=False)
        if confirm != "yes":
            count = await notifications.count_failed(
                principal=operator.principal, limit=most + 1, **kwargs
            )
            return pages(
                request,
                "retry_all.html",
                filters=filters,
                count=min(count, most),
                more=count > most,
                most=most,
                done=None,
            )
        retried = await notifications.retry_failed(
            principal=operator.principal,
            limit=min(expected, most),
            requested_by=f"console:{operator.key.label}",
            reason="retried from the console (all that matched)",
            **kwargs,
        )
        return pages(
            request,
            "retry_all.html",
            filters=filters,
            count=len(retried),
            more=False,
            most=most,
            done=retried,
        )

    return api
