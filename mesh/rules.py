"""Input rules every layer shares, each written once: the REST schemas (as pydantic
patterns and lengths, so /openapi.json shows them), the gateway's domain, userd and
templated accept and refuse the same input.

Patterns are strings (pydantic and JSON Schema take them as such) in the syntax Python,
Rust's regex (pydantic) and ECMA-262 (JSON Schema) read alike: no lookaround, no named
groups, `\\uXXXX` escapes only. `matches` checks a value against one of them with its
length bound.
"""

from __future__ import annotations

import re
import unicodedata
import zoneinfo
from collections.abc import Callable
from functools import cache
from typing import Literal, get_args

ChannelName = Literal["email", "sms", "push"]
CHANNEL_NAMES: tuple[ChannelName, ...] = get_args(ChannelName)
MessageTypeName = Literal["transactional", "alert", "marketing"]
MESSAGE_TYPE_NAMES: tuple[MessageTypeName, ...] = get_args(MessageTypeName)


def _char_class(member: Callable[[str], bool]) -> str:
    """The BMP characters `member` takes, as the inside of a regex class (`\\uXXXX` ranges)."""
    spans: list[tuple[int, int]] = []
    for point in range(0x10000):
        if 0xD800 <= point <= 0xDFFF or not member(chr(point)):
            continue
        if spans and spans[-1][1] == point - 1:
            spans[-1] = (spans[-1][0], point)
        else:
            spans.append((point, point))
    return "".join(
        f"\\u{low:04x}" if low == high else f"\\u{low:04x}-\\u{high:04x}" for low, high in spans
    )


# What `str.strip()` removes: a field that must not be blank needs one character besides.
SPACE = _char_class(str.isspace)
# What a name or label refuses: control characters, and the format (bidi overrides,
# zero-width spaces) and private-use characters of the BMP.
UNPRINTABLE = _char_class(lambda c: unicodedata.category(c) in ("Cc", "Cf", "Co"))
# PostgreSQL stores no NUL character.
NO_NUL = r"^[^\x00]*$"
NOT_BLANK = rf"^[^\x00]*[^\x00{SPACE}][^\x00]*$"
PRINTABLE = rf"^[^{UNPRINTABLE}]*$"
PRINTABLE_NOT_BLANK = rf"^[^{UNPRINTABLE}]*[^{UNPRINTABLE}{SPACE}][^{UNPRINTABLE}]*$"
NOT_BLANK_RULE = "must not be blank"
PRINTABLE_RULE = "must not contain control, format or private-use characters"

# A template code is a lowercase slug or path ("welcome", "auth/welcome"); templated owns
# templates, so its rule is the rule.
TEMPLATE_CODE = r"^[a-z0-9][a-z0-9_\-]*(/[a-z0-9][a-z0-9_\-]*)*$"
MAX_TEMPLATE_CODE = 128
TEMPLATE_CODE_RULE = (
    "must be a lowercase slug or path such as 'auth/welcome' "
    f"(a-z, 0-9, '_', '-', '/'; at most {MAX_TEMPLATE_CODE} characters)"
)
# Each source of a template (a subject, a body, a push data value) is at most this long.
MAX_TEMPLATE_PART = 65_536
# Push data: at most this many entries, keys of this shape.
MAX_PUSH_DATA = 32
PUSH_DATA_KEY = r"^[A-Za-z0-9_.\-]{1,64}$"
PUSH_DATA_KEY_RULE = "must be 1-64 of A-Z a-z 0-9 _ . -"

# A BCP 47 language tag (RFC 5646, in any case): language (or language and extended
# language), script, region, variants, an extension, private use. Repetitions are bounded
# to what locales use (two variants, two subtags after a singleton), which keeps the
# pattern's strings near MAX_LANGUAGE: "pt-BR", "zh-Hant-TW", "de-CH-1996", "en-US-u-ca-gregory".
LANGUAGE = (
    r"^([A-Za-z]{2,3}(-[A-Za-z]{3})?|[A-Za-z]{4,8})"
    r"(-[A-Za-z]{4})?"
    r"(-([A-Za-z]{2}|[0-9]{3}))?"
    r"(-([A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3})){0,2}"
    r"(-[0-9A-WYZa-wyz](-[A-Za-z0-9]{2,8}){1,2})?"
    r"(-[Xx](-[A-Za-z0-9]{1,8}){1,2})?$"
)
MAX_LANGUAGE = 35
LANGUAGE_RULE = "is not a BCP 47 language tag such as 'en' or 'pt-BR'"

