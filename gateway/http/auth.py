"""Per-route scopes of API keys.

The key itself is verified by `middleware.ApiKeyGate` for every /api/v1 request before
anything else happens; a route declares the scope it needs with one of the annotated
types below (an `ApiKey` parameter), checked before the route's input is validated or
any service is called, so a refused caller learns nothing about resources. Ownership
(whose notifications a key sees) is the domain's: routes pass `key.principal` on.
`gateway.apikeys.scopes` says what each scope allows.
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
    description="An API key from `python -m gateway apikeys create` (or POST "
    "/api/v1/api-keys). Scopes: " + ", ".join(s.value for s in Scope) + ".",
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


def _needs(scope: Scope) -> object:
    return Security(_authorized, scopes=[scope.value])


NotificationsSend = Annotated[ApiKey, _needs(Scope.NOTIFICATIONS_SEND)]
NotificationsRead = Annotated[ApiKey, _needs(Scope.NOTIFICATIONS_READ)]
UsersRead = Annotated[ApiKey, _needs(Scope.USERS_READ)]
UsersWrite = Annotated[ApiKey, _needs(Scope.USERS_WRITE)]
TemplatesRead = Annotated[ApiKey, _needs(Scope.TEMPLATES_READ)]
TemplatesWrite = Annotated[ApiKey, _needs(Scope.TEMPLATES_WRITE)]
StatusReporter = Annotated[ApiKey, _needs(Scope.STATUS_REPORT)]
CallbacksWrite = Annotated[ApiKey, _needs(Scope.CALLBACKS_WRITE)]
Admin = Annotated[ApiKey, _needs(Scope.ADMIN)]
