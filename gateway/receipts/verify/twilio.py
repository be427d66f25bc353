"""Twilio's message status callbacks: a form POST to the `StatusCallback` URL given with
the message, signed in `X-Twilio-Signature` (HMAC-SHA1 of the URL and the sorted form
fields under the account's auth token, the SDK's `RequestValidator`).

| Twilio `MessageStatus`            | ReceiptEvent |
|-----------------------------------|--------------|
| queued, sending, sent, accepted   | ACCEPTED     |
| delivered                         | DELIVERED    |
| undelivered, failed               | UNDELIVERED  |
| …with `ErrorCode` 21610           | OPTED_OUT    |
| read, received, canceled, others  | (skipped)    |

Herald's ids travel in the callback URL's query (`attempt`, `notification`). The callback
carries no time and no event id: the receipt is timed at its arrival, and identified by
message and status, so a repeated callback (or a replayed one: the signature has no
timestamp) is the same receipt.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

from twilio.request_validator import RequestValidator

from gateway.receipts.model import Receipt, ReceiptEvent
from gateway.receipts.verify import BadSignature, MalformedReceipt

PROVIDER = "twilio"
SIGNATURE_HEADER = "X-Twilio-Signature"
OPTED_OUT_CODE = "21610"

EVENTS: Mapping[str, ReceiptEvent] = {
    "queued": ReceiptEvent.ACCEPTED,
    "sending": ReceiptEvent.ACCEPTED,
    "sent": ReceiptEvent.ACCEPTED,
    "accepted": ReceiptEvent.ACCEPTED,
    "delivered": ReceiptEvent.DELIVERED,
    "undelivered": ReceiptEvent.UNDELIVERED,
    "failed": ReceiptEvent.UNDELIVERED,
}
# What the callback's bare error code means, for the trail (twilio.com/docs/api/errors).
ERRORS: Mapping[str, str] = {
    "21610": "the recipient opted out (STOP)",
    "30003": "unreachable destination handset",
    "30004": "message blocked",
    "30005": "unknown destination handset",
    "30006": "landline or unreachable carrier",
    "30007": "filtered by the carrier",
    "30008": "unknown error",
}


def verify(url: str, form: Mapping[str, str], signature: str, *, auth_token: str) -> None:
    """Raises `BadSignature` unless Twilio signed `form` for `url`, which must be the URL
    exactly as Twilio called it (scheme, host and query included)."""
    if not signature:
        raise BadSignature(f"missing {SIGNATURE_HEADER}")
    if not RequestValidator(auth_token).validate(url, dict(form), signature):
        raise BadSignature("signature does not match the URL and form")


def parse(
    url: str, form: Mapping[str, str], signature: str, *, auth_token: str, now: datetime
) -> list[Receipt]:
    """The receipt of one signed callback (none for a status Herald ignores); `now` is
    when it arrived. Raises `BadSignature`, then `MalformedReceipt` for a callback
    without its message sid or status."""
    verify(url, form, signature, auth_token=auth_token)
    sid, status = form.get("MessageSid", ""), form.get("MessageStatus", "")
    if not sid or not status:
        raise MalformedReceipt("callback without MessageSid or MessageStatus")
    kind = EVENTS.get(status)
    if kind is None:
        return []
    code = form.get("ErrorCode", "")
    if kind is ReceiptEvent.UNDELIVERED and code == OPTED_OUT_CODE:
        kind = ReceiptEvent.OPTED_OUT
    query = parse_qs(urlsplit(url).query)
    return [
        Receipt(
            provider=PROVIDER,
            event=kind,
            receipt_id=f"{sid}:{status}",
            provider_message_id=sid,
            attempt_id=_first(query.get("attempt")),
            notification_id=_first(query.get("notification")),
            occurred_at=now,
            reason=form.get("ErrorMessage") or ERRORS.get(code, ""),
            code=code,
            contact=form.get("To", ""),
        )
    ]


def _first(values: list[str] | None) -> str | None:
    return values[0] if values and values[0] else None
