"""What templated works with: templates, their immutable versions, localized parts."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Generic, TypeVar

from pydantic import TypeAdapter


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"


@dataclass(frozen=True)
class EmailParts:
    subject: str = ""
    html_body: str = ""
    text_body: str = ""


@dataclass(frozen=True)
class SmsParts:
    text: str = ""


@dataclass(frozen=True)
class PushParts:
    title: str = ""
    body: str = ""
    data: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Part:
    """One template source: where it lives in a content ("email.html_body") and whether
    it is HTML (autoescaped) or text."""

    path: str
    source: str
    html: bool = False


@dataclass(frozen=True)
class Content:
    """The parts of every channel in one language: sources, or rendered text."""

    language: str
    email: EmailParts | None = None
    sms: SmsParts | None = None
    push: PushParts | None = None

    @property
    def channels(self) -> frozenset[Channel]:
        present = ((Channel.EMAIL, self.email), (Channel.SMS, self.sms), (Channel.PUSH, self.push))
        return frozenset(channel for channel, parts in present if parts is not None)

    def parts(self, channels: frozenset[Channel] | None = None) -> Iterator[Part]:
        """The sources of the given channels (all when None), in a stable order."""
        wanted = self.channels if channels is None else channels
        if self.email is not None and Channel.EMAIL in wanted:
            yield Part("email.subject", self.email.subject)
            yield Part("email.html_body", self.email.html_body, html=True)
            yield Part("email.text_body", self.email.text_body)
        if self.sms is not None and Channel.SMS in wanted:
            yield Part("sms.text", self.sms.text)
        if self.push is not None and Channel.PUSH in wanted:
            yield Part("push.title", self.push.title)
            yield Part("push.body", self.push.body)
            for key, value in self.push.data.items():
                yield Part(f"push.data.{key}", value)


CONTENTS = TypeAdapter(tuple[Content, ...])


@dataclass(frozen=True)
class Version:
    """One published version; `contents` is empty in listings (metadata only)."""

    number: int
    contents: tuple[Content, ...]
    variables: tuple[str, ...]
    author: str
    change_note: str
    create_time: datetime

    def content(self, language: str) -> Content | None:
        return next((c for c in self.contents if c.language == language), None)


@dataclass(frozen=True)
class Template:
    """A template and one of its versions (the active one unless another was asked)."""

    code: str
    name: str
    description: str
    default_language: str
    active_version: int
    archived: bool
    create_time: datetime
    update_time: datetime
    version: Version


@dataclass(frozen=True)
class Head:
    """What a render needs to know about a template before its version: cached per code."""

    code: str
    default_language: str
    active_version: int
    archived: bool


@dataclass(frozen=True)
class Rendered:
    code: str
    version: int
    content: Content


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_page_token: str
