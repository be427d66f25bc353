"""Who may see and change what in the console: the session behind each page, CSRF on
every change, and the response headers (a strict Content-Security-Policy).

Every route that changes anything is a POST that depends on `changer`: its CSRF token
(the form's `csrf_token` field, or htmx's `X-CSRF-Token` header) must equal the
session's. `create_console` refuses to start if some POST route lacks it.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from console.sessions import COOKIE, Operator, Sessions

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

# Scripts and styles only from the console's own files: no inline script or style, no
# eval. Frames only from the console (the email preview, itself sandboxed).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
# The email preview: the email's own inline styles and remote images may show; nothing
# runs (the CSP sandbox makes it a unique origin without scripts even when opened alone).
EMAIL_CSP = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
    "font-src https: data:; frame-ancestors 'self'"
)


class SignInNeeded(Exception):
    """No live session: the browser is sent to the sign-in page."""


class CsrfRefused(Exception):
    """A change without its session's CSRF token."""


async def viewer(request: Request) -> Operator:
    """The signed-in operator (the app's `state.sessions` reads the cookie's session)."""
    sessions: Sessions = request.app.state.sessions
    operator = await sessions.current(request.cookies.get(COOKIE))
    if operator is None:
        raise SignInNeeded()
    request.state.operator = operator
    return operator


async def changer(request: Request, operator: Annotated[Operator, Depends(viewer)]) -> Operator:
    """The operator, once the request's CSRF token is the session's."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if sent is None or not hmac.compare_digest(sent.encode(), operator.csrf_token.encode()):
        raise CsrfRefused()
    return operator


# What a page's parameters say: it shows something, or it changes something.
Viewer = Annotated[Operator, Depends(viewer)]
Changer = Annotated[Operator, Depends(changer)]


class SecurityHeaders:
    """Adds the CSP (unless a route set its own) and the other headers to every answer;
    pages are never cached (they show what one operator may see)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                names = {name.lower() for name, _ in headers}
                extra = {
                    b"content-security-policy": CSP.encode(),
                    b"x-content-type-options": b"nosniff",
                    b"referrer-policy": b"no-referrer",
                    b"x-frame-options": b"DENY",
                    b"cache-control": b"public, max-age=3600" if static else b"no-store",
                }
                if b"content-security-policy" in names:
                    extra[b"x-frame-options"] = b"SAMEORIGIN"  # the email preview, framed
                headers += [(k, v) for k, v in extra.items() if k not in names]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
