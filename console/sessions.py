"""Console sessions: signing in with an API key (admin or operator:read), the session a
cookie names, signing out.

The cookie holds a random 256-bit token; PostgreSQL keeps its SHA-256, the key it was
opened with, its CSRF token and when it expires (migration 016). The key itself is never
stored by the console nor sent back to the browser. Every request reads the session with
its key in one query, so a revoked key ends its sessions at once, on every gateway.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from psycopg_pool import AsyncConnectionPool

from gateway.apikeys import Authenticator, Principal, Scope
from gateway.apikeys.service import ApiKey, from_row
from gateway.store import sessions
from gateway.store.db import connection

COOKIE = "herald_console"


@dataclass(frozen=True)
class Operator:
    """The signed-in operator: the key's principal and the session's CSRF token."""

    key: ApiKey
    csrf_token: str
    expire_time: datetime

    @property
    def principal(self) -> Principal:
        return self.key.principal

    def may(self, scope: Scope) -> bool:
        return self.principal.allows(scope)

    @property
    def read_only(self) -> bool:
        """Sees everything, changes nothing (operator:read without admin)."""
        return not self.may(Scope.ADMIN)


@dataclass(frozen=True)
class Opened:
    cookie: str
    expire_time: datetime


class SignInRefused(Exception):
    """The key is not live, or may not use the console."""


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Sessions:
    def __init__(
        self, *, pool: AsyncConnectionPool, authenticator: Authenticator, seconds: int
    ) -> None:
        self._pool = pool
        self._authenticator = authenticator
        self.seconds = seconds

    async def sign_in(self, api_key: str) -> Opened:
        """Opens a session for a live key holding admin or operator:read."""
        key = await self._authenticator.authenticate(api_key.strip())
        if key is None:
            raise SignInRefused("that API key is not valid (unknown, malformed or revoked)")
        if not key.allows(Scope.OPERATOR_READ):
            raise SignInRefused("the console needs a key with the admin or operator:read scope")
        cookie = secrets.token_urlsafe(32)
        async with connection(self._pool) as conn:
            expires = await sessions.insert(
                conn,
                token_hash=_hash(cookie),
                key_id=key.id,
                csrf_token=secrets.token_urlsafe(32),
                seconds=self.seconds,
            )
        return Opened(cookie, expires)

    async def current(self, cookie: str | None) -> Operator | None:
        """The operator whose live session the cookie names, or None."""
        if not cookie:
            return None
        async with connection(self._pool) as conn:
            row = await sessions.live(conn, token_hash=_hash(cookie))
        if row is None:
            return None
        key = from_row(row.key)
        if not key.allows(Scope.OPERATOR_READ):
            return None
        return Operator(key=key, csrf_token=row.csrf_token, expire_time=row.expire_time)

    async def sign_out(self, cookie: str | None) -> None:
        if cookie:
            async with connection(self._pool) as conn:
                await sessions.delete(conn, token_hash=_hash(cookie))