# An email address: RFC 5321's 256-octet path less its angle brackets (RFC 3696 erratum
# 1690), the longest email-validator (userd's check) accepts.
MAX_EMAIL = 254

# An idempotency key, also a correlation id: printable ASCII, no more than 128.
REQUEST_ID = r"^[\x20-\x7e]{1,128}$"
MAX_REQUEST_ID = 128
REQUEST_ID_RULE = f"at most {MAX_REQUEST_ID} printable ASCII characters"

# How long the services let text be, and how many of a kind: users (userd) and
# templates (templated).
MAX_USER_NAME = 200
MAX_LABEL = 100
MAX_PUSH_TARGETS = 20
MAX_TEMPLATE_NAME = 200
MAX_TEMPLATE_DESCRIPTION = 2000
MAX_AUTHOR = 200
MAX_CHANGE_NOTE = 2000
MAX_TEMPLATE_LANGUAGES = 50

# A user's password (argon2 hashes it whole; the bound keeps hashing cheap).
MIN_PASSWORD = 8
MAX_PASSWORD = 512

# Push targets. An FCM registration token; a OneSignal subscription id is a UUID.
FCM_TOKEN = r"^[A-Za-z0-9_:.\-]+$"
MAX_PUSH_TOKEN = 1024
FCM_TOKEN_RULE = "must be an FCM registration token"
# A Web Push subscription's keys (RFC 8291) in base64url, padding optional: p256dh is an
# uncompressed P-256 point, 65 bytes whose first is 0x04 (so "B", then one of A-P), in 87
# characters; auth is 16 bytes, in 22.
P256DH_BYTES = 65
AUTH_BYTES = 16
WEB_PUSH_P256DH = r"^B[A-P][A-Za-z0-9_\-]{85}={0,2}$"
WEB_PUSH_AUTH = r"^[A-Za-z0-9_\-]{22}={0,2}$"
MAX_WEB_PUSH_KEY = 89
MAX_WEB_PUSH_ENDPOINT = 2048

# Items of one SendBatch, and notifications of one page.
MAX_BATCH_ITEMS = 500
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50

# What a pattern mismatch means, for messages that name the rule rather than the regex.
PATTERN_RULES = {
    NO_NUL: "must not contain a NUL character",
    NOT_BLANK: NOT_BLANK_RULE,
    PRINTABLE: PRINTABLE_RULE,
    PRINTABLE_NOT_BLANK: f"{NOT_BLANK_RULE}, and {PRINTABLE_RULE}",
    TEMPLATE_CODE: TEMPLATE_CODE_RULE,
    PUSH_DATA_KEY: PUSH_DATA_KEY_RULE,
    LANGUAGE: LANGUAGE_RULE,
    REQUEST_ID: REQUEST_ID_RULE,
    FCM_TOKEN: FCM_TOKEN_RULE,
    WEB_PUSH_P256DH: f"must be base64url of a {P256DH_BYTES}-byte key",
    WEB_PUSH_AUTH: f"must be base64url of a {AUTH_BYTES}-byte key",
}


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def matches(pattern: str, value: str, max_length: int) -> bool:
    """Whether `value` follows `pattern` and is at most `max_length` characters."""
    return len(value) <= max_length and _compiled(pattern).fullmatch(value) is not None


def canonical_language(tag: str) -> str:
    """A LANGUAGE tag in RFC 5646's case: `pt-br` → `pt-BR`, `ZH-hant-tw` → `zh-Hant-TW`
    (a script titled, a region upper-cased, the rest, and all after a singleton, lower)."""
    language, *subtags = tag.lower().split("-")
    spelled = [language]
    for index, subtag in enumerate(subtags):
        if len(subtag) == 1:
            spelled += subtags[index:]
            break
        if len(subtag) == 2 and subtag.isalpha():
            spelled.append(subtag.upper())
        elif len(subtag) == 4 and subtag.isalpha():
            spelled.append(subtag.title())
        else:
            spelled.append(subtag)
    return "-".join(spelled)


@cache
def time_zones() -> frozenset[str]:
    """The IANA time zone names this machine knows (what a user's time_zone may be)."""
    return frozenset(zoneinfo.available_timezones())
