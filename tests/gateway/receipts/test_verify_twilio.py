"""Twilio's status callbacks, played with an auth token made here and signed as Twilio
signs (HMAC-SHA1 of the URL as called and the sorted form fields)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import pytest
from twilio.request_validator import RequestValidator

from gateway.receipts.model import Receipt, ReceiptEvent
from gateway.receipts.verify import BadSignature, MalformedReceipt
from gateway.receipts.verify import twilio as verifier
from tests.fakes.signing import twilio_signature

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
TOKEN = secrets.token_hex(16)
SID = "SM" + "a" * 32
URL = "https://herald.example.com/webhooks/twilio?attempt=a-1&notification=n-1"


def form(status: str, error_code: str | None = None) -> dict[str, str]:
    """A status callback's fields, as Twilio posts them."""
    fields = {
        "AccountSid": "AC" + "0" * 32,
        "ApiVersion": "2010-04-01",
        "From": "+15550001111",
        "To": "+5511987654321",
        "MessageSid": SID,
        "SmsSid": SID,
        "MessageStatus": status,
        "SmsStatus": status,
    }
    if error_code is not None:
        fields["ErrorCode"] = error_code
    return fields


def parse(
    fields: dict[str, str], *, url: str = URL, signature: str | None = None, token: str = TOKEN
) -> list[Receipt]:
    signed = twilio_signature(token, url, fields) if signature is None else signature
    return verifier.parse(url, fields, signed, auth_token=TOKEN, now=NOW)


def test_our_signature_is_the_sdks() -> None:
    fields = form("delivered")
    assert twilio_signature(TOKEN, URL, fields) == RequestValidator(TOKEN).compute_signature(
        URL, fields
    )


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        ("queued", None, ReceiptEvent.ACCEPTED),
        ("sending", None, ReceiptEvent.ACCEPTED),
        ("sent", None, ReceiptEvent.ACCEPTED),
        ("accepted", None, ReceiptEvent.ACCEPTED),
        ("delivered", None, ReceiptEvent.DELIVERED),
        ("undelivered", "30003", ReceiptEvent.UNDELIVERED),
        ("failed", "30005", ReceiptEvent.UNDELIVERED),
        ("undelivered", "21610", ReceiptEvent.OPTED_OUT),
        ("failed", "21610", ReceiptEvent.OPTED_OUT),
    ],
)
def test_each_status_maps(status: str, code: str | None, expected: ReceiptEvent) -> None:
    [receipt] = parse(form(status, code))
    assert receipt.event is expected


def test_a_signed_callback_reads_as_a_receipt() -> None:
    assert parse(form("undelivered", "30003")) == [
        Receipt(
            provider="twilio",
            event=ReceiptEvent.UNDELIVERED,
            receipt_id=f"{SID}:undelivered",
            provider_message_id=SID,
            attempt_id="a-1",
            notification_id="n-1",
            occurred_at=NOW,
            reason="unreachable destination handset",
            code="30003",
            contact="+5511987654321",
        )
    ]


def test_a_callback_url_without_ids_has_none() -> None:
    [receipt] = parse(form("delivered"), url="https://herald.example.com/webhooks/twilio")
    assert (receipt.attempt_id, receipt.notification_id) == (None, None)


@pytest.mark.parametrize("status", ["read", "received", "receiving", "canceled", "scheduled"])
def test_other_statuses_are_skipped(status: str) -> None:
    assert parse(form(status)) == []


def test_a_tampered_form_is_refused() -> None:
    fields = form("delivered")
    signature = twilio_signature(TOKEN, URL, fields)
    with pytest.raises(BadSignature, match="does not match"):
        parse({**fields, "MessageStatus": "undelivered"}, signature=signature)


def test_ids_cannot_be_moved_to_another_url() -> None:
    fields = form("undelivered", "30003")
    signature = twilio_signature(TOKEN, URL, fields)
    with pytest.raises(BadSignature):
        parse(fields, url=URL.replace("attempt=a-1", "attempt=a-2"), signature=signature)


def test_another_token_is_refused() -> None:
    with pytest.raises(BadSignature):
        parse(form("delivered"), token=secrets.token_hex(16))


def test_a_missing_signature_is_refused() -> None:
    with pytest.raises(BadSignature, match="missing X-Twilio-Signature"):
        parse(form("delivered"), signature="")


@pytest.mark.parametrize("missing", ["MessageSid", "MessageStatus"])
def test_a_signed_callback_without_its_sid_or_status_is_malformed(missing: str) -> None:
    fields = form("delivered")
    del fields[missing]
    with pytest.raises(MalformedReceipt) as caught:
        parse(fields)
    assert isinstance(caught.value, ValueError)
