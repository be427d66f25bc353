"""API keys: creation (the plaintext shown once), listing, revocation, and verification.

A key reads `hk_<id>_<secret>`: the id (12 hex digits) finds the row, the whole key's
SHA-256 proves possession. Keys are 256-bit random tokens, so a fast hash is right here
(argon2 protects low-entropy passwords; nothing is gained on a random token but latency).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from psycopg_pool import AsyncConnectionPool

from gateway.store import apikeys
from gateway.store.apikeys import ApiKeyRow, Conn

PREFIX = "hk"
_TOKEN = re.compile(r"^hk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_ID = re.compile(r"^[0-9a-f]{12}$")
MAX_NAME = 100


class Scope(StrEnum):
    """What a key may do. `admin` includes the other two."""

    SEND = "send"
    READ = "read"
    ADMIN = "admin"


_SCOPE_NAMES = frozenset(s.value for s in Scope)


class InvalidKeyRequest(ValueError):
    """A name or scope list the CLI cannot accept."""


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret."""

    id: str
    name: str
    scopes: frozenset[Scope]
    create_time: datetime
    revoke_time: datetime | None

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes or Scope.ADMIN in self.scopes

    @property
    def label(self) -> str:
        """How the key is named in records (retries, template versions)."""
        return f"apikey:{self.id}:{self.name}"


@dataclass(frozen=True)
class NewKey:
    key: ApiKey
    token: str  # the plaintext; never stored, shown once


def parse_scopes(text: str | Iterable[str]) -> frozenset[Scope]:
    """`"send,read"` (or a list) as scopes; InvalidKeyRequest names an unknown one."""
    names = text.split(",") if isinstance(text, str) else list(text)
    scopes: set[Scope] = set()
    for name in (n.strip() for n in names):
        if not name:
            continue
        try:
            scopes.add(Scope(name))
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise InvalidKeyRequest(f"unknown scope {name!r} (known: {known})") from None
    if not scopes:
        raise InvalidKeyRequest("at least one scope is required")
    return frozenset(scopes)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def key_id_of(token: str) -> str | None:
    """The id inside a well-formed key, or None for anything else."""
    match = _TOKEN.match(token)
    return match.group(1) if match else None


def _from_row(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        # A scope this version does not know grants nothing (and breaks nothing).
        scopes=frozenset(Scope(s) for s in row["scopes"] if s in _SCOPE_NAMES),
        create_time=row["create_time"],
        revoke_time=row["revoke_time"],
    )


async def create(conn: Conn, *, name: str, scopes: frozenset[Scope]) -> NewKey:
    """Stores a new key and returns it with its plaintext (the only time it exists)."""
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME or not name.isprintable():
        raise InvalidKeyRequest(f"name must be 1-{MAX_NAME} printable characters")
    if not scopes:
        raise InvalidKeyRequest("at least one scope is required")
    key_id = secrets.token_hex(6)
    token = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    row = await apikeys.insert(
        conn,
        key_id=key_id,
        name=name,
        scopes=sorted(s.value for s in scopes),
        key_hash=hash_token(token),
    )
    return NewKey(_from_row(row), token)


async def list_keys(conn: Conn) -> list[ApiKey]:
    return [_from_row(row) for row in await apikeys.list_all(conn)]


async def revoke(conn: Conn, *, key_id: str) -> bool:
    """Revokes a live key; False when there is none with that id."""
    if not _ID.match(key_id):
        return False
    return await apikeys.revoke(conn, key_id=key_id)


@dataclass(frozen=True)
class _Entry:
    expires: float
    row: ApiKeyRow | None


class Authenticator:
    """Verifies presented keys, caching each key's row for `ttl` seconds.

    The cache keeps authentication off the database on the hot path; the price is that a
    revocation takes effect within `ttl` seconds. Concurrent misses for one id share one
    query. Unknown ids are cached too (so a flood of bad keys costs one query per id per
    ttl), and the cache is bounded.
    """

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        ttl: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._cache: dict[str, _Entry] = {}
        self._pending: dict[str, asyncio.Future[ApiKeyRow | None]] = {}

    async def authenticate(self, token: str) -> ApiKey | None:
        """The live key `token` proves, or None (malformed, unknown, wrong, revoked).

        Raises whatever the database raises when the row cannot be read.
        """
        key_id = key_id_of(token)
        if key_id is None:
            return None
        row = await self._row(key_id)
        if row is None or row["revoke_time"] is not None:
            return None
        if not hmac.compare_digest(bytes(row["key_hash"]), hash_token(token)):
            return None
        return _from_row(row)

    async def _row(self, key_id: str) -> ApiKeyRow | None:
        now = self._clock()
        entry = self._cache.get(key_id)
        if entry is not None and entry.expires > now:
            return entry.row
        pending = self._pending.get(key_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ApiKeyRow | None] = asyncio.get_running_loop().create_future()
        self._pending[key_id] = future
        try:
            async with self._pool.connection() as conn:
                row = await apikeys.get(conn, key_id=key_id)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # marks it retrieved when nobody else waits on it
            raise
        finally:
            del self._pending[key_id]
        future.set_result(row)
        self._remember(key_id, row, now)
        return row

    def _remember(self, key_id: str, row: ApiKeyRow | None, now: float) -> None:
        if self._ttl <= 0:
            return
        if len(self._cache) >= self._max_entries:
            self._cache = {k: e for k, e in self._cache.items() if e.expires > now}
            if len(self._cache) >= self._max_entries:
                self._cache.clear()
        self._cache[key_id] = _Entry(now + self._ttl, row)
