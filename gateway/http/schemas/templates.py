"""JSON of `/api/v1/templates`: templates, immutable versions, render previews."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from gateway.http.schemas.common import (
    MAX_INT32,
    JsonObject,
    Language,
    NotificationType,
    QueryModel,
    RequestModel,
    TemplateCode,
    integer,
    text,
)
from mesh import rules

# The last segment a code cannot have: the edge's action routes end in them.
RESERVED_SEGMENTS = ("versions", "render", "active-version")
RESERVED_LAST_SEGMENT = rf"(^|/)({'|'.join(RESERVED_SEGMENTS)})$"
Version = integer(ge=1, le=MAX_INT32)
PushData = Annotated[
    dict[
        Annotated[str, Field(max_length=64, pattern=rules.PUSH_DATA_KEY)],
        Annotated[str, text(max_length=1000)],
    ],
    Field(max_length=rules.MAX_PUSH_DATA),
]
# A template source (Jinja2).
Source = Annotated[str, text(max_length=rules.MAX_TEMPLATE_PART)]
Author = Annotated[str, text(max_length=rules.MAX_AUTHOR, pattern=rules.NOT_BLANK)]


def _addressable(code: str) -> str:
    if re.search(RESERVED_LAST_SEGMENT, code):
        raise ValueError(f"the last segment cannot be {', '.join(RESERVED_SEGMENTS)}")
    return code


def _some_of(*fields: str) -> dict[str, Any]:
    """The schema of "at least one of `fields` is given and not blank"."""
    return {
        "anyOf": [
            {
                "required": [field],
                "properties": {field: {"type": "string", "pattern": rules.NOT_BLANK}},
            }
            for field in fields
        ]
    }


def _blank(value: str | None) -> bool:
    return not (value or "").strip()


class EmailPart(RequestModel):
    """A subject, and an html_body, a text_body or both (not blank)."""

    model_config = ConfigDict(json_schema_extra=_some_of("html_body", "text_body"))

    subject: str = text(max_length=998, pattern=rules.NOT_BLANK)
    html_body: Source | None = None
    text_body: Source | None = None

    @model_validator(mode="after")
    def _some_body(self) -> EmailPart:
        if _blank(self.html_body) and _blank(self.text_body):
            raise ValueError("needs an html_body, a text_body or both")
        return self


class SmsPart(RequestModel):
    text: str = text(max_length=1600, pattern=rules.NOT_BLANK)


class PushPart(RequestModel):
    """A title and a body, one of them at least not blank."""

    model_config = ConfigDict(json_schema_extra=_some_of("title", "body"))

    title: str = text(max_length=250)
    body: str = text(max_length=4000)
    data: PushData = Field(default_factory=dict)

    @model_validator(mode="after")
    def _some_text(self) -> PushPart:
        if _blank(self.title) and _blank(self.body):
            raise ValueError("needs a title, a body or both")
        return self


def _one_channel(schema: dict[str, Any]) -> None:
    schema["anyOf"] = [{"required": [c]} for c in ("email", "sms", "push")]


class ContentIn(RequestModel):
    """One language's parts (Jinja2 sources); at least one channel."""

    model_config = ConfigDict(json_schema_extra=_one_channel)

    # Non-null with a None default: a channel is given or left out, never null.
    email: EmailPart = Field(None)  # type: ignore[assignment]
    sms: SmsPart = Field(None)  # type: ignore[assignment]
    push: PushPart = Field(None)  # type: ignore[assignment]
    language: Language

    @model_validator(mode="after")
    def _some_channel(self) -> ContentIn:
        if not {"email", "sms", "push"} & self.model_fields_set:
            raise ValueError("give at least one of email, sms, push")
        return self


class TemplateCreate(RequestModel):
    """A template and its first version; `code` is a path (`auth/welcome`) whose last
    segment is not one of the action words (versions, render, active-version)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "code": "auth/welcome",
                    "name": "Welcome",
                    "default_language": "en",
                    "contents": [
                        {
                            "language": "en",
                            "email": {
                                "subject": "Welcome, {{ name }}",
                                "html_body": "<p>Start here: {{ link }}</p>",
                            },
                            "sms": {"text": "Welcome, {{ name }}: {{ link }}"},
                        }
                    ],
                }
            ]
        }
    )

    code: Annotated[
        TemplateCode,
        Field(json_schema_extra={"not": {"pattern": RESERVED_LAST_SEGMENT}}),
        AfterValidator(_addressable),
    ]
    name: str = text(max_length=rules.MAX_TEMPLATE_NAME, pattern=rules.NOT_BLANK)
    description: str | None = text(None, max_length=rules.MAX_TEMPLATE_DESCRIPTION)
    default_language: Language | None = Field(
        None, description="The contents' first when left out."
    )
    contents: list[ContentIn] = Field(min_length=1, max_length=rules.MAX_TEMPLATE_LANGUAGES)
    author: Author | None = Field(None, description="The API key when left out.")
    change_note: str | None = text(None, max_length=rules.MAX_CHANGE_NOTE)


class VersionPublish(RequestModel):
    contents: list[ContentIn] = Field(min_length=1, max_length=rules.MAX_TEMPLATE_LANGUAGES)
    author: Author | None = Field(None, description="The API key when left out.")
    change_note: str | None = text(None, max_length=rules.MAX_CHANGE_NOTE)


class ActiveVersionSet(RequestModel):
    version: Version  # type: ignore[valid-type]


class RenderPreview(RequestModel):
    variables: JsonObject = Field(default_factory=dict)
    language: Language | None = None
    channels: list[NotificationType] = Field(
        default_factory=list, max_length=3, description="Every channel the version has when empty."
    )
    version: Version | None = Field(None, description="The active one when left out.")  # type: ignore[valid-type]


class EmailOut(BaseModel):
    subject: str
    html_body: str
    text_body: str


class SmsOut(BaseModel):
    text: str


class PushOut(BaseModel):
    title: str
    body: str
    data: dict[str, str]


class ContentOut(BaseModel):
    language: str
    email: EmailOut | None
    sms: SmsOut | None
    push: PushOut | None


class VersionOut(BaseModel):
    version: int
    contents: list[ContentOut]
    variables: list[str] = Field(description="Variables the sources use.")
    author: str | None
    change_note: str | None
    created_at: datetime | None


class TemplateOut(BaseModel):
    code: str
    name: str
    description: str | None
    default_language: str | None
    active_version: int
    archived: bool
    version: VersionOut | None = Field(description="The active version, or the one asked for.")
    created_at: datetime | None
    updated_at: datetime | None


class TemplatePage(BaseModel):
    items: list[TemplateOut]
    next_page_token: str | None


class VersionPage(BaseModel):
    items: list[VersionOut]
    active_version: int
    next_page_token: str | None


class Rendered(BaseModel):
    """Rendered parts; `language` is the one actually used (after fallback)."""

    code: str
    version: int
    language: str
    email: EmailOut | None
    sms: SmsOut | None
    push: PushOut | None


class TemplateQuery(QueryModel):
    code_prefix: str | None = text(None, min_length=1, max_length=rules.MAX_TEMPLATE_CODE)
    include_archived: bool = False
    page_size: int = Field(50, ge=1, le=500)
    page_token: str | None = text(None, min_length=1, max_length=1024)
