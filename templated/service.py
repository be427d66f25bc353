"""TemplateService's domain logic: templates, versions, languages, rendering.

The render path reads three caches in turn (head per code, version per (code, version),
compiled parts per (code, version, language)); when all three hit, a render runs no SQL.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

from mesh.errors import Conflict, FieldViolation, InvalidArgument, NotFound
from templated import validation
from templated.cache import LRU, HeadCache
from templated.languages import fallback_chain
from templated.models import Channel, Content, Head, Page, Rendered, Template, Version
from templated.rendering import CompiledContent, Problem, Renderer, TemplateRejected
from templated.store import TemplateStore


class TemplateService:
    """One per process; owns the render caches."""

    def __init__(
        self, *, store: TemplateStore, renderer: Renderer, heads: HeadCache, cache_size: int
    ) -> None:
        self._store = store
        self._renderer = renderer
        self._heads = heads
        self._versions: LRU[tuple[str, int], Version] = LRU("version", cache_size)
        self._compiled: LRU[tuple[str, int, str], CompiledContent] = LRU("compiled", cache_size)

    async def create(
        self,
        *,
        code: str,
        name: str,
        description: str,
        default_language: str,
        contents: Sequence[Content],
        author: str,
        change_note: str,
    ) -> Template:
        """A new template whose version 1 is active."""
        default, violations = validation.language(default_language, "default_language")
        violations += validation.code(code)
        violations += validation.text(name, "name", validation.MAX_NAME, required=True)
        violations += validation.text(description, "description", validation.MAX_DESCRIPTION)
        violations += _who_and_why(author, change_note)
        validation.raise_if(violations)
        checked = validation.contents(contents, default)
        await self._store.create(
            code=code,
            name=name.strip(),
            description=description,
            default_language=default,
            contents=checked,
            variables=self._variables(checked),
            author=author.strip(),
            change_note=change_note,
        )
        return await self.get(code=code, version=0)

    async def get(self, *, code: str, version: int) -> Template:
        """A template with its active version (version 0) or the one asked for."""
        validation.raise_if(validation.code(code) + _version_number(version))
        template = await self._store.get(code=code, version=version or None)
        if template is None:
            raise NotFound(f"no template {code!r}")
        return template

    async def page(
        self, *, page_size: int, page_token: str, code_prefix: str, include_archived: bool
    ) -> Page[Template]:
        """Templates in code order, filtered by code prefix, hiding archived ones unless asked."""
        size = validation.page_size(page_size)
        validation.raise_if(validation.text(code_prefix, "code_prefix", validation.MAX_CODE))
        scope = {"prefix": code_prefix, "archived": include_archived}
        after = _decode_token(page_token, scope) if page_token else None
        if after is not None and not isinstance(after, str):
            raise InvalidArgument.field("page_token", "is not a token this list gave")
        templates = await self._store.page(
            prefix=code_prefix, after=after, limit=size + 1, include_archived=include_archived
        )
        more = len(templates) > size
        templates = templates[:size]
        token = _encode_token(templates[-1].code, scope) if more else ""
        return Page(templates, token)

    async def publish(
        self, *, code: str, contents: Sequence[Content], author: str, change_note: str
    ) -> Template:
        """Version n+1, checked and compiled, made active at once."""
        validation.raise_if(validation.code(code) + _who_and_why(author, change_note))
        head = await self._store.head(code=code)
        if head is None:
            raise NotFound(f"no template {code!r}")
        checked = validation.contents(contents, head.default_language)
        await self._store.publish(
            code=code,
            contents=checked,
            variables=self._variables(checked),
            author=author.strip(),
            change_note=change_note,
        )
        self._heads.invalidate(code)  # this process at once; the others on NOTIFY
        return await self.get(code=code, version=0)

    async def versions(
        self, *, code: str, page_size: int, page_token: str
    ) -> tuple[Page[Version], int]:
        """Version metadata (who, when, why, variables) newest first; the active version."""
        validation.raise_if(validation.code(code))
        size = validation.page_size(page_size)
        scope = {"code": code}
        before = _decode_token(page_token, scope) if page_token else None
        if before is not None and not isinstance(before, int):
            raise InvalidArgument.field("page_token", "is not a token this list gave")
        versions, active = await self._store.versions(code=code, before=before, limit=size + 1)
        more = len(versions) > size
        versions = versions[:size]
        token = _encode_token(versions[-1].number, scope) if more else ""
        return Page(versions, token), active

    async def set_active(self, *, code: str, version: int, author: str) -> Template:
        """Rolls back or forward to an existing version."""
        violations = validation.code(code) + _who_and_why(author, "")
        if version <= 0:
            violations.append(FieldViolation("version", "must be a version number (1 or more)"))
        validation.raise_if(violations)
        await self._store.set_active(code=code, version=version, author=author.strip())
        self._heads.invalidate(code)
        return await self.get(code=code, version=0)

    async def archive(self, *, code: str) -> None:
        """The template stops rendering; its history stays readable."""
        validation.raise_if(validation.code(code))
        await self._store.archive(code=code)
        self._heads.invalidate(code)

    async def render(
        self,
        *,
        code: str,
        language: str,
        variables: dict[str, Any],
        channels: Sequence[Channel],
        version: int,
    ) -> Rendered:
        """The asked channels' parts in the best language of the chain pt-BR → pt → default."""
        violations = validation.code(code) + _version_number(version)
        if language:
            language, problems = validation.language(language, "language")
            violations += problems
        validation.raise_if(violations)
        head = await self._head(code)
        if head.archived:
            raise Conflict(f"template {code!r} is archived and does not render")
        number = version or head.active_version
        source = await self._version(code, number)
        content = _pick(source, fallback_chain(language, head.default_language))
        wanted = frozenset(channels) or content.channels
        if missing := wanted - content.channels:
            raise InvalidArgument.field(
                "channels",
                f"version {number} of {code!r} has no {', '.join(sorted(missing))} content "
                f"(it has {', '.join(sorted(content.channels))})",
            )
        compiled = self._compile(code, number, content)
        try:
            rendered = self._renderer.render(compiled, variables, wanted)
        except TemplateRejected as exc:
            raise InvalidArgument(_render_violations(exc.problems)) from None
        return Rendered(code=code, version=number, content=rendered)

    # -- the render path's caches

    async def _head(self, code: str) -> Head:
        head = self._heads.get(code)
        if head is None:
            generation = self._heads.generation()
            head = await self._store.head(code=code)
            if head is None:
                raise NotFound(f"no template {code!r}")
            self._heads.put(head, generation)
        return head

    async def _version(self, code: str, number: int) -> Version:
        key = (code, number)
        version = self._versions.get(key)
        if version is None:
            version = await self._store.version(code=code, version=number)
            if version is None:
                raise NotFound(f"template {code!r} has no version {number}")
            self._versions.put(key, version)
        return version

    def _compile(self, code: str, number: int, content: Content) -> CompiledContent:
        key = (code, number, content.language)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._renderer.compile(content)
            self._compiled.put(key, compiled)
        return compiled

    def _variables(self, contents: Sequence[Content]) -> list[str]:
        """The variables every language uses; raises naming each part that does not compile."""
        variables: set[str] = set()
        violations: list[FieldViolation] = []
        for index, content in enumerate(contents):
            try:
                variables |= self._renderer.check(content)
            except TemplateRejected as exc:
                violations += [
                    FieldViolation(f"contents[{index}].{p.part}", p.describe())
                    for p in exc.problems
                ]
        validation.raise_if(violations)
        return sorted(variables)


