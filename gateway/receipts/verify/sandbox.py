"""The sandbox provider's receipts (`mesh.sandbox_receipts`): a JSON POST of
`{"events": [...]}` signed as Standard Webhooks specify, under
HERALD_SANDBOX_RECEIPTS_SECRET. Each event names its `event` in `ReceiptEvent`'s own
words (delivered, bounced, complained, undelivered, opted_out, …), the attempt and
notification it is about, and its own `id`.

The signature covers the webhook id, the timestamp and the body, so a replay within the
tolerance is the same receipts again (one effect), and an older one is stale.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from gateway.receipts.model import Receipt, ReceiptEvent
from gateway.receipts.verify import BadSignature, MalformedReceipt, check_fresh
from gateway.receipts.verify._fields import instant, load_json, optional_id, text
from mesh.signing import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signer

PROVIDER = "sandbox"


def verify(
    body: bytes, headers: Mapping[str, str], *, secret: str, now: datetime, tolerance: timedelta
) -> None:
    """Raises `BadSignature` (or `Stale`) unless the sandbox signed `body` at the time its
    headers say, within `tolerance` of `now`."""
    webhook_id, timestamp = headers.get(ID_HEADER, ""), headers.get(TIMESTAMP_HEADER, "")
    given = headers.get(SIGNATURE_HEADER, "")
    if not (webhook_id and timestamp and given):
        raise BadSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    signed_at = check_fresh(timestamp, now=now, tolerance=tolerance)
    expected = signer(secret).sign(webhook_id, signed_at, body).encode()
    # Several signatures, space-separated, while a secret rotates: one must match.
    if not any(hmac.compare_digest(expected, s.encode()) for s in given.split(" ")):
        raise BadSignature("signature does not match the body, id and timestamp")


def parse(
    body: bytes, headers: Mapping[str, str], *, secret: str, now: datetime, tolerance: timedelta
) -> list[Receipt]:
    """The receipts of one signed callback; `BadSignature` before anything is read, then
    `MalformedReceipt` for a body that is not `{"events": [...]}`."""
    verify(body, headers, secret=secret, now=now, tolerance=tolerance)
    payload = load_json(body)
    events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(events, list):
        raise MalformedReceipt('body is not {"events": [...]}')
    return [_receipt(event) for event in events]


def _receipt(event: Any) -> Receipt:
    if not isinstance(event, dict):
        raise MalformedReceipt("an event is not a JSON object")
    try:
        kind = ReceiptEvent(text(event.get("event")))
    except ValueError:
        raise MalformedReceipt(f"unknown event {event.get('event')!r:.40}") from None
    receipt_id = text(event.get("id"))
    if not receipt_id:
        raise MalformedReceipt("an event has no id")
    return Receipt(
        provider=PROVIDER,
        event=kind,
        receipt_id=receipt_id,
        provider_message_id=text(event.get("message_id")),
        attempt_id=optional_id(event.get("attempt_id")),
        notification_id=optional_id(event.get("notification_id")),
        occurred_at=instant(event.get("timestamp"), "timestamp"),
        reason=text(event.get("reason")),
        code=text(event.get("code")),
        contact=text(event.get("recipient")),
    )
