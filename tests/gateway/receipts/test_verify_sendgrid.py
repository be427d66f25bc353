"""SendGrid's signed Event Webhook, played with a key pair made here and signed as
SendGrid signs (ECDSA P-256 over timestamp + raw body), read by the SDK's verifier."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from gateway.receipts.model import Receipt, ReceiptEvent
from gateway.receipts.verify import BadSignature, MalformedReceipt, Stale
from gateway.receipts.verify import sendgrid as verifier
from tests.fakes.signing import SendGridSigner

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
TOLERANCE = timedelta(minutes=5)
SIGNED = str(int(NOW.timestamp()))
MESSAGE_ID = "Bp8i3qPGSsKfOO-XB29HWw"


@pytest.fixture(scope="module")
def signer() -> SendGridSigner:
    return SendGridSigner()


def event(name: str, **fields: Any) -> dict[str, Any]:
    """An event as SendGrid writes it, Herald's custom args at the top level."""
    return {
        "email": "jane@example.com",
        "timestamp": int(NOW.timestamp()) - 30,
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": name,
        "sg_event_id": f"evt-{name}-{fields.get('type', '')}",
        "sg_message_id": f"{MESSAGE_ID}.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",
        "herald_attempt_id": "a-1",
        "herald_notification_id": "n-1",
        "herald_key": "n-1:1:email",
        **fields,
    }


def parse(
    signer: SendGridSigner,
    body: bytes,
    *,
    signed_at: str = SIGNED,
    signature: str | None = None,
    timestamp: str | None = None,
    public_key: str | None = None,
) -> list[Receipt]:
    """`body` signed at `signed_at`, unless a header is given as received."""
    return verifier.parse(
        body,
        signer.sign(body, signed_at) if signature is None else signature,
        signed_at if timestamp is None else timestamp,
        public_key=signer.public_key if public_key is None else public_key,
        now=NOW,
        tolerance=TOLERANCE,
    )


def test_a_signed_batch_reads_as_receipts(signer: SendGridSigner) -> None:
    body = orjson.dumps(
        [
            event("processed"),
            event("deferred", response="451 4.3.0 try later", attempt="1"),
            event("delivered", response="250 2.0.0 OK"),
            event("bounce", type="bounce", status="5.1.1", reason="550 5.1.1 no such user"),
            event("bounce", type="blocked", status="5.7.1", reason="550 5.7.1 IP listed"),
            event("dropped", reason="Bounced Address", status="5.0.0"),
            event("spamreport"),
        ]
    )
    receipts = parse(signer, body)
    assert [r.event for r in receipts] == [
        ReceiptEvent.ACCEPTED,
        ReceiptEvent.DEFERRED,
        ReceiptEvent.DELIVERED,
        ReceiptEvent.BOUNCED,
        ReceiptEvent.DROPPED,
        ReceiptEvent.DROPPED,
        ReceiptEvent.COMPLAINED,
    ]
    assert receipts[3] == Receipt(
        provider="sendgrid",
        event=ReceiptEvent.BOUNCED,
        receipt_id="evt-bounce-bounce",
        provider_message_id=MESSAGE_ID,
        attempt_id="a-1",
        notification_id="n-1",
        occurred_at=NOW - timedelta(seconds=30),
        reason="550 5.1.1 no such user",
        code="5.1.1",
        contact="jane@example.com",
    )
    assert (receipts[1].reason, receipts[1].code) == ("451 4.3.0 try later", "")


def test_engagement_and_unknown_events_are_skipped(signer: SendGridSigner) -> None:
    names = ["open", "click", "unsubscribe", "group_unsubscribe", "group_resubscribe", "new"]
    body = orjson.dumps([event(name) for name in names] + [event("delivered")])
    [receipt] = parse(signer, body)
    assert receipt.event is ReceiptEvent.DELIVERED
    assert parse(signer, b"[]") == []


