"""API keys: the list (everyone signed in), create (shown once) and revoke (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from console.render import Pages
from console.security import Changer, Viewer
from console.services import Services
from gateway.apikeys import Scope
from gateway.apikeys.service import InvalidKeyRequest, NewKey, parse_scopes
from mesh.errors import InvalidArgument


def router(services: Services, pages: Pages) -> APIRouter:
    api = APIRouter()
    keys = services.keys

    async def listing(request: Request, created: NewKey | None = None) -> Response:
        found = await keys.list()
        found.sort(key=lambda k: (k.revoke_time is not None, k.create_time))
        return pages(
            request, "keys.html", keys=found, scopes=[s.value for s in Scope], created=created
        )

    @api.get("/keys")
    async def list_keys(request: Request, operator: Viewer) -> Response:
        operator.principal.require(Scope.OPERATOR_READ)
        return await listing(request)

    @api.post("/keys")
    async def create_key(
        request: Request,
        operator: Changer,
        name: Annotated[str, Form(max_length=100)],
        client: Annotated[str, Form(max_length=100)] = "",
    ) -> Response:
        """A new key; its plaintext is in this answer only (never in a URL)."""
        operator.principal.require(Scope.ADMIN)
        form = await request.form()
        chosen = [str(v) for v in form.getlist("scopes")]
        try:
            created = await keys.create(
                name=name, scopes=parse_scopes(chosen), client_id=client.strip()
            )
        except InvalidKeyRequest as exc:
            field = "scopes" if "scope" in str(exc) else "name"
            raise InvalidArgument.field(field, str(exc)) from None
        return await listing(request, created=created)

    @api.post("/keys/{key_id}/revoke")
    async def revoke_key(request: Request, operator: Changer, key_id: str) -> Response:
        operator.principal.require(Scope.ADMIN)
        await keys.revoke(key_id)
        base = request.scope.get("root_path", "")
        return RedirectResponse(f"{base}/keys", status_code=303)

    return api
