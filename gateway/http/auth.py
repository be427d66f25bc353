"""Per-route scopes of API keys.

The key itself is verified by `middleware.ApiKeyGate` for every /api/v1 request before
anything else happens; a route declares the scope it needs with `Send`, `Read` or
`Admin` (an `ApiKey` parameter), checked before the route's input is validated or any
service is called, so a refused caller learns nothing about resources.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes

from gateway.apikeys import ApiKey, Scope
from gateway.http.errors import http_error
from gateway.http.middleware import STATE_API_KEY

# Declares the scheme in /openapi.json; the header itself was read by ApiKeyGate.
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    bearerFormat="hk_<id>_<secret>",
    description="An API key from `python -m gateway apikeys create`. Scopes: send, read, "
    "admin (admin includes send and read).",
)


async def _authorized(
    request: Request,
    required: SecurityScopes,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ApiKey:
    key = request.scope.get("state", {}).get(STATE_API_KEY)
    if not isinstance(key, ApiKey):
        # Only reachable if a scoped route is mounted outside the gate's prefix.
        raise http_error(401, "an API key is required", {"WWW-Authenticate": "Bearer"})
    for scope in required.scopes:
        if not key.allows(Scope(scope)):
            raise http_error(403, f"this API key does not have the {scope!r} scope")
    return key


Send = Annotated[ApiKey, Security(_authorized, scopes=[Scope.SEND.value])]
Read = Annotated[ApiKey, Security(_authorized, scopes=[Scope.READ.value])]
Admin = Annotated[ApiKey, Security(_authorized, scopes=[Scope.ADMIN.value])]
