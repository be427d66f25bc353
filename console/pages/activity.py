"""Activity: every notification the operator may see, newest first, filtered, paged by
keyset, the first page refreshed every two seconds by htmx (no reload)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from console.filters import Filters
from console.render import Pages
from console.security import Viewer
from console.services import Services
from gateway import lifecycle
from gateway.wire import CHANNELS_BY_NAME, MESSAGE_TYPES_BY_NAME

PAGE_SIZE = 50
POLL_SECONDS = 2


def router(services: Services, pages: Pages) -> APIRouter:
    api = APIRouter()

    async def page(request: Request, operator: Viewer, name: str) -> Response:
        filters = Filters.of(request.query_params)
        found = await services.notifications.list(
            principal=operator.principal,
            page_size=filters.page_size(PAGE_SIZE),
            page_token=filters.after,
            **filters.domain(),
        )
        return pages(
            request,
            name,
            filters=filters,
            rows=found.notifications,
            next_page=filters.query(after=found.next_page_token) if found.next_page_token else "",
            live=not filters.after,
            poll_seconds=POLL_SECONDS,
            statuses=sorted(lifecycle.STATUSES),
            channels=list(CHANNELS_BY_NAME),
            message_types=list(MESSAGE_TYPES_BY_NAME),
        )

    @api.get("/")
    async def activity(request: Request, operator: Viewer) -> Response:
        return await page(request, operator, "activity.html")

    @api.get("/activity/rows")
    async def rows(request: Request, operator: Viewer) -> Response:
        """The table's rows alone: what the live refresh swaps in."""
        return await page(request, operator, "_rows.html")

    return api
