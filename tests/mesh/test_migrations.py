"""The migration runner against a real PostgreSQL database of the run's own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from mesh import db, migrations
from mesh.migrations import MigrationError
from tests.support.infra import POSTGRES_URL, Isolation


@pytest.fixture
async def database(isolation: Isolation, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    name = isolation.database(f"mig_{request.node.name[-20:].lower().strip('_')}")
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    await db.drop_database(POSTGRES_URL, name)
    yield name
    await db.drop_database(POSTGRES_URL, name)


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(exist_ok=True)
    for filename, sql in files.items():
        (folder / filename).write_text(sql)
    return folder


async def _tables(url: str) -> set[str]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row[0] for row in await cur.fetchall()}


async def test_applies_in_order_once_and_creates_the_database(
    database: str, tmp_path: Path
) -> None:
    folder = _write(
        tmp_path / "m",
        {
            "002_add_b.sql": "CREATE TABLE b (id int REFERENCES a(id));",
            "001_create_a.sql": "CREATE TABLE a (id int PRIMARY KEY);",
        },
    )
    assert await migrations.prepare(POSTGRES_URL, database, folder) == [1, 2]
    assert await migrations.prepare(POSTGRES_URL, database, folder) == []
    url = f"{POSTGRES_URL}/{database}"
    assert {"a", "b", "schema_migrations"} <= await _tables(url)

    _write(folder, {"003_create_c.sql": "CREATE TABLE c (x text);"})
    assert await migrations.apply(url, folder) == [3]


async def test_failed_migration_rolls_back_and_keeps_earlier_ones(
    database: str, tmp_path: Path
) -> None:
    folder = _write(
        tmp_path / "m",
        {
            "001_ok.sql": "CREATE TABLE ok (id int);",
            "002_broken.sql": "CREATE TABLE half (id int); SELECT no_such_function();",
        },
    )
    with pytest.raises(psycopg.errors.UndefinedFunction):
        await migrations.prepare(POSTGRES_URL, database, folder)
    url = f"{POSTGRES_URL}/{database}"
    tables = await _tables(url)
    assert "ok" in tables
    assert "half" not in tables
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT version FROM schema_migrations")
        assert [r[0] for r in await cur.fetchall()] == [1]


async def test_edited_migration_is_refused(database: str, tmp_path: Path) -> None:
    folder = _write(tmp_path / "m", {"001_a.sql": "CREATE TABLE a (id int);"})
    await migrations.prepare(POSTGRES_URL, database, folder)
    _write(folder, {"001_a.sql": "CREATE TABLE a (id bigint);"})
    with pytest.raises(MigrationError, match="edited"):
        await migrations.prepare(POSTGRES_URL, database, folder)


def test_bad_names_and_duplicate_versions_are_refused(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="name must look like"):
        migrations.discover(_write(tmp_path / "x", {"create.sql": ""}))
    with pytest.raises(MigrationError, match="used twice"):
        migrations.discover(_write(tmp_path / "y", {"001_a.sql": "", "001_b.sql": ""}))


async def test_concurrent_runners_apply_each_migration_once(database: str, tmp_path: Path) -> None:
    import asyncio

    folder = _write(
        tmp_path / "m", {f"{i:03d}_t{i}.sql": f"CREATE TABLE t{i} (id int);" for i in range(1, 6)}
    )
    await db.ensure_database(POSTGRES_URL, database)
    url = f"{POSTGRES_URL}/{database}"
    results = await asyncio.gather(*(migrations.apply(url, folder) for _ in range(4)))
    applied = sorted(v for result in results for v in result)
    assert applied == [1, 2, 3, 4, 5]
