"""The sandbox inbox: what the sandbox provider "sent", as the recipient would see it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from console.render import Pages
from console.security import Viewer
from console.services import Services


def router(services: Services, pages: Pages) -> APIRouter:
    api = APIRouter()

    @api.get("/inbox")
    async def inbox(request: Request, operator: Viewer) -> Response:
        items = await services.inbox.latest(principal=operator.principal)
        return pages(request, "inbox.html", items=items)

    return api