def _pick(version: Version, chain: list[str]) -> Content:
    for language in chain:
        content = version.content(language)
        if content is not None:
            return content
    return version.contents[0]  # unreachable: the default language always has content


def _render_violations(problems: list[Problem]) -> list[FieldViolation]:
    violations: dict[str, FieldViolation] = {}
    for problem in problems:
        if problem.variable is not None:
            where = f"{problem.part}, line {problem.line}" if problem.line else problem.part
            field = f"variables.{problem.variable}"
            description = f"{problem.message} ({where})"
        else:
            field, description = problem.part, problem.describe()
        violations.setdefault(field, FieldViolation(field, description))
    return list(violations.values())


def _who_and_why(author: str, change_note: str) -> list[FieldViolation]:
    return validation.text(
        author, "author", validation.MAX_AUTHOR, required=True
    ) + validation.text(change_note, "change_note", validation.MAX_NOTE)


def _version_number(version: int) -> list[FieldViolation]:
    return [FieldViolation("version", "must not be negative")] if version < 0 else []


def _encode_token(key: str | int, scope: dict[str, Any]) -> str:
    raw = json.dumps({"after": key, "scope": scope}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, scope: dict[str, Any]) -> Any:
    """The key a page token continues after; refuses tokens of another list or filter."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError):
        payload = None
    if not isinstance(payload, dict) or payload.get("scope") != scope or "after" not in payload:
        raise InvalidArgument.field("page_token", "is not a token this list gave")
    return payload["after"]
