"""Callback endpoints as clients manage them: register one (its secret shown once), list,
read, rotate the secret with an overlap, delete. A client manages its own (scope
callbacks:write); admin manages any client's. Another client's endpoint answers
NOT_FOUND, as a missing one does.

Where callbacks may go follows `mesh.outbound`: https to a public host, checked here by
URL and again, on every address the name resolves to, when the callbacks process connects;
loopback only with HERALD_OUTBOUND_ALLOW_LOOPBACK (tests, local development; set it alike
on both processes).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from psycopg_pool import AsyncConnectionPool

from gateway.apikeys.scopes import CLIENT_ID, CLIENT_ID_RULE, Principal, Scope
from gateway.callbacks.model import EVENT_KINDS
from gateway.store import callbacks, db
from gateway.store.callbacks import Endpoint
from mesh.errors import InvalidArgument, NotFound, ResourceExhausted
from mesh.outbound import OutboundRefused, OutboundRule
from mesh.signing import new_secret

MAX_URL = 2000
MAX_DESCRIPTION = 500
# How long a rotated-out secret still signs, unless the caller says otherwise.
DEFAULT_OVERLAP = timedelta(hours=24)
MAX_OVERLAP = timedelta(days=7)


@dataclass(frozen=True)
class Registered:
    """An endpoint with its secret: answered once, at registration or rotation."""

    endpoint: Endpoint
    secret: str


class CallbackEndpoints:
    def __init__(
        self, pool: AsyncConnectionPool, *, rule: OutboundRule, max_per_client: int
    ) -> None:
        self._pool = pool
        self._rule = rule
        self._max = max_per_client

    def _owner(self, principal: Principal, client_id: str | None) -> str:
        """The client an admin names, else the caller's own."""
        principal.require(Scope.CALLBACKS_WRITE)
        if not client_id or client_id == principal.client_id:
            return principal.client_id
        if not principal.acts_on_all:
            raise NotFound("no such client")  # another client's: as if it did not exist
        if not CLIENT_ID.match(client_id):
            raise InvalidArgument.field("client_id", f"must be {CLIENT_ID_RULE}")
        return client_id

    def _check_url(self, url: str) -> str:
        url = url.strip()
        if not url:
            raise InvalidArgument.field("url", "is required")
        if len(url) > MAX_URL:
            raise InvalidArgument.field("url", f"must be at most {MAX_URL} characters")
        try:
            self._rule.check_url(url)
        except OutboundRefused as exc:
            raise InvalidArgument.field(
                "url", f"{exc}: callbacks go to https URLs of public hosts"
            ) from None
        return url

    async def create(
        self,
        principal: Principal,
        *,
        url: str,
        events: str = "all",
        description: str = "",
        client_id: str | None = None,
    ) -> Registered:
        owner = self._owner(principal, client_id)
        url = self._check_url(url)
        if events not in EVENT_KINDS:
            raise InvalidArgument.field("events", "must be all or final")
        if len(description) > MAX_DESCRIPTION:
            raise InvalidArgument.field(
                "description", f"must be at most {MAX_DESCRIPTION} characters"
            )
        secret = new_secret()
        async with db.transaction(self._pool) as conn:
            if await callbacks.count_endpoints(conn, owner) >= self._max:
                raise ResourceExhausted(
                    f"client {owner} already has {self._max} callback endpoints"
                )
            endpoint = await callbacks.create_endpoint(
                conn,
                client_id=owner,
                url=url,
                events=events,
                description=description,
                created_by=principal.label,
                secret=secret,
            )
        return Registered(endpoint, secret)

    async def list(self, principal: Principal, client_id: str | None = None) -> list[Endpoint]:
        """The caller's endpoints; an admin's: the named client's, or every client's."""
        principal.require(Scope.CALLBACKS_WRITE)
        owner = (client_id or None) if principal.acts_on_all else self._owner(principal, client_id)
        async with db.transaction(self._pool) as conn:
            return await callbacks.endpoints(conn, owner)

    async def get(self, principal: Principal, endpoint_id: uuid.UUID) -> Endpoint:
        principal.require(Scope.CALLBACKS_WRITE)
        async with db.transaction(self._pool) as conn:
            return await self._find(conn, principal, endpoint_id)

    async def delete(self, principal: Principal, endpoint_id: uuid.UUID) -> int:
        """Deletes it; answers how many callbacks not yet posted were cancelled."""
        principal.require(Scope.CALLBACKS_WRITE)
        async with db.transaction(self._pool) as conn:
            await self._find(conn, principal, endpoint_id)
            return await callbacks.delete_endpoint(conn, endpoint_id)

    async def rotate(
        self, principal: Principal, endpoint_id: uuid.UUID, *, overlap: timedelta | None = None
    ) -> Registered:
        """A new secret; the old ones keep signing (beside it) for `overlap`."""
        principal.require(Scope.CALLBACKS_WRITE)
        overlap = DEFAULT_OVERLAP if overlap is None else overlap
        if overlap < timedelta(0) or overlap > MAX_OVERLAP:
            raise InvalidArgument.field(
                "overlap_seconds", f"must be between 0 and {int(MAX_OVERLAP.total_seconds())}"
            )
        secret = new_secret()
        async with db.transaction(self._pool) as conn:
            endpoint = await self._find(conn, principal, endpoint_id)
            await callbacks.rotate_secret(conn, endpoint_id, secret, overlap)
        return Registered(endpoint, secret)

    async def _find(self, conn: db.Conn, principal: Principal, endpoint_id: uuid.UUID) -> Endpoint:
        found = await callbacks.endpoint(conn, endpoint_id, principal.acting_owner)
        if found is None:
            raise NotFound(f"callback endpoint {endpoint_id} not found")
        return found
