"""Input rules every layer shares, each written once: the REST schemas (as pydantic
patterns and lengths, so /openapi.json shows them), the gateway's domain and templated
accept and refuse the same input.

Patterns are strings (pydantic and JSON Schema take them as such); `matches` checks a
value against one of them with its length bound.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Literal, get_args

ChannelName = Literal["email", "sms", "push"]
CHANNEL_NAMES: tuple[ChannelName, ...] = get_args(ChannelName)
MessageTypeName = Literal["transactional", "alert", "marketing"]
MESSAGE_TYPE_NAMES: tuple[MessageTypeName, ...] = get_args(MessageTypeName)

# A template code is a lowercase slug or path ("welcome", "auth/welcome"); templated owns
# templates, so its rule is the rule.
TEMPLATE_CODE = r"^[a-z0-9][a-z0-9_\-]*(/[a-z0-9][a-z0-9_\-]*)*$"
MAX_TEMPLATE_CODE = 128
TEMPLATE_CODE_RULE = (
    "must be a lowercase slug or path such as 'auth/welcome' "
    f"(a-z, 0-9, '_', '-', '/'; at most {MAX_TEMPLATE_CODE} characters)"
)

# A BCP 47 language tag as templated resolves it ("en", "pt-BR", "zh-Hant-TW").
LANGUAGE = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$"
MAX_LANGUAGE = 35
LANGUAGE_RULE = "is not a BCP 47 language tag such as 'en' or 'pt-BR'"

# An idempotency key, also a correlation id: printable ASCII, no more than 128.
REQUEST_ID = r"^[\x20-\x7e]{1,128}$"
MAX_REQUEST_ID = 128
REQUEST_ID_RULE = f"at most {MAX_REQUEST_ID} printable ASCII characters"

# Items of one SendBatch, and notifications of one page.
MAX_BATCH_ITEMS = 500
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def matches(pattern: str, value: str, max_length: int) -> bool:
    """Whether `value` follows `pattern` and is at most `max_length` characters."""
    return len(value) <= max_length and _compiled(pattern).match(value) is not None
