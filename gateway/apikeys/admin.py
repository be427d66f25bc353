"""Key management inside a serving process (the REST edge's admin routes)."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from gateway.apikeys.authenticator import Authenticator
from gateway.apikeys.scopes import Scope
from gateway.apikeys.service import ApiKey, NewKey, create, list_keys, set_rate


class ApiKeys:
    """Key management for a serving process (the REST edge's admin routes): a revocation
    here fails the key at once in this process, through its `Authenticator`."""

    def __init__(self, pool: AsyncConnectionPool, authenticator: Authenticator) -> None:
        self._pool = pool
        self._authenticator = authenticator

    async def create(
        self,
        *,
        name: str,
        scopes: frozenset[Scope],
        client_id: str,
        rate: tuple[int, int] | None = None,
    ) -> NewKey:
        async with self._pool.connection() as conn:
            return await create(conn, name=name, scopes=scopes, client_id=client_id, rate=rate)

    async def set_rate(self, key_id: str, rate: tuple[int, int] | None) -> bool:
        """Changes a key's send rate; every gateway reads the key again at once."""
        async with self._pool.connection() as conn:
            done = await set_rate(conn, key_id=key_id, rate=rate)
        self._authenticator.forget(key_id)
        return done

    async def list(self) -> list[ApiKey]:
        async with self._pool.connection() as conn:
            return await list_keys(conn)

    async def revoke(self, key_id: str) -> bool:
        return await self._authenticator.revoke(key_id)
