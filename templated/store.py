"""templated's SQL (the `templates` database), plain psycopg 3.

Every statement is counted in `herald_templated_sql_queries_total`, so the render path's
"no SQL when cached" promise can be observed from outside. Writes that change what a
render would pick (publish, set active, archive) send a NOTIFY on `herald_templates`,
delivered to every templated process when they commit, with payload `<origin> <code>`:
the origin lets the writing process skip its own notifications (it has already
invalidated its cache when the write returned).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, LiteralString

from prometheus_client import Counter
from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from mesh.errors import AlreadyExists, Conflict, NotFound
from templated.models import CONTENTS, Content, Head, Template, Version

NOTIFY_CHANNEL = "herald_templates"

SQL_QUERIES = Counter(
    "herald_templated_sql_queries_total",
    "SQL statements templated sent to PostgreSQL, by query.",
    ["query"],
)

Row = dict[str, Any]

_TEMPLATE = """
    SELECT t.code, t.name, t.description, t.default_language, t.active_version,
           t.archived, t.create_time, t.update_time,
           v.version, v.variables, v.author, v.change_note,
           v.create_time AS version_create_time"""


async def execute(
    conn: AsyncConnection[Any],
    name: str,
    query: LiteralString | sql.Composed,
    params: Sequence[Any] = (),
) -> Any:
    """Runs one statement, counting it; returns the cursor."""
    SQL_QUERIES.labels(query=name).inc()
    return await conn.execute(query, params)


class TemplateStore:
    """Reads and writes templates; raises the domain errors its locks decide."""

    def __init__(self, pool: AsyncConnectionPool, *, origin: str) -> None:
        self._pool = pool
        self._origin = origin

    async def create(
        self,
        *,
        code: str,
        name: str,
        description: str,
        default_language: str,
        contents: Sequence[Content],
        variables: Sequence[str],
        author: str,
        change_note: str,
    ) -> None:
        """Inserts a template with version 1 active; AlreadyExists if the code is taken."""
        async with self._pool.connection() as conn, conn.transaction():
            cur = await execute(
                conn,
                "insert_template",
                """INSERT INTO templates (code, name, description, default_language,
                                          active_version, latest_version)
                   VALUES (%s, %s, %s, %s, 1, 1)
                   ON CONFLICT (code) DO NOTHING RETURNING code""",
                (code, name, description, default_language),
            )
            if await cur.fetchone() is None:
                raise AlreadyExists(f"template {code!r} already exists")
            await self._insert_version(
                conn,
                code=code,
                number=1,
                contents=contents,
                variables=variables,
                author=author,
                change_note=change_note,
            )
            await self._activated(conn, code, 1, "create", author)

    async def publish(
        self,
        *,
        code: str,
        contents: Sequence[Content],
        variables: Sequence[str],
        author: str,
        change_note: str,
    ) -> int:
        """Inserts version n+1 and makes it active; returns n+1."""
        async with self._pool.connection() as conn, conn.transaction():
            row = await self._lock(conn, code)
            number = int(row["latest_version"]) + 1
            await self._insert_version(
                conn,
                code=code,
                number=number,
                contents=contents,
                variables=variables,
                author=author,
                change_note=change_note,
            )
            await execute(
                conn,
                "publish_version",
                """UPDATE templates SET active_version = %s, latest_version = %s,
                                        update_time = now()
                   WHERE code = %s""",
                (number, number, code),
            )
            await self._activated(conn, code, number, "publish", author)
            await self._notify(conn, code)
        return number

    async def set_active(self, *, code: str, version: int, author: str) -> None:
        """Makes an existing version active (no-op when it already is)."""
        async with self._pool.connection() as conn, conn.transaction():
            row = await self._lock(conn, code)
            if not 1 <= version <= int(row["latest_version"]):
                raise NotFound(f"template {code!r} has no version {version}")
            if version == row["active_version"]:
                return
            await execute(
                conn,
                "set_active_version",
                "UPDATE templates SET active_version = %s, update_time = now() WHERE code = %s",
                (version, code),
            )
            await self._activated(conn, code, version, "set_active", author)
            await self._notify(conn, code)

    async def archive(self, *, code: str) -> None:
        """Archives a template (idempotent); NotFound if there is none."""
        async with self._pool.connection() as conn, conn.transaction():
            cur = await execute(
                conn,
                "archive_template",
                """UPDATE templates SET archived = true,
                       update_time = CASE WHEN archived THEN update_time ELSE now() END
                   WHERE code = %s RETURNING code""",
                (code,),
            )
            if await cur.fetchone() is None:
                raise NotFound(f"no template {code!r}")
            await self._notify(conn, code)

    async def get(self, *, code: str, version: int | None) -> Template | None:
        """A template with its active version (or `version`), contents included.

        None when there is no such template; NotFound when the version is missing.
        """
        async with self._pool.connection() as conn:
            cur = await execute(
                conn,
                "get_template",
                _TEMPLATE
                + """, v.contents
                   FROM templates t
                   LEFT JOIN template_versions v
                     ON v.code = t.code AND v.version = COALESCE(%s, t.active_version)
                   WHERE t.code = %s""",
                (version, code),
            )
            row = await cur.fetchone()
        if row is None:
            return None
        if row["version"] is None:
            raise NotFound(f"template {code!r} has no version {version}")
        return _template(row)

    async def page(
        self, *, prefix: str, after: str | None, limit: int, include_archived: bool
    ) -> list[Template]:
        """Templates in code order, after `after`, with their active version's metadata."""
        async with self._pool.connection() as conn:
            cur = await execute(
                conn,
                "list_templates",
                _TEMPLATE
                + """
                   FROM templates t
                   JOIN template_versions v
                     ON v.code = t.code AND v.version = t.active_version
                   WHERE starts_with(t.code, %s)
                     AND (%s OR NOT t.archived)
                     AND (%s::text IS NULL OR t.code > %s)
                   ORDER BY t.code
                   LIMIT %s""",
                (prefix, include_archived, after, after, limit),
            )
            rows = await cur.fetchall()
        return [_template(row) for row in rows]

    async def versions(
        self, *, code: str, before: int | None, limit: int
    ) -> tuple[list[Version], int]:
        """Version metadata newest first, below `before`; and the active version."""
        async with self._pool.connection() as conn:
            cur = await execute(
                conn,
                "get_active_version",
                "SELECT active_version FROM templates WHERE code = %s",
                (code,),
            )
            head = await cur.fetchone()
            if head is None:
                raise NotFound(f"no template {code!r}")
            cur = await execute(
                conn,
                "list_versions",
                """SELECT version, variables, author, change_note, create_time
                   FROM template_versions
                   WHERE code = %s AND (%s::integer IS NULL OR version < %s)
                   ORDER BY version DESC
                   LIMIT %s""",
                (code, before, before, limit),
            )
            rows = await cur.fetchall()
        return [_version(row) for row in rows], int(head["active_version"])

    async def head(self, *, code: str) -> Head | None:
        """What a render needs before the version (the render path's first query)."""
        async with self._pool.connection() as conn:
            cur = await execute(
                conn,
                "get_head",
                """SELECT code, default_language, active_version, archived
                   FROM templates WHERE code = %s""",
                (code,),
            )
            row = await cur.fetchone()
        return Head(**row) if row is not None else None

    async def version(self, *, code: str, version: int) -> Version | None:
        """One version with its contents (the render path's second query)."""
        async with self._pool.connection() as conn:
            cur = await execute(
                conn,
                "get_version",
                """SELECT version, contents, variables, author, change_note, create_time
                   FROM template_versions WHERE code = %s AND version = %s""",
                (code, version),
            )
            row = await cur.fetchone()
        return _version(row) if row is not None else None

    # -- helpers inside a transaction

    async def _lock(self, conn: AsyncConnection[Any], code: str) -> Row:
        cur = await execute(
            conn,
            "lock_template",
            """SELECT latest_version, active_version, archived
               FROM templates WHERE code = %s FOR UPDATE""",
            (code,),
        )
        row: Row | None = await cur.fetchone()
        if row is None:
            raise NotFound(f"no template {code!r}")
        if row["archived"]:
            raise Conflict(f"template {code!r} is archived")
        return row

    async def _insert_version(
        self,
        conn: AsyncConnection[Any],
        *,
        code: str,
        number: int,
        contents: Sequence[Content],
        variables: Sequence[str],
        author: str,
        change_note: str,
    ) -> None:
        await execute(
            conn,
            "insert_version",
            """INSERT INTO template_versions
                   (code, version, contents, variables, author, change_note)
               VALUES (%s, %s, %s, %s, %s, %s)""",
            (
                code,
                number,
                Jsonb(CONTENTS.dump_python(tuple(contents), mode="json")),
                list(variables),
                author,
                change_note,
            ),
        )

    async def _activated(
        self, conn: AsyncConnection[Any], code: str, version: int, reason: str, author: str
    ) -> None:
        await execute(
            conn,
            "insert_activation",
            """INSERT INTO template_activations (code, version, reason, author)
               VALUES (%s, %s, %s, %s)""",
            (code, version, reason, author),
        )

    async def _notify(self, conn: AsyncConnection[Any], code: str) -> None:
        """Tells every templated process (at commit) that `code` changed."""
        payload = notify_payload(self._origin, code)
        await execute(conn, "notify", "SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, payload))


def notify_payload(origin: str, code: str) -> str:
    return f"{origin} {code}"


def parse_notify_payload(payload: str) -> tuple[str, str]:
    """(origin, code) of a notification."""
    origin, _, code = payload.partition(" ")
    return origin, code


def _version(row: Row) -> Version:
    return Version(
        number=row["version"],
        contents=CONTENTS.validate_python(row["contents"]) if "contents" in row else (),
        variables=tuple(row["variables"]),
        author=row["author"],
        change_note=row["change_note"],
        create_time=row.get("version_create_time") or row["create_time"],
    )


def _template(row: Row) -> Template:
    return Template(
        code=row["code"],
        name=row["name"],
        description=row["description"],
        default_language=row["default_language"],
        active_version=row["active_version"],
        archived=row["archived"],
        create_time=row["create_time"],
        update_time=row["update_time"],
        version=_version(row),
    )
