"""The edge's one error shape and its one table: domain error ↔ gRPC code ↔ HTTP status.

Each `mesh.errors.DomainError` subclass names its gRPC code (`NotFound.code`, what the
servers' interceptor answers); the table below gives each code its HTTP status. The
domain's errors (raised in process by the gateway's own notifications and statuses) and
the failed calls to userd and templated (an `AioRpcError` with that code) both answer
through it.

Every error answer reads
`{"error": {"code": "INVALID_ARGUMENT", "message": "...", "fields": [{"field": "variables.name",
"description": "..."}]}}`; `code` is a gRPC code name (or one of the edge's own: NOT_FOUND,
METHOD_NOT_ALLOWED, PAYLOAD_TOO_LARGE, ...), `fields` names the fields at fault as dotted
paths of the JSON body (`notifications[3].user_id`) or query/path parameter names.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

import grpc
import orjson
import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Route

from gateway.http.schemas.common import PATTERN_RULES
from mesh.errors import DomainError, InvalidArgument, ResourceExhausted
from mesh.interceptors import field_violations

log = structlog.get_logger("gateway.http")


@dataclass(frozen=True)
class Rule:
    """How one gRPC code reaches the client: a status, and the message to show.

    `public` replaces the service's message (server-side failures: the client learns
    nothing about internal addresses or states); None passes the message through.
    """

    status: int
    public: str | None = None


_UNAVAILABLE = "a service Herald depends on is unavailable; try again later"

# THE table. Herald's services use FAILED_PRECONDITION for "contradicts the resource's
# state" (e.g. a request_id reused with another payload), hence 409 rather than 400.
# UNAUTHENTICATED from a service means the gateway's own service token was refused: a
# misconfiguration, not the client's fault, so never a 401 the client would misread.
# CANCELLED reaches a client only when a service cancelled the call (shutting down).
GRPC_TO_HTTP: Final[Mapping[grpc.StatusCode, Rule]] = {
    grpc.StatusCode.INVALID_ARGUMENT: Rule(400),
    grpc.StatusCode.OUT_OF_RANGE: Rule(400),
    grpc.StatusCode.PERMISSION_DENIED: Rule(403),
    grpc.StatusCode.NOT_FOUND: Rule(404),
    grpc.StatusCode.ALREADY_EXISTS: Rule(409),
    grpc.StatusCode.FAILED_PRECONDITION: Rule(409),
    grpc.StatusCode.ABORTED: Rule(409),
    grpc.StatusCode.RESOURCE_EXHAUSTED: Rule(429),
    grpc.StatusCode.CANCELLED: Rule(503, _UNAVAILABLE),
    grpc.StatusCode.UNKNOWN: Rule(500, "internal error"),
    grpc.StatusCode.INTERNAL: Rule(500, "internal error"),
    grpc.StatusCode.DATA_LOSS: Rule(500, "internal error"),
    grpc.StatusCode.UNAUTHENTICATED: Rule(500, "internal error"),
    grpc.StatusCode.UNIMPLEMENTED: Rule(501, "not implemented by this Herald version"),
    grpc.StatusCode.UNAVAILABLE: Rule(503, _UNAVAILABLE),
    grpc.StatusCode.DEADLINE_EXCEEDED: Rule(504, "a service Herald depends on did not answer"),
}

# The edge's own errors that are not gRPC answers, by HTTP status.
_HTTP_CODES: Final[Mapping[int, str]] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass(frozen=True)
class FieldError:
    field: str
    description: str


class ApiError(Exception):
    """An error answer: raised by routes and helpers, rendered by one handler."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = list(fields)
        self.headers = dict(headers or {})

    @classmethod
    def invalid(cls, field: str, description: str) -> ApiError:
        return cls(
            400, "INVALID_ARGUMENT", f"{field}: {description}", [FieldError(field, description)]
        )

    @classmethod
    def of(
        cls,
        code: grpc.StatusCode,
        details: str,
        violations: Sequence[tuple[str, str]] = (),
        renames: Mapping[str, str] | None = None,
    ) -> ApiError:
        """The answer for an error with this code, field paths renamed to the JSON's."""
        rule = GRPC_TO_HTTP.get(code, Rule(500, "internal error"))
        if rule.status >= 500:
            log.warning("service failed", grpc_code=code.name, details=details)
        fields: list[FieldError] = []
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            fields = [FieldError(rename_field(f, renames), d) for f, d in violations]
        message = rule.public or details or code.name
        if fields and rule.public is None:
            message = "; ".join(f"{f.field}: {f.description}" for f in fields)
        return cls(rule.status, code.name, message, fields)

    @classmethod
    def from_domain(cls, error: DomainError, renames: Mapping[str, str] | None = None) -> ApiError:
        """The answer for a domain error raised in process."""
        violations = (
            [(v.field, v.description) for v in error.violations]
            if isinstance(error, InvalidArgument)
            else []
        )
        answer = cls.of(error.code, error.message, violations, renames)
        if isinstance(error, ResourceExhausted) and error.retry_after is not None:
            # Whole seconds, rounded up: a client that waits this long is let through.
            answer.headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
        return answer

    @classmethod
    def from_rpc(
        cls, error: grpc.aio.AioRpcError, renames: Mapping[str, str] | None = None
    ) -> ApiError:
        """The answer for a failed gRPC call to another service."""
        return cls.of(error.code(), error.details() or "", field_violations(error), renames)

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "fields": [{"field": f.field, "description": f.description} for f in self.fields],
            }
        }

    def response(self) -> Response:
        return Response(
            orjson.dumps(self.body()),
            status_code=self.status,
            media_type="application/json",
            headers=self.headers,
        )


