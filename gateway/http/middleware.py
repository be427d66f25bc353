"""Pure ASGI middlewares of the edge (no BaseHTTPMiddleware: it costs a task per request).

Outermost first: `RequestContext` (correlation id, X-Request-ID, access log, metrics,
last-resort 500), `ApiKeyGate` (every /api/v1 request carries a live API key, checked
before anything else is read), `BodyLimit` (bodies counted as they stream in).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import structlog
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.apikeys import Authenticator
from gateway.http.errors import ApiError, http_error
from mesh import rules
from mesh.logging import bind_correlation_id

REQUEST_ID_HEADER = b"x-request-id"
STATE_REQUEST_ID = "request_id"
STATE_REQUEST_ID_GIVEN = "request_id_given"
STATE_API_KEY = "api_key"

HTTP_REQUESTS = Counter(
    "herald_http_requests_total",
    "HTTP requests answered by the REST edge, by method, route and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "herald_http_request_seconds",
    "REST edge latency, by method and route.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)

log = structlog.get_logger("gateway.http")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _state(scope: Scope) -> dict[str, Any]:
    state: dict[str, Any] = scope.setdefault("state", {})
    return state


async def _reply(scope: Scope, receive: Receive, send: Send, error: ApiError) -> None:
    await error.response()(scope, receive, send)


class RequestContext:
    """Correlation id (the client's X-Request-ID, else a new one) bound to every log line,
    echoed in X-Request-ID; one access log line and metric sample per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = (_header(scope, REQUEST_ID_HEADER) or "").strip()
        state = _state(scope)
        state[STATE_REQUEST_ID_GIVEN] = _request_id(given)
        state[STATE_REQUEST_ID] = given if state[STATE_REQUEST_ID_GIVEN] else uuid.uuid4().hex
        structlog.contextvars.unbind_contextvars("api_key")
        bind_correlation_id(state[STATE_REQUEST_ID])
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    *message.get("headers", ()),
                    (REQUEST_ID_HEADER, state[STATE_REQUEST_ID].encode()),
                ]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error")
            if not status:
                await _reply(scope, receive, send_with_id, http_error(500, "internal error"))
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path_format", None) or "unmatched"
            method = scope["method"]
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(elapsed)
            bind_correlation_id(state[STATE_REQUEST_ID])
            log.info(
                "http",
                method=method,
                route=route,
                status=status,
                ms=round(elapsed * 1000, 2),
            )


def _request_id(value: str) -> bool:
    return rules.matches(rules.REQUEST_ID, value, rules.MAX_REQUEST_ID)


def correlation_id(scope: Scope) -> str:
    """The request's correlation id (X-Request-ID, the body's request_id, or a new one)."""
    return str(_state(scope)[STATE_REQUEST_ID])


def use_request_id(scope: Scope, request_id: str) -> None:
    """Makes the body's request_id the correlation id, unless X-Request-ID named one."""
    state = _state(scope)
    if not state.get(STATE_REQUEST_ID_GIVEN) and _request_id(request_id):
        state[STATE_REQUEST_ID] = request_id
        bind_correlation_id(request_id)


class ApiKeyGate:
    """Every request under `prefix` must carry a live API key (`Authorization: Bearer`).

    Authentication happens here, before the body is read or a route is chosen, so a
    caller without a key learns nothing (not even whether its JSON parses); scopes are
    checked per route (gateway.http.auth).
    """

    def __init__(self, app: ASGIApp, *, authenticator: Authenticator, prefix: str) -> None:
        self.app = app
        self._authenticator = authenticator
        self._prefix = prefix

    def _guards(self, path: str) -> bool:
        return path == self._prefix or path.startswith(self._prefix + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._guards(scope["path"]):
            await self.app(scope, receive, send)
            return
        scheme, _, token = (_header(scope, b"authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            error = http_error(
                401,
                "an API key is required: Authorization: Bearer <key>",
                {"WWW-Authenticate": 'Bearer realm="herald"'},
            )
            await _reply(scope, receive, send, error)
            return
        try:
            key = await self._authenticator.authenticate(token.strip())
        except Exception:
            log.exception("api key lookup failed")
            error = http_error(503, "cannot verify API keys right now; try again later")
            await _reply(scope, receive, send, error)
            return
        if key is None:
            error = http_error(
                401,
                "the API key is not valid (unknown, malformed or revoked)",
                {"WWW-Authenticate": 'Bearer realm="herald", error="invalid_token"'},
            )
            await _reply(scope, receive, send, error)
            return
        _state(scope)[STATE_API_KEY] = key
        structlog.contextvars.bind_contextvars(api_key=key.id)
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuses bodies over `max_bytes` with 413, counting what actually arrives (a
    Content-Length is believed only when it already says too much)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self._max = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = http_error(413, f"the request body is larger than {self._max} bytes")
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max:
            await _reply(scope, receive, send, too_large)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before the body was complete
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max:
                await _reply(scope, receive, send, too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
