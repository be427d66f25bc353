"""API keys: creation (the plaintext shown once), listing and revocation (verification:
`authenticator`).

A key reads `hk_<id>_<secret>`: the id (12 hex digits) finds the row, the whole key's
SHA-256 proves possession. Keys are 256-bit random tokens, so a fast hash is right here
(argon2 protects low-entropy passwords; nothing is gained on a random token but latency).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from gateway.apikeys import scopes as scope_rules
from gateway.apikeys.scopes import Principal, Scope
from gateway.store import apikeys
from gateway.store.apikeys import ApiKeyRow, Conn

PREFIX = "hk"
_TOKEN = re.compile(r"^hk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_ID = re.compile(r"^[0-9a-f]{12}$")
MAX_NAME = 100
# A name: at least one visible character, no control characters.
NAME = re.compile(r"^[^\x00-\x1f\x7f-\x9f]*\S[^\x00-\x1f\x7f-\x9f]*$")


class InvalidKeyRequest(ValueError):
    """A name, scope list or rate that cannot be accepted; `field` names the input at fault
    when there is one."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret."""

    id: str
    name: str
    client_id: str
    scopes: frozenset[Scope]
    create_time: datetime
    revoke_time: datetime | None
    # Its own send rate (per second, burst); None: the gateway's default.
    rate: tuple[int, int] | None = None

    def allows(self, scope: Scope) -> bool:
        return self.principal.allows(scope)

    @property
    def label(self) -> str:
        """How the key is named in records (retries, template versions, reports)."""
        return f"apikey:{self.id}:{self.name}"

    @property
    def principal(self) -> Principal:
        return Principal(
            client_id=self.client_id,
            scopes=self.scopes,
            label=self.label,
            rate_key=self.id,
            rate=self.rate,
        )


@dataclass(frozen=True)
class NewKey:
    key: ApiKey
    token: str  # the plaintext; never stored, shown once


def parse_scopes(text: str | Iterable[str]) -> frozenset[Scope]:
    """`"notifications:send,users:read"` (or a list; legacy `send`, `read` too) as scopes;
    InvalidKeyRequest names an unknown one."""
    try:
        scopes = scope_rules.parse(text)
    except scope_rules.UnknownScope as exc:
        raise InvalidKeyRequest(str(exc)) from None
    if not scopes:
        raise InvalidKeyRequest("at least one scope is required")
    return scopes


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def key_id_of(token: str) -> str | None:
    """The id inside a well-formed key, or None for anything else."""
    match = _TOKEN.match(token)
    return match.group(1) if match else None


def from_row(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        client_id=row["client_id"],
        # A scope this version does not know grants nothing (and breaks nothing).
        scopes=scope_rules.stored(row["scopes"]),
        create_time=row["create_time"],
        revoke_time=row["revoke_time"],
        rate=rate_of(row),
    )


def rate_of(row: ApiKeyRow) -> tuple[int, int] | None:
    """The key's own rate, or None for the default."""
    per_second = row.get("rate_per_second")
    if per_second is None:
        return None
    return (per_second, row.get("rate_burst") or max(per_second, 1))


def check_rate(per_second: int | None, burst: int | None) -> tuple[int, int] | None:
    """A key's rate as given (per second, burst: default the rate; 0 per second:
    unlimited), or None for the default; InvalidKeyRequest when out of range."""
    if per_second is None:
        if burst is not None:
            raise InvalidKeyRequest(
                "required with a burst: a burst needs a rate", "rate_per_second"
            )
        return None
    if not 0 <= per_second <= 1_000_000:
        raise InvalidKeyRequest(
            "must be between 0 (unlimited) and 1000000 per second", "rate_per_second"
        )
    burst = per_second if burst is None else burst
    if not 1 <= burst <= 1_000_000 and per_second:
        raise InvalidKeyRequest("must be between 1 and 1000000", "rate_burst")
    return (per_second, max(burst, 1))


async def create(
    conn: Conn,
    *,
    name: str,
    scopes: frozenset[Scope],
    client_id: str = "",
    rate: tuple[int, int] | None = None,
) -> NewKey:
    """Stores a new key and returns it with its plaintext (the only time it exists).

    The key belongs to `client_id`; without one it is a new client's first key, and the
    client is named by the key's id. `rate` (per second, burst; `check_rate`) is its own
    send rate; None: the gateway's default.
    """
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME or not NAME.match(name):
        raise InvalidKeyRequest(f"name must be 1-{MAX_NAME} characters, no control characters")
    if not scopes:
        raise InvalidKeyRequest("at least one scope is required")
    if client_id and not scope_rules.CLIENT_ID.match(client_id):
        raise InvalidKeyRequest(f"client must be {scope_rules.CLIENT_ID_RULE}")
    key_id = secrets.token_hex(6)
    token = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    row = await apikeys.insert(
        conn,
        key_id=key_id,
        name=name,
        client_id=client_id or key_id,
        scopes=sorted(s.value for s in scopes),
        key_hash=hash_token(token),
        rate=rate,
    )
    return NewKey(from_row(row), token)


async def list_keys(conn: Conn) -> list[ApiKey]:
    return [from_row(row) for row in await apikeys.list_all(conn)]


async def set_rate(conn: Conn, *, key_id: str, rate: tuple[int, int] | None) -> bool:
    """Changes a live key's send rate (None: the default); False when there is none."""
    if not _ID.match(key_id):
        return False
    return await apikeys.set_rate(conn, key_id=key_id, rate=rate)


async def revoke(conn: Conn, *, key_id: str) -> bool:
    """Revokes a live key; False when there is none with that id."""
    if not _ID.match(key_id):
        return False
    return await apikeys.revoke(conn, key_id=key_id)
