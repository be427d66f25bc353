"""BCP 47 language tags: normalised spelling and the fallback chain of a render."""

from __future__ import annotations

from mesh import rules


def normalize(tag: str) -> str:
    """`pt-br` → `pt-BR`, `ZH-hant-tw` → `zh-Hant-TW`; ValueError when not a tag."""
    if not rules.matches(rules.LANGUAGE, tag, rules.MAX_LANGUAGE):
        raise ValueError(rules.LANGUAGE_RULE)
    return rules.canonical_language(tag)


def fallback_chain(tag: str, default: str) -> list[str]:
    """`pt-BR` with default `en` → `[pt-BR, pt, en]`: drop subtags, then the default."""
    subtags = tag.split("-") if tag else []
    chain = ["-".join(subtags[:end]) for end in range(len(subtags), 0, -1)]
    return list(dict.fromkeys([*chain, default]))
