"""Numbered SQL migrations, applied in order, each once, each in its own transaction.

A service keeps `NNN_description.sql` files in its `migrations/` folder. Applied ones are
recorded in `schema_migrations` with a checksum; editing an applied file is refused. A
transaction-scoped advisory lock lets several processes start at once safely.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
import structlog

FILENAME = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")
LOCK_KEY = 0x4E52414C44  # arbitrary, constant: "HERALD"-ish

log = structlog.get_logger("mesh.migrations")


class MigrationError(Exception):
    """A migration folder or history that cannot be applied safely."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(folder: Path) -> list[Migration]:
    """The migrations of a folder, ordered; refuses bad names and duplicate numbers."""
    found: dict[int, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        match = FILENAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: name must look like 001_create_users.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"{path.name}: version {version} is used twice")
        found[version] = Migration(version, match.group(2), path.read_text())
    return [found[v] for v in sorted(found)]


async def apply(url: str, folder: Path) -> list[int]:
    """Applies the pending migrations of `folder` to the database at `url`.

    Returns the versions applied now (empty when up to date).
    """
    migrations = discover(folder)
    applied_now: list[int] = []
    async with await psycopg.AsyncConnection.connect(url) as conn:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version integer PRIMARY KEY,
                       name text NOT NULL,
                       checksum text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
        for migration in migrations:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
                cur = await conn.execute(
                    "SELECT checksum FROM schema_migrations WHERE version = %s",
                    (migration.version,),
                )
                row = await cur.fetchone()
                if row is not None:
                    if row[0] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version}_{migration.name} was edited "
                            "after it was applied; add a new migration instead"
                        )
                    continue
                await conn.execute(migration.sql.encode())
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
                applied_now.append(migration.version)
                log.info("migration applied", version=migration.version, name=migration.name)
    return applied_now


async def prepare(server_url: str, database: str, folder: Path) -> list[int]:
    """Creates `database` if needed and applies the migrations of `folder` to it."""
    from mesh.db import ensure_database  # noqa: PLC0415 - keeps this module importable alone

    await ensure_database(server_url, database)
    return await apply(f"{server_url.rstrip('/')}/{database}", folder)