def test_an_event_without_ids_is_named_by_its_content(signer: SendGridSigner) -> None:
    bare = event("delivered")
    for name in ("sg_event_id", "sg_message_id", "herald_attempt_id", "herald_notification_id"):
        del bare[name]
    other = {**bare, "timestamp": bare["timestamp"] + 1}
    first, again, second = parse(signer, orjson.dumps([bare, bare, other]))
    assert first.receipt_id == again.receipt_id != second.receipt_id
    assert (first.provider_message_id, first.attempt_id, first.notification_id) == ("", None, None)


def test_a_tampered_body_is_refused(signer: SendGridSigner) -> None:
    body = orjson.dumps([event("delivered")])
    signature = signer.sign(body, SIGNED)
    tampered = body.replace(b"jane@", b"joan@")
    with pytest.raises(BadSignature, match="does not match"):
        parse(signer, tampered, signature=signature)


def test_another_key_is_refused(signer: SendGridSigner) -> None:
    with pytest.raises(BadSignature):
        parse(signer, b"[]", public_key=SendGridSigner().public_key)


def test_a_signature_of_another_timestamp_is_refused(signer: SendGridSigner) -> None:
    body = b"[]"
    with pytest.raises(BadSignature):
        parse(signer, body, signature=signer.sign(body, SIGNED), timestamp=str(int(SIGNED) - 1))


@pytest.mark.parametrize(("signature", "timestamp"), [("", SIGNED), (None, "")])
def test_a_missing_header_is_refused(
    signer: SendGridSigner, signature: str | None, timestamp: str
) -> None:
    with pytest.raises(BadSignature, match="missing X-Twilio-Email-Event-Webhook-"):
        parse(signer, b"[]", signature=signature, timestamp=timestamp)


@pytest.mark.parametrize("signature", ["not base64!!", "QQ=", "AAAA"])
def test_a_garbled_signature_is_refused(signer: SendGridSigner, signature: str) -> None:
    with pytest.raises(BadSignature):
        parse(signer, b"[]", signature=signature)


@pytest.mark.parametrize("offset", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_a_stale_or_future_timestamp_is_refused(signer: SendGridSigner, offset: timedelta) -> None:
    with pytest.raises(Stale):
        parse(signer, b"[]", signed_at=str(int((NOW + offset).timestamp())))


def test_a_timestamp_within_the_tolerance_is_taken(signer: SendGridSigner) -> None:
    for offset in (timedelta(minutes=-4), timedelta(minutes=4)):
        assert parse(signer, b"[]", signed_at=str(int((NOW + offset).timestamp()))) == []


def test_an_unreadable_timestamp_is_refused_but_not_stale(signer: SendGridSigner) -> None:
    with pytest.raises(BadSignature, match="unreadable") as refused:
        parse(signer, b"[]", signed_at="yesterday")
    assert not isinstance(refused.value, Stale)


def test_a_body_not_utf8_is_refused(signer: SendGridSigner) -> None:
    with pytest.raises(BadSignature, match="UTF-8"):
        parse(signer, b"[\xff]")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"event": "delivered"}',
        b"[1]",
        orjson.dumps([event("delivered", timestamp="soon")]),
        orjson.dumps([event("delivered", email={"address": "jane@example.com"})]),
        orjson.dumps([event("bounce", timestamp=None)]),
    ],
)
def test_a_signed_body_of_the_wrong_shape_is_malformed(signer: SendGridSigner, body: bytes) -> None:
    with pytest.raises(MalformedReceipt) as caught:
        parse(signer, body)
    assert isinstance(caught.value, ValueError)


def test_the_signature_is_checked_before_the_shape(signer: SendGridSigner) -> None:
    with pytest.raises(BadSignature):
        parse(signer, b"not json", signature=signer.sign(b"[]", SIGNED))


@pytest.mark.parametrize("key", ["", "QUJD", "not a key"])
def test_a_bad_verification_key_is_a_configuration_error(signer: SendGridSigner, key: str) -> None:
    with pytest.raises(ValueError) as caught:
        verifier.check_public_key(key)
    assert not isinstance(caught.value, MalformedReceipt)
    with pytest.raises(ValueError):
        parse(signer, b"[]", public_key=key)
    verifier.check_public_key(signer.public_key)
