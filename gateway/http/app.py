"""The FastAPI application of the REST edge."""

from __future__ import annotations

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.http.health import Peer, aggregate
from mesh.health import HealthMonitor


def create_app(*, monitor: HealthMonitor, peers: list[Peer]) -> FastAPI:
    """The edge's routes, wired to the process's health monitor and peers."""
    app = FastAPI(
        title="Herald",
        version="1.0.0",
        description="Herald's REST edge: send notifications and read what happened to them.",
        default_response_class=JSONResponse,
    )

    @app.get("/health", tags=["operations"])
    async def health() -> JSONResponse:
        """200 when the gateway and every service it calls are SERVING, else 503."""
        ok, detail = await aggregate(monitor, peers)
        return JSONResponse(
            {"status": "ok" if ok else "degraded", "services": detail},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
