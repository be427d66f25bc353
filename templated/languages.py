"""BCP 47 language tags: normalised spelling and the fallback chain of a render."""

from __future__ import annotations

import re

MAX_TAG_LENGTH = 35
_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")


def normalize(tag: str) -> str:
    """`pt-br` → `pt-BR`, `ZH-hant-tw` → `zh-Hant-TW`; ValueError when not a tag."""
    if len(tag) > MAX_TAG_LENGTH or not _TAG.match(tag):
        raise ValueError("is not a BCP 47 language tag such as 'en' or 'pt-BR'")
    language, *subtags = tag.split("-")
    spelled = [language.lower()]
    for subtag in subtags:
        if len(subtag) == 2 and subtag.isalpha():
            spelled.append(subtag.upper())  # region
        elif len(subtag) == 4 and subtag.isalpha():
            spelled.append(subtag.title())  # script
        else:
            spelled.append(subtag.lower())
    return "-".join(spelled)


def fallback_chain(tag: str, default: str) -> list[str]:
    """`pt-BR` with default `en` → `[pt-BR, pt, en]`: drop subtags, then the default."""
    subtags = tag.split("-") if tag else []
    chain = ["-".join(subtags[:end]) for end in range(len(subtags), 0, -1)]
    return list(dict.fromkeys([*chain, default]))
