"""What a caller may do, and whose notifications it sees: scopes and the `Principal`.

Every API key belongs to one client (`client_id`); a notification records the client
that sent it. A key's scopes are a short list of least-privilege grants:

    scope                what it allows
    -------------------  --------------------------------------------------------------
    notifications:send   send, and retry its own client's failed notifications
    notifications:read   read and list its own client's notifications (others are 404)
    users:read           read users (their email and phone)
    users:write          create, change and delete users and their push targets
                         (includes users:read)
    templates:read       read templates and render previews
    templates:write      create templates and their versions (includes templates:read)
    status:report        report a status for its own client's notifications (recorded
                         as an external report; it never decides a pending one)
    callbacks:write      register, list, rotate and delete its own client's status
                         callback endpoints
    operator:read        read everything, every client's notifications included (the
                         console's viewer); changes nothing
    admin                everything, for every client, and API keys

Keys made before scopes had two parts keep working: `send` reads as notifications:send,
`read` as notifications:read + users:read + templates:read, `admin` stays admin
(`LEGACY`). Migration 011 rewrites stored keys that way; a legacy name is still accepted
wherever scopes are given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from mesh.errors import PermissionDenied

# A client id: letters, digits and . _ : - (it is recorded on every notification).
CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
CLIENT_ID_RULE = "1-100 letters, digits, '.', '_', ':' or '-', starting with a letter or digit"


class Scope(StrEnum):
    NOTIFICATIONS_SEND = "notifications:send"
    NOTIFICATIONS_READ = "notifications:read"
    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    TEMPLATES_READ = "templates:read"
    TEMPLATES_WRITE = "templates:write"
    STATUS_REPORT = "status:report"
    CALLBACKS_WRITE = "callbacks:write"
    OPERATOR_READ = "operator:read"
    ADMIN = "admin"


LEGACY: dict[str, frozenset[Scope]] = {
    "send": frozenset({Scope.NOTIFICATIONS_SEND}),
    "read": frozenset({Scope.NOTIFICATIONS_READ, Scope.USERS_READ, Scope.TEMPLATES_READ}),
}

# A scope a key holds, and the ones it includes.
_INCLUDES: dict[Scope, frozenset[Scope]] = {
    Scope.USERS_WRITE: frozenset({Scope.USERS_READ}),
    Scope.TEMPLATES_WRITE: frozenset({Scope.TEMPLATES_READ}),
    Scope.OPERATOR_READ: frozenset(
        {Scope.NOTIFICATIONS_READ, Scope.USERS_READ, Scope.TEMPLATES_READ}
    ),
    Scope.ADMIN: frozenset(Scope),
}
# Scopes whose holder acts on every client's notifications, not only its own.
_ALL_CLIENTS_READ = frozenset({Scope.OPERATOR_READ, Scope.ADMIN})
_ALL_CLIENTS_WRITE = frozenset({Scope.ADMIN})

SCOPE_NAMES = frozenset(s.value for s in Scope)


class UnknownScope(ValueError):
    """A scope name this version does not know."""


def parse(names: str | Iterable[str]) -> frozenset[Scope]:
    """`"notifications:send,users:read"` (or a list, legacy names included) as scopes.

    UnknownScope names the first unknown one; an empty list is an empty set.
    """
    items = names.split(",") if isinstance(names, str) else list(names)
    scopes: set[Scope] = set()
    for name in (n.strip() for n in items):
        if not name:
            continue
        if name in LEGACY:
            scopes |= LEGACY[name]
        elif name in SCOPE_NAMES:
            scopes.add(Scope(name))
        else:
            known = ", ".join(s.value for s in Scope)
            raise UnknownScope(f"unknown scope {name!r} (known: {known})")
    return frozenset(scopes)


def stored(names: Iterable[str]) -> frozenset[Scope]:
    """A stored key's scopes; a name this version does not know grants nothing."""
    known = [n for n in names if n in SCOPE_NAMES or n in LEGACY]
    return parse(known)


def granted(scopes: Iterable[Scope]) -> frozenset[Scope]:
    """The scopes held, with every scope they include."""
    held = set(scopes)
    for scope in list(held):
        held |= _INCLUDES.get(scope, frozenset())
    return frozenset(held)


@dataclass(frozen=True)
class Principal:
    """Who is calling, for the domain: a client, what it may do, how records name it."""

    client_id: str
    scopes: frozenset[Scope]
    # How the caller is named in records: `apikey:<id>:<name>`, `service:<client>`.
    label: str
    # The API key whose send rate this caller draws on ("" for an internal service: not
    # limited), and that key's own rate (per second, burst); None: the default.
    rate_key: str = ""
    rate: tuple[int, int] | None = None

    def allows(self, scope: Scope) -> bool:
        return scope in granted(self.scopes)

    def require(self, scope: Scope) -> None:
        """PERMISSION_DENIED (403) unless the caller holds `scope`."""
        if not self.allows(scope):
            raise PermissionDenied(f"this caller does not have the {scope.value!r} scope")

    @property
    def reads_all(self) -> bool:
        """Sees every client's notifications (operator:read, admin)."""
        return not self.scopes.isdisjoint(_ALL_CLIENTS_READ)

    @property
    def acts_on_all(self) -> bool:
        """Retries, cancels and reports on every client's notifications (admin)."""
        return not self.scopes.isdisjoint(_ALL_CLIENTS_WRITE)

    @property
    def reading_owner(self) -> str | None:
        """The client whose notifications a read may return; None: every client's."""
        return None if self.reads_all else self.client_id

    @property
    def acting_owner(self) -> str | None:
        """The client whose notifications a change may touch; None: every client's."""
        return None if self.acts_on_all else self.client_id
