"""Mailgun's webhooks, played with a signing key made here and signed as Mailgun signs
(hex HMAC-SHA256 of timestamp + token)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from gateway.receipts.model import Receipt, ReceiptEvent
from gateway.receipts.verify import BadSignature, MalformedReceipt, Stale
from gateway.receipts.verify import mailgun as verifier
from tests.fakes.signing import mailgun_signature, mailgun_signature_block

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
TOLERANCE = timedelta(minutes=5)
SIGNED = str(int(NOW.timestamp()))
KEY = secrets.token_hex(16)


def event_data(name: str, **fields: Any) -> dict[str, Any]:
    """An event as Mailgun writes it, Herald's `v:` variables as `user-variables`."""
    return {
        "id": f"evt-{name}",
        "event": name,
        "timestamp": NOW.timestamp() - 30.25,
        "recipient": "jane@example.com",
        "message": {"headers": {"message-id": "20260501120000.1.ABC@mg.example.com"}},
        "user-variables": {
            "herald_attempt_id": "a-1",
            "herald_notification_id": "n-1",
            "herald_key": "n-1:1:email",
        },
        **fields,
    }


def failed(severity: str, reason: str, code: int = 550) -> dict[str, Any]:
    return event_data(
        "failed",
        severity=severity,
        reason=reason,
        **{
            "delivery-status": {
                "code": code,
                "message": "5.1.1 mailbox does not exist",
                "description": "",
                "attempt-no": 1,
            }
        },
    )


def body(data: Any, *, signed_at: str = SIGNED, key: str = KEY) -> bytes:
    return orjson.dumps({"signature": mailgun_signature_block(key, signed_at), "event-data": data})


def parse(payload: bytes) -> list[Receipt]:
    return verifier.parse(payload, signing_key=KEY, now=NOW, tolerance=TOLERANCE)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (event_data("accepted"), ReceiptEvent.ACCEPTED),
        (event_data("delivered"), ReceiptEvent.DELIVERED),
        (failed("temporary", "generic", 451), ReceiptEvent.DEFERRED),
        (failed("permanent", "bounce"), ReceiptEvent.BOUNCED),
        (failed("permanent", "generic"), ReceiptEvent.BOUNCED),
        (failed("permanent", "suppress-bounce"), ReceiptEvent.DROPPED),
        (failed("permanent", "suppress-unsubscribe"), ReceiptEvent.DROPPED),
        (failed("permanent", "old"), ReceiptEvent.DROPPED),
        (failed("permanent", "espblock"), ReceiptEvent.DROPPED),
        (event_data("complained"), ReceiptEvent.COMPLAINED),
    ],
)
def test_each_event_maps(data: dict[str, Any], expected: ReceiptEvent) -> None:
    [receipt] = parse(body(data))
    assert receipt.event is expected


def test_a_signed_bounce_reads_as_a_receipt() -> None:
    data = failed("permanent", "bounce")
    data["message"]["headers"]["message-id"] = "<20260501120000.1.ABC@mg.example.com>"
    assert parse(body(data)) == [
        Receipt(
            provider="mailgun",
            event=ReceiptEvent.BOUNCED,
            receipt_id="evt-failed",
            provider_message_id="20260501120000.1.ABC@mg.example.com",
            attempt_id="a-1",
            notification_id="n-1",
            occurred_at=NOW - timedelta(seconds=30.25),
            reason="bounce: 5.1.1 mailbox does not exist",
            code="550",
            contact="jane@example.com",
        )
    ]


@pytest.mark.parametrize("name", ["unsubscribed", "opened", "clicked", "stored", "new"])
def test_other_events_are_skipped(name: str) -> None:
    assert parse(body(event_data(name))) == []


def test_an_event_without_herald_variables_has_no_ids() -> None:
    data = event_data("delivered")
    del data["user-variables"], data["id"]
    [receipt] = parse(body(data))
    assert (receipt.attempt_id, receipt.notification_id) == (None, None)
    assert receipt.receipt_id  # named by its content


def test_verify_answers_the_token_to_remember() -> None:
    # The signature covers the timestamp and token only, so a token seen twice is a
    # replay, perhaps with a forged event: the caller keeps tokens and refuses a second use.
    payload = body(event_data("delivered"))
    signed = verifier.verify(payload, signing_key=KEY, now=NOW, tolerance=TOLERANCE)
    assert signed.token == orjson.loads(payload)["signature"]["token"]
    assert signed.signed_at == NOW
    [receipt] = verifier.read(signed)
    assert receipt.event is ReceiptEvent.DELIVERED
    assert verifier.verify(body({}), signing_key=KEY, now=NOW, tolerance=TOLERANCE).token != (
        signed.token
    )


def test_another_key_is_refused() -> None:
    with pytest.raises(BadSignature, match="does not match"):
        parse(body(event_data("delivered"), key=secrets.token_hex(16)))


@pytest.mark.parametrize("field", ["token", "timestamp", "signature"])
def test_a_tampered_signature_block_is_refused(field: str) -> None:
    payload = orjson.loads(body(event_data("delivered")))
    block = payload["signature"]
    block[field] = {
        "token": secrets.token_hex(25),
        "timestamp": str(int(SIGNED) - 1),
        "signature": mailgun_signature(KEY, SIGNED, secrets.token_hex(25)),
    }[field]
    with pytest.raises(BadSignature):
        parse(orjson.dumps(payload))


@pytest.mark.parametrize(
    "signature",
    [None, "a string", {}, {"timestamp": SIGNED, "token": "t"}, {"token": "t", "signature": "s"}],
)
def test_a_missing_signature_is_refused(signature: Any) -> None:
    payload = {"event-data": event_data("delivered")}
    if signature is not None:
        payload["signature"] = signature
    with pytest.raises(BadSignature):
        parse(orjson.dumps(payload))


@pytest.mark.parametrize("offset", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_a_stale_or_future_timestamp_is_refused(offset: timedelta) -> None:
    with pytest.raises(Stale):
        parse(body(event_data("delivered"), signed_at=str(int((NOW + offset).timestamp()))))


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        body(None),
        body(["delivered"]),
        body(event_data("delivered", **{"user-variables": ["a-1"]})),
        body(event_data("delivered", message="<id@mg>")),
        body(event_data("delivered", timestamp="soon")),
        body(event_data("delivered", recipient={"email": "jane@example.com"})),
        body(failed("fatal", "bounce")),
    ],
    # Named, not shown: each body carries a random token, and xdist's workers must
    # collect the same test ids.
    ids=[
        "not-json",
        "not-an-object",
        "no-event-data",
        "event-data-a-list",
        "user-variables-a-list",
        "message-not-an-object",
        "timestamp-not-a-number",
        "recipient-an-object",
        "failed-fatal-bounce",
    ],
)
def test_a_body_of_the_wrong_shape_is_malformed(payload: bytes) -> None:
    with pytest.raises(MalformedReceipt) as caught:
        parse(payload)
    assert isinstance(caught.value, ValueError)
