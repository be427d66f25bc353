"""The FastAPI application of the REST edge: `/api/v1` (the gateway's own notification
and status domain in process, userd and templated over gRPC), `/health`, `/metrics`."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from gateway import lifecycle
from gateway.apikeys import ApiKeys, Authenticator
from gateway.callbacks.endpoints import CallbackEndpoints
from gateway.callbacks.history import CallbackHistory
from gateway.http import errors
from gateway.http.backends import Backends
from gateway.http.health import Peer, aggregate
from gateway.http.middleware import ApiKeyGate, BodyLimit, RequestContext
from gateway.http.openapi import EdgeApp
from gateway.http.routes import (
    apikeys,
    callbacks,
    notifications,
    status,
    suppressions,
    templates,
    users,
    webhooks,
)
from gateway.notifications.accept import Acceptor
from gateway.notifications.service import Notifications
from gateway.receipts.service import Receipts
from gateway.receipts.suppressions import SuppressionList
from gateway.settings import GatewaySettings
from gateway.status.service import Statuses
from mesh.health import HealthMonitor

API_PREFIX = "/api/v1"

DESCRIPTION = """Herald's REST edge: send notifications and read what happened to them.

Every `/api/v1` route needs an API key (`Authorization: Bearer hk_…`, created with
`python -m gateway apikeys create` or `POST /api/v1/api-keys`) with the scope named in the
route's summary. Each key belongs to a client and sees only that client's notifications
(another client's answer 404); `operator:read` reads every client's, `admin` may do
everything. Errors answer
`{"error": {"code", "message", "fields": [{"field", "description"}]}}`. Send
`X-Request-ID` to choose the correlation id; every answer carries it back.

A notification's `status`:

""" + lifecycle.status_table()


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    services: dict[str, str]


def _operations(monitor: HealthMonitor, peers: list[Peer]) -> APIRouter:
    api = APIRouter(tags=["operations"])

    @api.get("/health", responses={503: {"model": HealthOut, "description": "Degraded."}})
    async def health() -> JSONResponse:
        """200 when the gateway and every service it calls are SERVING, else 503.

        No API key needed (probes)."""
        ok, detail = await aggregate(monitor, peers)
        body = HealthOut(status="ok" if ok else "degraded", services=detail)
        return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

    @api.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics() -> Response:
        """Prometheus metrics of this process (HTTP and gRPC). No API key needed."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return api


def create_app(
    *,
    settings: GatewaySettings,
    monitor: HealthMonitor,
    peers: list[Peer],
    backends: Backends,
    acceptor: Acceptor,
    notification_reads: Notifications,
    statuses: Statuses,
    authenticator: Authenticator,
    keys: ApiKeys,
    receipts: Receipts,
    suppression_list: SuppressionList,
    callback_endpoints: CallbackEndpoints,
    callback_history: CallbackHistory,
) -> FastAPI:
    """The edge, wired to the process's health monitor, domain, gRPC peers and API keys."""
    app = EdgeApp(
        title="Herald",
        version="1.0.0",
        description=DESCRIPTION,
        redoc_url=None,
    )
    # Each router carries the full prefix (not added at include time), so a matched
    # route's path is the whole template: the access log and metrics label it.
    routers = [
        notifications.router(acceptor, notification_reads, API_PREFIX),
        users.router(backends, API_PREFIX),
        templates.router(backends, API_PREFIX),
        status.router(statuses, API_PREFIX),
        apikeys.router(keys, API_PREFIX),
        webhooks.router(receipts, settings),
        suppressions.router(suppression_list, API_PREFIX),
        callbacks.router(callback_endpoints, callback_history, API_PREFIX),
        _operations(monitor, peers),
    ]
    for router in routers:
        app.include_router(router)
    callbacks.document_webhook(app)
    errors.install(app, errors.AllowedMethods([r for router in routers for r in router.routes]))
    # add_middleware wraps: the last added runs first.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(ApiKeyGate, authenticator=authenticator, prefix=API_PREFIX)
    app.add_middleware(RequestContext)
    return app
