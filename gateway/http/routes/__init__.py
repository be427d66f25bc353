"""The /api/v1 routes, one module per service; each builds its router over `Backends`."""

from __future__ import annotations

from typing import Any

from gateway.http.schemas.common import ErrorResponse

_DESCRIPTIONS = {
    400: "Invalid input; `fields` names each field at fault.",
    401: "Missing, malformed, unknown or revoked API key.",
    403: "The API key lacks the scope this route needs.",
    404: "No such resource.",
    409: "Conflicts with the resource's state (already exists, request_id reused).",
    413: "Request body larger than HERALD_GATEWAY_MAX_BODY_BYTES.",
    429: "Over a limit (the API key's send rate) or a service over capacity; retry after "
    "the `Retry-After` header's seconds when it is given.",
    500: "Internal error.",
    501: "Not implemented by this Herald version.",
    503: "A service Herald depends on is unavailable; retry later.",
    504: "A service Herald depends on did not answer in time.",
}
_ALWAYS = (400, 401, 403, 429, 500, 501, 503, 504)


def error_responses(*statuses: int, body: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the errors a route can answer, all in the one error shape."""
    codes = sorted({*_ALWAYS, *statuses, *((413,) if body else ())})
    return {c: {"model": ErrorResponse, "description": _DESCRIPTIONS[c]} for c in codes}
