"""Shared pieces of the edge's JSON: the request base model, precise value types (what
they accept is exactly what /openapi.json declares), errors, pages."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union
from uuid import UUID

import email_validator
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
)
from typing_extensions import TypeAliasType

from mesh import outbound, rules

# Numbers in `variables` and `metadata` travel as protobuf doubles: beyond 2^53 an
# integer would silently change, so such numbers are refused.
MAX_SAFE_NUMBER = 2**53
MAX_JSON_DEPTH = 16  # protobuf refuses Structs nested much deeper (~48) when decoding

NotificationType = rules.ChannelName
StatusName = Literal[
    "scheduled", "pending", "sent", "delivered", "failed", "suppressed", "cancelled"
]
MessageTypeName = rules.MessageTypeName
NO_NUL = rules.NO_NUL

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
MAX_INT32 = 2**31 - 1
# An address without quotes or brackets: no quoted local part, no domain literal.
EMAIL_PLAIN = r'^[^"\[\]]*$'

NoNul = Annotated[str, Field(pattern=NO_NUL)]
# The values of `variables` and `metadata`, as documented (validated by _carriable).
if TYPE_CHECKING:
    JsonValue = Any
else:
    JsonValue = TypeAliasType(
        "JsonValue",
        Union[  # noqa: UP007 - a recursive alias needs the explicit form
            NoNul,
            Annotated[float, Field(ge=-MAX_SAFE_NUMBER, le=MAX_SAFE_NUMBER)],
            bool,
            list["JsonValue"],
            dict[NoNul, "JsonValue"],
            None,
        ],
    )


def text(
    default: Any = ...,
    *,
    min_length: int | None = None,
    max_length: int,
    pattern: str = rules.NO_NUL,
    description: str | None = None,
    examples: list[Any] | None = None,
) -> Any:
    """A bounded text field following one of `mesh.rules`' text patterns: without NUL
    characters at least (lone surrogates fail as non-text)."""
    return Field(
        default,
        min_length=min_length,
        max_length=max_length,
        pattern=pattern,
        description=description,
        examples=examples,
    )


def _string_only(value: object) -> object:
    """UUIDs arrive as JSON strings; numbers are not silently converted."""
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _rfc3339(value: object) -> object:
    """Times are RFC 3339 with an offset (what `format: date-time` means), nothing looser."""
    if not isinstance(value, str) or not RFC3339.match(value):
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-01-02T03:04:05Z")
    return value


def json_integer(value: object) -> object:
    """JSON's integers: 3 and 3.0, never true or "3"."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be an integer")
        return int(value)
    return value


def _representable(value: datetime) -> datetime:
    """Within what protobuf Timestamps hold (years 1-9999 in UTC)."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range (years 1-9999 UTC)") from None


def _at(path: str) -> str:
    return f"at {path}: " if path else ""


def _problem_in(value: object, path: str = "", depth: int = 0) -> str | None:
    """Why a JSON value breaks JSON_VALUE_SCHEMA (or is too deep), or None; `path`
    locates the culprit inside the field."""
    if isinstance(value, str):
        return _text_problem(value, path)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        if not math.isfinite(value) or abs(value) > MAX_SAFE_NUMBER:
            return f"{_at(path)}numbers must be within ±2^53"
        return None
    if depth >= MAX_JSON_DEPTH:
        return f"{_at(path)}nested deeper than {MAX_JSON_DEPTH} levels"
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            problem = _text_problem(key, path) or _problem_in(item, child, depth + 1)
            if problem:
                return problem
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problem = _problem_in(item, f"{path}[{index}]", depth + 1)
            if problem:
                return problem
    return None


def _text_problem(value: str, path: str) -> str | None:
    if "\x00" in value:
        return f"{_at(path)}contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"{_at(path)}not valid Unicode text (lone surrogate)"
    return None


def _carriable(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object")
    problem = _problem_in(value)
    if problem:
        raise ValueError(problem)
    return value


def _email(value: str) -> str:
    """An address as JSON Schema's `format: email` means it (RFC 5321, ASCII), less what
    userd refuses by syntax (EMAIL_PLAIN: quoted local parts, domain literals). Whether
    Herald can deliver to it (special-use domains) is userd's policy, not the edge's."""
    try:
        email_validator.validate_email(
            value,
            check_deliverability=False,
            globally_deliverable=False,
            allow_smtputf8=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
        )
    except email_validator.EmailNotValidError as exc:
        raise ValueError(f"not an email address: {exc}") from None
    return value


# What a pattern mismatch means, for messages that name the rule rather than the regex.
PATTERN_RULES = {
    **rules.PATTERN_RULES,
    EMAIL_PLAIN: "must not have a quoted local part or a domain literal",
    outbound.PUBLIC_HTTPS_URL: outbound.PUBLIC_HTTPS_URL_RULE,
}


def integer(*, ge: int, le: int) -> Any:
    """A bounded JSON integer (3 and 3.0, never true or "3"), bounds in the schema."""
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(json_integer)]


Email = Annotated[
    str,
    Field(max_length=rules.MAX_EMAIL, pattern=EMAIL_PLAIN, json_schema_extra={"format": "email"}),
    AfterValidator(_email),
]
Uuid = Annotated[UUID, BeforeValidator(_string_only), Field(strict=False)]
Timestamp = Annotated[
    datetime,
    BeforeValidator(_rfc3339),
    AfterValidator(_representable),
    Field(strict=False),
]
TemplateCode = Annotated[
    str,
    Field(
        pattern=rules.TEMPLATE_CODE,
        max_length=rules.MAX_TEMPLATE_CODE,
        examples=["auth/welcome"],
    ),
]
Language = Annotated[
    str, Field(pattern=rules.LANGUAGE, max_length=rules.MAX_LANGUAGE, examples=["pt-BR"])
]
RequestId = Annotated[str, Field(pattern=rules.REQUEST_ID, max_length=rules.MAX_REQUEST_ID)]
# Checked by one walk rather than pydantic's union (whose errors would name union
# branches); the schema is JsonValue's.
JsonObject = Annotated[
    dict[str, Any],
    PlainValidator(_carriable, json_schema_input_type=dict[NoNul, JsonValue]),
    Field(
        description="A JSON object: strings without NUL, numbers within ±2^53, nested at "
        f"most {MAX_JSON_DEPTH} levels."
    ),
]


class RequestModel(BaseModel):
    """Base of every request body: unknown fields refused, and no silent coercion (types
    that need it, like UUIDs and times from JSON strings, opt in one by one)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class QueryModel(BaseModel):
    """Base of query-string models: values arrive as text, unknown names are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldErrorOut(BaseModel):
    field: str = Field(description="Dotted path of the JSON body, or a parameter name.")
    description: str


class ErrorDetail(BaseModel):
    code: str = Field(examples=["INVALID_ARGUMENT"], description="A gRPC code name.")
    message: str
    fields: list[FieldErrorOut]


class ErrorResponse(BaseModel):
    """Every error answer of the edge."""

    error: ErrorDetail


class PageQuery(QueryModel):
    """Paging of list routes."""

    page_size: int = Field(50, ge=1, le=500, description="Items per page.")
    page_token: str | None = text(
        None, min_length=1, max_length=1024, description="next_page_token of the last page."
    )
