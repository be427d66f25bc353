"""SendGrid's signed Event Webhook: a JSON array of events, ECDSA-signed over the
timestamp header followed by the raw body.

| SendGrid `event`                          | ReceiptEvent |
|-------------------------------------------|--------------|
| processed                                 | ACCEPTED     |
| delivered                                 | DELIVERED    |
| deferred                                  | DEFERRED     |
| bounce, `type` bounce (or no type)        | BOUNCED      |
| bounce, `type` blocked                    | DROPPED      |
| dropped                                   | DROPPED      |
| spamreport                                | COMPLAINED   |
| open, click, unsubscribe, group_*, others | (skipped)    |

A `blocked` bounce is the receiving server refusing the message for reasons not about the
address (the sender's reputation, content): the message failed, the address stands.
Herald's ids come back as top-level fields of each event (the send's `custom_args`).
"""

from __future__ import annotations

import binascii
import functools
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhook

from gateway.receipts.model import Receipt, ReceiptEvent
from gateway.receipts.verify import BadSignature, MalformedReceipt, check_fresh
from gateway.receipts.verify._fields import digest, instant, load_json, optional_id, text

PROVIDER = "sendgrid"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

EVENTS: Mapping[str, ReceiptEvent] = {
    "processed": ReceiptEvent.ACCEPTED,
    "delivered": ReceiptEvent.DELIVERED,
    "deferred": ReceiptEvent.DEFERRED,
    "bounce": ReceiptEvent.BOUNCED,
    "dropped": ReceiptEvent.DROPPED,
    "spamreport": ReceiptEvent.COMPLAINED,
}


@functools.lru_cache(maxsize=4)
def _verifier(public_key: str) -> EventWebhook:
    """The SDK's verifier for the key as SendGrid's settings page shows it (base64 of
    the DER SubjectPublicKeyInfo); raises ValueError for anything but a P-256 key."""
    verifier = EventWebhook(public_key)
    key = verifier.public_key
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("not an ECDSA P-256 public key")
    return verifier


def check_public_key(public_key: str) -> None:
    """Raises ValueError unless `public_key` is a verification key SendGrid could give:
    a configuration error, for start-up to report (`parse` raises the same)."""
    _verifier(public_key)


def verify(
    body: bytes,
    signature: str,
    timestamp: str,
    *,
    public_key: str,
    now: datetime,
    tolerance: timedelta,
) -> None:
    """Raises `BadSignature` (or `Stale`) unless SendGrid signed `body` at `timestamp`;
    ValueError for a `public_key` that is not one (see `check_public_key`)."""
    if not signature or not timestamp:
        raise BadSignature(f"missing {SIGNATURE_HEADER if not signature else TIMESTAMP_HEADER}")
    check_fresh(timestamp, now=now, tolerance=tolerance)
    verifier = _verifier(public_key)
    try:
        payload = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadSignature("body is not UTF-8: it cannot carry SendGrid's signature") from None
    try:
        valid = verifier.verify_signature(payload, signature, timestamp)
    except (binascii.Error, ValueError):
        raise BadSignature("unreadable signature") from None
    if not valid:
        raise BadSignature("signature does not match the body and timestamp")


def parse(
    body: bytes,
    signature: str,
    timestamp: str,
    *,
    public_key: str,
    now: datetime,
    tolerance: timedelta,
) -> list[Receipt]:
    """The receipts of one signed webhook request; raises `BadSignature` before reading
    anything, then `MalformedReceipt` for a body that is not SendGrid's array of events."""
    verify(body, signature, timestamp, public_key=public_key, now=now, tolerance=tolerance)
    events = load_json(body)
    if not isinstance(events, list):
        raise MalformedReceipt("body is not a JSON array of events")
    receipts = []
    for event in events:
        if not isinstance(event, dict):
            raise MalformedReceipt("an event is not a JSON object")
        receipt = _receipt(event)
        if receipt is not None:
            receipts.append(receipt)
    return receipts


def _receipt(event: dict[str, Any]) -> Receipt | None:
    name = event.get("event")
    kind = EVENTS.get(name) if isinstance(name, str) else None
    if kind is None:
        return None
    if kind is ReceiptEvent.BOUNCED and event.get("type") == "blocked":
        kind = ReceiptEvent.DROPPED
    # sg_message_id is the send's X-Message-Id, then a dot and the filter's suffix.
    message_id = text(event.get("sg_message_id")).split(".", 1)[0]
    return Receipt(
        provider=PROVIDER,
        event=kind,
        receipt_id=text(event.get("sg_event_id")) or digest(event),
        provider_message_id=message_id,
        attempt_id=optional_id(event.get("herald_attempt_id")),
        notification_id=optional_id(event.get("herald_notification_id")),
        occurred_at=instant(event.get("timestamp"), "timestamp"),
        reason=text(event.get("reason")) or text(event.get("response")),
        code=text(event.get("status")),
        contact=text(event.get("email")),
    )
