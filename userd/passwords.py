"""Password hashing with argon2id, off the event loop (a hash takes tens of milliseconds)."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher, profiles

from userd.settings import PasswordProfile

PROFILES = {
    "rfc_9106_low_memory": profiles.RFC_9106_LOW_MEMORY,
    "rfc_9106_high_memory": profiles.RFC_9106_HIGH_MEMORY,
    "cheapest": profiles.CHEAPEST,
}


class Passwords:
    """Hashes passwords with argon2id, by default argon2-cffi's (RFC 9106's low-memory
    profile); HERALD_USERD_PASSWORD_HASH_PROFILE picks another."""

    def __init__(self, profile: PasswordProfile = "rfc_9106_low_memory") -> None:
        self._hasher = PasswordHasher.from_parameters(PROFILES[profile])

    async def hash(self, password: str) -> str:
        """The PHC string (`$argon2id$v=19$...`) to store; the password itself never is."""
        return await asyncio.to_thread(self._hasher.hash, password)