def rename_field(path: str, renames: Mapping[str, str] | None) -> str:
    """`channel` → `notification_type`, `requests[2].channel` → `notifications[2]...`:
    each dotted segment (index kept) renamed by `renames`; renamed to "" it is dropped."""
    if not renames:
        return path
    out: list[str] = []
    for segment in path.split("."):
        name, bracket, rest = segment.partition("[")
        renamed = renames.get(name, name)
        if renamed or bracket:
            out.append(renamed + bracket + rest)
    return ".".join(out) or path


@contextmanager
def domain_errors(renames: Mapping[str, str] | None = None) -> Iterator[None]:
    """Answers a domain error raised inside through the table, fields renamed."""
    try:
        yield
    except DomainError as exc:
        raise ApiError.from_domain(exc, renames) from None


def http_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> ApiError:
    """An error of the edge itself (not a gRPC answer)."""
    return ApiError(status, _HTTP_CODES.get(status, f"HTTP_{status}"), message, headers=headers)


def _location(loc: Sequence[str | int], body: Any = None) -> str:
    """A pydantic error location as the client spells it: `notifications[3].user_id`.

    `body` (the parsed JSON) tells a field from a union's tag, which pydantic puts in the
    location too (`push_targets[0].webpush.web_push`): a step the body does not have, short
    of the last, is a tag."""
    where = list(loc)
    node = body if where[:1] == ["body"] else None
    if where and where[0] in ("body", "query", "path", "header"):
        where = where[1:]
    path = ""
    for index, part in enumerate(where):
        if isinstance(part, int):
            path += f"[{part}]"
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            continue
        if isinstance(node, dict) and part not in node and index < len(where) - 1:
            continue
        path += f".{part}" if path else str(part)
        node = node.get(part) if isinstance(node, dict) else None
    return path or "body"


def _describe(error: Mapping[str, Any], body: Any = None) -> tuple[str, str]:
    loc = tuple(error.get("loc", ()))
    kind = error.get("type", "")
    where = _location(loc, body)
    if kind == "extra_forbidden":
        return where, f"unknown field {str(loc[-1]) if loc else '?'!r}"
    if kind == "json_invalid":
        detail = (error.get("ctx") or {}).get("error", "")
        return "body", f"not valid JSON ({detail})" if detail else "not valid JSON"
    if kind == "missing":
        return where, "required"
    if kind == "string_pattern_mismatch":
        rule = PATTERN_RULES.get((error.get("ctx") or {}).get("pattern", ""))
        if rule:
            return where, rule
    message = str(error.get("msg", "invalid value"))
    return where, message.removeprefix("Value error, ")


async def _api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    fields = [FieldError(*_describe(e, exc.body)) for e in exc.errors()]
    message = "; ".join(f"{f.field}: {f.description}" for f in fields) or "invalid request"
    return ApiError(400, "INVALID_ARGUMENT", message, fields).response()


class AllowedMethods:
    """The methods each path answers, for the Allow header of a 405 (Starlette's names
    only the first route that matched the path)."""

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self._routes = [r for r in routes if isinstance(r, Route) and r.methods]

    def of(self, path: str) -> str:
        methods = {
            method
            for route in self._routes
            if route.path_regex.match(path)
            for method in route.methods or ()
            if method != "HEAD"  # implied by GET, and not a documented operation
        }
        return ", ".join(sorted(methods))


def _http_exception(allowed: AllowedMethods) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed.of(request.url.path)
        return http_error(exc.status_code, message, headers).response()

    return handle


def install(app: FastAPI, allowed: AllowedMethods) -> None:
    """Makes every error the app raises on purpose answer in the one shape (anything
    else becomes a 500 in the same shape in middleware.RequestContext)."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception(allowed))
