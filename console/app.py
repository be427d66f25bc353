"""The console's ASGI app: sign-in and sign-out, the pages, static files, the security
headers, and the one place errors become pages."""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.responses import RedirectResponse, Response

from console.pages import activity, failed, inbox, keys, providers, story, templates, users
from console.render import Pages
from console.security import Changer, CsrfRefused, SecurityHeaders, SignInNeeded, changer
from console.services import Services
from console.sessions import COOKIE, SignInRefused
from gateway.http.errors import ApiError
from mesh.errors import DomainError

HERE = Path(__file__).parent
HTMX = HERE / "node_modules" / "htmx.org" / "dist" / "htmx.min.js"
# Sign-in's own CSRF guard: a random value in a cookie and in the form (double submit).
LOGIN_COOKIE = "herald_console_login"


def create_console(services: Services) -> FastAPI:
    """The console, to mount at /console."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.sessions = services.sessions
    pages = Pages()
    app.include_router(_sign_in(services, pages))
    for module in (activity, story, failed, providers, templates, users, inbox, keys):
        app.include_router(module.router(services, pages))
    _require_csrf(app)

    @app.get("/static/htmx.min.js", include_in_schema=False)
    async def htmx() -> Response:
        return Response(HTMX.read_bytes(), media_type="text/javascript")

    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(SignInNeeded)
    async def sign_in_needed(request: Request, _: Exception) -> Response:
        target = f"{request.scope.get('root_path', '')}/login"
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, _: Exception) -> Response:
        return pages(
            request,
            "error.html",
            status_code=403,
            title="Refused",
            message="This change did not carry the session's CSRF token; reload the page "
            "and try again.",
        )

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DomainError)
        return _error_page(pages, request, ApiError.from_domain(exc))

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return _error_page(pages, request, exc)

    app.add_middleware(SecurityHeaders)
    return app


def _error_page(pages: Pages, request: Request, error: ApiError) -> Response:
    titles = {400: "Not valid", 403: "Not allowed", 404: "Not found", 409: "Not now"}
    return pages(
        request,
        "error.html",
        status_code=error.status,
        title=titles.get(error.status, "Something went wrong"),
        message=error.message,
    )


def _require_csrf(app: FastAPI) -> None:
    """Every POST route but sign-in depends on `changer` (its CSRF check), or no start."""
    for route in app.routes:
        if not isinstance(route, APIRoute) or "POST" not in (route.methods or set()):
            continue
        if route.path == "/login":
            continue
        calls = {d.call for d in route.dependant.dependencies}
        if changer not in calls:
            raise RuntimeError(f"console route POST {route.path} has no CSRF check")


def _sign_in(services: Services, pages: Pages) -> APIRouter:
    api = APIRouter()
    secure = services.secure_cookie

    @api.get("/login")
    async def login_form(request: Request) -> Response:
        token = secrets.token_urlsafe(24)
        response = pages(request, "login.html", login_token=token, error="")
        _cookie(request, response, LOGIN_COOKIE, token, max_age=3600, secure=secure)
        return response

    @api.post("/login")
    async def login(
        request: Request,
        api_key: Annotated[str, Form(max_length=200)],
        login_token: Annotated[str, Form(max_length=100)],
    ) -> Response:
        expected = request.cookies.get(LOGIN_COOKIE, "")
        if not expected or not hmac.compare_digest(expected.encode(), login_token.encode()):
            return pages(
                request,
                "login.html",
                status_code=403,
                login_token=expected,
                error="The sign-in form expired; try again.",
            )
        try:
            opened = await services.sessions.sign_in(api_key)
        except SignInRefused as exc:
            return pages(
                request, "login.html", status_code=401, login_token=expected, error=str(exc)
            )
        base = request.scope.get("root_path", "")
        response = RedirectResponse(f"{base}/", status_code=303)
        _cookie(
            request,
            response,
            COOKIE,
            opened.cookie,
            max_age=services.sessions.seconds,
            secure=secure,
        )
        response.delete_cookie(LOGIN_COOKIE, path=base or "/")
        return response

    @api.post("/logout")
    async def logout(request: Request, _: Changer) -> Response:
        await services.sessions.sign_out(request.cookies.get(COOKIE))
        base = request.scope.get("root_path", "")
        response = RedirectResponse(f"{base}/login", status_code=303)
        response.delete_cookie(COOKIE, path=base or "/")
        return response

    return api


def _cookie(
    request: Request, response: Response, name: str, value: str, *, max_age: int, secure: bool
) -> None:
    """HttpOnly, SameSite=Strict, for the console's path only; Secure over https (or when
    `secure` says TLS ended at a proxy)."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=request.scope.get("root_path", "") or "/",
        httponly=True,
        samesite="strict",
        secure=secure or request.url.scheme == "https",
    )
