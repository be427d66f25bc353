"""Providers: per provider, its circuit breaker in each worker, sends, failures and
latency over the last 5 and 60 minutes as small charts, and its last errors."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from console.render import Pages
from console.security import Viewer
from console.services import Services


def router(services: Services, pages: Pages) -> APIRouter:
    api = APIRouter()

    @api.get("/providers")
    async def providers(request: Request, operator: Viewer) -> Response:
        overview = await services.providers.overview(principal=operator.principal)
        return pages(request, "providers.html", overview=overview)

    return api
