"""Language tags and their fallback chain."""

from __future__ import annotations

import pytest

from templated.languages import fallback_chain, normalize


@pytest.mark.parametrize(
    ("tag", "normalized"),
    [
        ("en", "en"),
        ("EN", "en"),
        ("pt-br", "pt-BR"),
        ("PT-br", "pt-BR"),
        ("zh-hant-tw", "zh-Hant-TW"),
        ("es-419", "es-419"),
        ("de-CH-1996", "de-CH-1996"),
    ],
)
def test_normalize_spells_tags_canonically(tag: str, normalized: str) -> None:
    assert normalize(tag) == normalized


@pytest.mark.parametrize(
    "tag", ["", "e", "english!", "pt_BR", "pt-", "-pt", "x" * 40, "pt-toolongsubtag"]
)
def test_normalize_refuses_what_is_not_a_tag(tag: str) -> None:
    with pytest.raises(ValueError):
        normalize(tag)


@pytest.mark.parametrize(
    ("tag", "default", "chain"),
    [
        ("pt-BR", "en", ["pt-BR", "pt", "en"]),
        ("zh-Hant-TW", "en", ["zh-Hant-TW", "zh-Hant", "zh", "en"]),
        ("en-GB", "en", ["en-GB", "en"]),
        ("en", "en", ["en"]),
        ("", "pt-BR", ["pt-BR"]),
    ],
)
def test_fallback_chain_drops_subtags_then_ends_with_the_default(
    tag: str, default: str, chain: list[str]
) -> None:
    assert fallback_chain(tag, default) == chain
