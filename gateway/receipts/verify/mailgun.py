"""Mailgun's webhooks: one event per request, JSON `{"signature": {timestamp, token,
signature}, "event-data": {…}}`, the signature an HMAC-SHA256 of timestamp + token under
the account's webhook signing key.

| Mailgun `event`                                                 | ReceiptEvent |
|-----------------------------------------------------------------|--------------|
| accepted                                                        | ACCEPTED     |
| delivered                                                       | DELIVERED    |
| failed, `severity` temporary                                    | DEFERRED     |
| failed, permanent, `reason` suppress-*, old or espblock         | DROPPED      |
| failed, permanent, any other `reason` (bounce, generic, …)      | BOUNCED      |
| complained                                                      | COMPLAINED   |
| unsubscribed, opened, clicked, stored, others                   | (skipped)    |

DROPPED reasons are Mailgun not sending at all (the address is on a suppression list) or
giving up (`old`: retried until too old; `espblock`: the recipient's provider refused the
sender): the message failed, but nothing proves the address bad.

The signature covers the timestamp and token only, not the event: a captured signature
could carry a forged event. So the token must be used once: `verify` answers it, the
caller remembers it for twice the tolerance and refuses it again (then `read`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gateway.receipts.model import Receipt, ReceiptEvent
from gateway.receipts.verify import BadSignature, MalformedReceipt, check_fresh
from gateway.receipts.verify._fields import digest, instant, load_json, optional_id, text

PROVIDER = "mailgun"

EVENTS: Mapping[str, ReceiptEvent] = {
    "accepted": ReceiptEvent.ACCEPTED,
    "delivered": ReceiptEvent.DELIVERED,
    "failed": ReceiptEvent.BOUNCED,
    "complained": ReceiptEvent.COMPLAINED,
}
# Permanent failures that say nothing about the address (see the table above).
NOT_ABOUT_THE_ADDRESS = frozenset({"old", "espblock"})


@dataclass(frozen=True)
class Signed:
    """A request whose signature checked out; its event not yet read."""

    # Used once by Mailgun: seen again within the tolerance, the request is a replay.
    token: str
    signed_at: datetime
    event_data: Any


def signature(signing_key: str, timestamp: str, token: str) -> str:
    """Mailgun's signature of (timestamp, token): hex HMAC-SHA256 under the signing key."""
    message = (timestamp + token).encode()
    return hmac.new(signing_key.encode(), message, hashlib.sha256).hexdigest()


def verify(body: bytes, *, signing_key: str, now: datetime, tolerance: timedelta) -> Signed:
    """Raises `MalformedReceipt` for a body that is not a JSON object, `BadSignature` (or
    `Stale`) unless its signature is Mailgun's from within `tolerance` of `now`."""
    payload = load_json(body)
    if not isinstance(payload, dict):
        raise MalformedReceipt("body is not a JSON object")
    block = payload.get("signature")
    if not isinstance(block, dict):
        raise BadSignature("missing signature")
    timestamp, token, given = (block.get(k) for k in ("timestamp", "token", "signature"))
    if not (isinstance(timestamp, str | int) and isinstance(token, str) and token):
        raise BadSignature("signature lacks its timestamp or token")
    if not isinstance(given, str) or not given:
        raise BadSignature("missing signature")
    signed_at = check_fresh(str(timestamp), now=now, tolerance=tolerance)
    expected = signature(signing_key, str(timestamp), token)
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise BadSignature("signature does not match the timestamp and token")
    return Signed(token=token, signed_at=signed_at, event_data=payload.get("event-data"))


def read(signed: Signed) -> list[Receipt]:
    """The receipt of a verified request: none for an event Herald ignores."""
    event = signed.event_data
    if not isinstance(event, dict):
        raise MalformedReceipt("event-data is missing or not a JSON object")
    name = event.get("event")
    kind = EVENTS.get(name) if isinstance(name, str) else None
    if kind is None:
        return []
    reason = text(event.get("reason"))
    if name == "failed":
        kind = _failure(text(event.get("severity")), reason)
    status = _object(event.get("delivery-status"), "delivery-status")
    headers = _object(_object(event.get("message"), "message").get("headers"), "headers")
    variables = _object(event.get("user-variables"), "user-variables")
    words = text(status.get("description")) or text(status.get("message"))
    return [
        Receipt(
            provider=PROVIDER,
            event=kind,
            receipt_id=text(event.get("id")) or digest(event),
            provider_message_id=text(headers.get("message-id")).strip().strip("<>"),
            attempt_id=optional_id(variables.get("herald_attempt_id")),
            notification_id=optional_id(variables.get("herald_notification_id")),
            occurred_at=instant(event.get("timestamp"), "event-data.timestamp"),
            reason=": ".join(part for part in (reason, words) if part),
            code=text(status.get("code")),
            contact=text(event.get("recipient")),
        )
    ]


def parse(body: bytes, *, signing_key: str, now: datetime, tolerance: timedelta) -> list[Receipt]:
    """`verify` then `read`, for a caller that keeps tokens some other way (or not at all)."""
    return read(verify(body, signing_key=signing_key, now=now, tolerance=tolerance))


def _failure(severity: str, reason: str) -> ReceiptEvent:
    if severity == "temporary":
        return ReceiptEvent.DEFERRED
    if severity != "permanent":
        raise MalformedReceipt(f"failed event of unknown severity {severity[:40]!r}")
    if reason.startswith("suppress-") or reason in NOT_ABOUT_THE_ADDRESS:
        return ReceiptEvent.DROPPED
    return ReceiptEvent.BOUNCED


def _object(value: object, what: str) -> dict[str, Any]:
    """A nested JSON object ({} when absent)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedReceipt(f"{what} is not a JSON object")
    return value
