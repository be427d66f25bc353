"""Password hashing with argon2id, off the event loop (a hash takes tens of milliseconds)."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher


class Passwords:
    """Hashes passwords with argon2-cffi's defaults (argon2id, RFC 9106 low-memory profile)."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()

    async def hash(self, password: str) -> str:
        """The PHC string (`$argon2id$v=19$...`) to store; the password itself never is."""
        return await asyncio.to_thread(self._hasher.hash, password)
