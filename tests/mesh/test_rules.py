"""The shared input rules: each pattern means exactly what the check it stands for does
(the schemas show the pattern, the services may run either)."""

from __future__ import annotations

import base64
import itertools
import os
import re
import unicodedata

import pytest

from mesh import outbound, rules

BMP = [chr(point) for point in range(0x10000) if not 0xD800 <= point <= 0xDFFF]


def unprintable(c: str) -> bool:
    return unicodedata.category(c) in ("Cc", "Cf", "Co")


@pytest.mark.parametrize("c", ["a", " ", "\x00"])
def test_not_blank_is_what_strip_leaves_something_of(c: str) -> None:
    for char in BMP:
        for value in (char, f"{c}{char}", f"{char}{c}", f"{char}{c}{char}"):
            expected = bool(value.strip()) and "\x00" not in value
            assert rules.matches(rules.NOT_BLANK, value, 10) is expected, repr(value)


def test_printable_refuses_control_format_and_private_use_characters() -> None:
    for char in BMP:
        for value in (char, f"a{char}", f"{char} "):
            expected = not any(unprintable(c) for c in value)
            assert rules.matches(rules.PRINTABLE, value, 10) is expected, repr(value)
            not_blank = expected and bool(value.strip())
            assert rules.matches(rules.PRINTABLE_NOT_BLANK, value, 10) is not_blank, repr(value)


def decodes_to(value: str) -> bytes | None:
    """What userd used to decode (base64url, padding optional), or None."""
    if not re.fullmatch(r"[A-Za-z0-9_\-]+={0,2}", value):
        return None
    bare = value.rstrip("=")
    try:
        return base64.urlsafe_b64decode(bare + "=" * (-len(bare) % 4))
    except ValueError:
        return None


def spellings(raw: bytes) -> list[str]:
    encoded = base64.urlsafe_b64encode(raw).decode()
    bare = encoded.rstrip("=")
    return [encoded, bare, bare + "=", bare + "=="]


def test_the_web_push_key_patterns_are_the_key_sizes() -> None:
    for size in range(10, 70):
        for first in range(256):
            raw = bytes([first]) + os.urandom(size - 1)
            for value in spellings(raw):
                p256dh = decodes_to(value) is not None and size == 65 and first == 4
                assert rules.matches(rules.WEB_PUSH_P256DH, value, rules.MAX_WEB_PUSH_KEY) is (
                    p256dh
                ), value
                auth = size == 16
                assert rules.matches(rules.WEB_PUSH_AUTH, value, rules.MAX_WEB_PUSH_KEY) is auth


@pytest.mark.parametrize(
    ("tag", "canonical"),
    [
        ("en", "en"),
        ("pt-br", "pt-BR"),
        ("ZH-hant-tw", "zh-Hant-TW"),
        ("es-419", "es-419"),
        ("de-ch-1996", "de-CH-1996"),
        ("en-a-bc-x-ab", "en-a-bc-x-ab"),
        ("sgn-ase-US", "sgn-ase-US"),
        ("en-us-u-ca-gregory", "en-US-u-ca-gregory"),
    ],
)
def test_language_tags_and_their_canonical_case(tag: str, canonical: str) -> None:
    assert rules.matches(rules.LANGUAGE, tag, rules.MAX_LANGUAGE)
    assert rules.canonical_language(tag) == canonical


@pytest.mark.parametrize("tag", ["e", "en-a", "en-", "pt_BR", "en-toolongsub", "en\n", "x" * 36])
def test_what_is_no_language_tag(tag: str) -> None:
    assert not rules.matches(rules.LANGUAGE, tag, rules.MAX_LANGUAGE)


LABELS = ["a", "a-b", "-a", "a-", "0", "9a", "x" * 63, "x" * 64, "local", "localhost", "Ab"]
LABELS += ["home", "arpa", "internal", "lan", "localdomain", "xn--p1ai", "127", ""]
TAILS = ["", "/", "/x?y=1#f", ":8443/p", ":0", ":99999", ":", "?", "/a b", "/%41@x"]


def test_a_url_the_endpoint_patterns_pass_is_one_outbound_passes() -> None:
    strict = outbound.OutboundRule()
    passed = 0
    for count in (1, 2, 3):
        for labels in itertools.product(LABELS, repeat=count):
            for tail in TAILS:
                url = f"https://{'.'.join(labels)}{tail}"
                if re.fullmatch(outbound.PUBLIC_HTTPS_URL, url) and not re.fullmatch(
                    outbound.LOCAL_HOST_URL, url
                ):
                    strict.check_url(url)
                    passed += 1
    assert passed > 1000
    long_host = f"https://{'.'.join(['x' * 63] * 4)}/"
    assert re.fullmatch(outbound.PUBLIC_HTTPS_URL, long_host)
    assert re.fullmatch(outbound.LOCAL_HOST_URL, long_host)
    with pytest.raises(outbound.OutboundRefused):
        strict.check_url(long_host)


def test_every_time_zone_name_is_one() -> None:
    assert {"UTC", "America/Sao_Paulo", "Europe/Lisbon"} <= rules.time_zones()
