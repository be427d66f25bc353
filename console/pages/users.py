"""Users: look a user up by id or email; their preferences, contact points, push targets,
whether a contact point is suppressed, and their recent notifications."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from starlette.responses import Response

from console.render import Pages
from console.security import Viewer
from console.services import Services
from gateway.apikeys import Scope
from gateway.http.backends import call
from gateway.http.convert import users as convert
from herald.v1 import user_pb2

RECENT = 20


def router(services: Services, pages: Pages) -> APIRouter:
    api = APIRouter()
    backends = services.backends

    @api.get("/users")
    async def users(request: Request, operator: Viewer, q: str = "") -> Response:
        operator.principal.require(Scope.USERS_READ)
        wanted = q.strip()[:320]
        if not wanted:
            return pages(request, "users.html", q="", user=None, recent=[], suppressed=[])
        try:
            asked = user_pb2.GetUserRequest(id=str(uuid.UUID(wanted)))
        except ValueError:
            asked = user_pb2.GetUserRequest(email=wanted)
        answer = await call(
            backends.users.GetUser, asked, timeout=backends.timeout, renames={"email": "q"}
        )
        user = convert.user(answer.user)
        recent = await services.notifications.list(
            principal=operator.principal, user_id=uuid.UUID(user.id), page_size=RECENT
        )
        suppressed = []
        for channel, contact in (("email", user.email), ("sms", user.phone)):
            if contact:
                found = await services.suppressions.list(channel=channel, contact=contact)
                suppressed += found.entries
        return pages(
            request,
            "users.html",
            q=wanted,
            user=user,
            recent=recent.notifications,
            suppressed=suppressed,
        )

    return api
