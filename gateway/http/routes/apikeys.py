"""`/api/v1/api-keys`: create, list and revoke API keys (scope: admin). A key revoked here
fails at once on this gateway, and on the others as soon as PostgreSQL tells them."""

from __future__ import annotations

from fastapi import APIRouter, Response

from gateway.apikeys import ApiKey, ApiKeys
from gateway.apikeys.service import InvalidKeyRequest, check_rate
from gateway.http.auth import Admin
from gateway.http.errors import ApiError, http_error
from gateway.http.routes import error_responses
from gateway.http.schemas.apikeys import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyOut,
    ApiKeyRate,
)


def _out(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=key.id,
        name=key.name,
        client_id=key.client_id,
        scopes=sorted(key.scopes),
        created_at=key.create_time,
        revoked_at=key.revoke_time,
        rate_per_second=key.rate[0] if key.rate else None,
        rate_burst=key.rate[1] if key.rate else None,
    )


def router(keys: ApiKeys, prefix: str) -> APIRouter:
    api = APIRouter(prefix=f"{prefix}/api-keys", tags=["api-keys"])

    @api.post(
        "/",
        status_code=201,
        responses=error_responses(body=True),
        summary="Create an API key; the key is in this answer only (scope: admin)",
    )
    async def create_key(_: Admin, body: ApiKeyCreate) -> ApiKeyCreated:
        try:
            new = await keys.create(
                name=body.name,
                scopes=frozenset(body.scopes),
                client_id=body.client_id or "",
                rate=check_rate(body.rate_per_second, body.rate_burst),
            )
        except InvalidKeyRequest as exc:
            raise _refused(exc) from None
        return ApiKeyCreated(**_out(new.key).model_dump(), key=new.token)

    @api.get(
        "/",
        responses=error_responses(),
        summary="List API keys, never their secrets (scope: admin)",
    )
    async def list_keys(_: Admin) -> ApiKeyList:
        return ApiKeyList(items=[_out(k) for k in await keys.list()])

    @api.put(
        "/{key_id}/rate",
        status_code=204,
        response_class=Response,
        responses=error_responses(404, body=True),
        summary="Set an API key's send rate (scope: admin)",
    )
    async def set_rate(_: Admin, key_id: str, body: ApiKeyRate) -> Response:
        """Every gateway applies the new rate at once (PostgreSQL tells them)."""
        try:
            rate = check_rate(body.rate_per_second, body.rate_burst)
        except InvalidKeyRequest as exc:
            raise _refused(exc) from None
        if not await keys.set_rate(key_id, rate):
            raise http_error(404, f"no live API key with id {key_id!r}")
        return Response(status_code=204)

    @api.delete(
        "/{key_id}",
        status_code=204,
        response_class=Response,
        responses=error_responses(404),
        summary="Revoke an API key, at once (scope: admin)",
    )
    async def revoke_key(_: Admin, key_id: str) -> Response:
        if not await keys.revoke(key_id):
            raise http_error(404, f"no live API key with id {key_id!r}")
        return Response(status_code=204)

    return api


def _refused(exc: InvalidKeyRequest) -> Exception:
    return ApiError.invalid(exc.field, str(exc)) if exc.field else http_error(400, str(exc))
