"""Input rules of TemplateService: codes, bounded strings, well-formed contents.

Violations name the request field at fault (`contents[1].email.subject`), all at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from mesh import rules
from mesh.errors import FieldViolation, InvalidArgument
from templated import languages
from templated.models import Content

MAX_CODE = rules.MAX_TEMPLATE_CODE
MAX_NAME = rules.MAX_TEMPLATE_NAME
MAX_DESCRIPTION = rules.MAX_TEMPLATE_DESCRIPTION
MAX_AUTHOR = rules.MAX_AUTHOR
MAX_NOTE = rules.MAX_CHANGE_NOTE
MAX_LANGUAGES = rules.MAX_TEMPLATE_LANGUAGES
MAX_PART_CHARS = rules.MAX_TEMPLATE_PART
MAX_PUSH_DATA = rules.MAX_PUSH_DATA
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50


def raise_if(violations: list[FieldViolation]) -> None:
    if violations:
        raise InvalidArgument(violations)


def code(value: str, field: str = "code") -> list[FieldViolation]:
    """A slug or path: `welcome`, `auth/welcome`, lowercase, at most 128 characters."""
    if not value:
        return [FieldViolation(field, "is required")]
    if not rules.matches(rules.TEMPLATE_CODE, value, rules.MAX_TEMPLATE_CODE):
        return [FieldViolation(field, rules.TEMPLATE_CODE_RULE)]
    return []


def text(value: str, field: str, limit: int, *, required: bool = False) -> list[FieldViolation]:
    if required and not value.strip():
        return [FieldViolation(field, "is required")]
    if len(value) > limit:
        return [FieldViolation(field, f"is longer than {limit} characters")]
    return []


def language(value: str, field: str) -> tuple[str, list[FieldViolation]]:
    """The normalised tag, or the violation."""
    try:
        return languages.normalize(value), []
    except ValueError as exc:
        return value, [FieldViolation(field, str(exc))]


def page_size(value: int, field: str = "page_size") -> int:
    if value < 0:
        raise InvalidArgument.field(field, "must not be negative")
    return min(value or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def contents(items: Sequence[Content], default_language: str) -> tuple[Content, ...]:
    """The contents with normalised languages; raises InvalidArgument listing every fault.

    Every language must have the same channels (a render falls back by language, never
    by channel), and the template's default language must be there (the end of every
    fallback chain).
    """
    if not items:
        raise InvalidArgument.field("contents", "at least one language is required")
    if len(items) > MAX_LANGUAGES:
        raise InvalidArgument.field("contents", f"at most {MAX_LANGUAGES} languages")
    violations: list[FieldViolation] = []
    normalised: list[Content] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        field = f"contents[{index}]"
        tag, problems = language(item.language, f"{field}.language")
        violations += problems
        if tag in seen:
            violations.append(FieldViolation(f"{field}.language", f"{tag} appears twice"))
        seen.add(tag)
        violations += _parts(item, field)
        normalised.append(replace(item, language=tag))
    raise_if(violations)
    default = next((c for c in normalised if c.language == default_language), None)
    if default is None:
        raise InvalidArgument.field(
            "contents", f"the default language {default_language} must have content"
        )
    for index, item in enumerate(normalised):
        if item.channels != default.channels:
            violations.append(
                FieldViolation(
                    f"contents[{index}]",
                    f"has channels {_names(item)} but {default_language} has {_names(default)}; "
                    "every language must have the same channels",
                )
            )
    raise_if(violations)
    return tuple(normalised)


def _parts(item: Content, field: str) -> list[FieldViolation]:
    violations: list[FieldViolation] = []
    if not item.channels:
        violations.append(FieldViolation(field, "has no channel: set email, sms or push"))
    if item.email is not None:
        if not item.email.subject.strip():
            violations.append(FieldViolation(f"{field}.email.subject", "is required"))
        if not (item.email.html_body.strip() or item.email.text_body.strip()):
            violations.append(
                FieldViolation(f"{field}.email", "needs an html_body, a text_body or both")
            )
    if item.sms is not None and not item.sms.text.strip():
        violations.append(FieldViolation(f"{field}.sms.text", "is required"))
    if item.push is not None:
        if not (item.push.title.strip() or item.push.body.strip()):
            violations.append(FieldViolation(f"{field}.push", "needs a title, a body or both"))
        if len(item.push.data) > MAX_PUSH_DATA:
            violations.append(
                FieldViolation(f"{field}.push.data", f"has more than {MAX_PUSH_DATA} entries")
            )
        for key in item.push.data:
            if not rules.matches(rules.PUSH_DATA_KEY, key, 64):
                violations.append(
                    FieldViolation(
                        f"{field}.push.data", f"key {key[:64]!r} {rules.PUSH_DATA_KEY_RULE}"
                    )
                )
    for part in item.parts():
        violations += text(part.source, f"{field}.{part.path}", MAX_PART_CHARS)
    return violations


def _names(item: Content) -> str:
    return "{" + ", ".join(sorted(item.channels)) + "}"
