"""Reading the loosely typed fields of providers' payloads, the same way for each."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.receipts.verify import MalformedReceipt


def load_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedReceipt(f"body is not JSON: {exc}") from None


def instant(value: object, what: str) -> datetime:
    """A unix timestamp (seconds, int or float, or their text) as an aware datetime."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise MalformedReceipt(f"{what} is not a unix timestamp: {value!r:.40}")
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (ValueError, OverflowError, OSError):
        raise MalformedReceipt(f"{what} is not a unix timestamp: {value!r:.40}") from None


def text(value: object) -> str:
    """A scalar field as text ("" when absent); a nested value is not text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise MalformedReceipt(f"expected text, got {type(value).__name__}")


def optional_id(value: object) -> str | None:
    """One of Herald's ids as sent with the message: None when absent or empty."""
    return text(value) or None


def digest(event: object) -> str:
    """What identifies an event that carries no id of its own: a hash of its content, so
    that the provider's retries of it share one."""
    return hashlib.sha256(orjson.dumps(event, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
