"""The sandbox's receipts: signed as Standard Webhooks specify (the `standardwebhooks`
library's own signer, with a secret made here), read into receipts."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from standardwebhooks import Webhook

from gateway.receipts.model import Receipt, ReceiptEvent
from gateway.receipts.verify import BadSignature, MalformedReceipt, Stale
from gateway.receipts.verify import sandbox as verifier
from mesh.sandbox_receipts import simulated
from mesh.signing import signer

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()
TOLERANCE = timedelta(minutes=5)
EVENT = {
    "id": "e-1",
    "event": "bounced",
    "message_id": "sandbox-1",
    "attempt_id": "a-1",
    "notification_id": "n-1",
    "recipient": "bounce@simulator.herald.example",
    "code": "550",
    "reason": "5.1.1 the email account does not exist",
    "timestamp": NOW.timestamp(),
}


def signed(body: bytes, *, secret: str = SECRET, at: datetime = NOW) -> dict[str, str]:
    return {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign("msg_1", at, body),
    }


def parse(body: bytes, headers: dict[str, str]) -> list[Receipt]:
    return verifier.parse(body, headers, secret=SECRET, now=NOW, tolerance=TOLERANCE)


def test_a_signed_callback_is_read_into_its_receipts() -> None:
    body = orjson.dumps({"events": [EVENT]})
    [receipt] = parse(body, signed(body))
    assert receipt.provider == "sandbox" and receipt.event is ReceiptEvent.BOUNCED
    assert (receipt.receipt_id, receipt.attempt_id, receipt.notification_id) == (
        "e-1",
        "a-1",
        "n-1",
    )
    assert (receipt.code, receipt.contact) == ("550", "bounce@simulator.herald.example")
    assert receipt.occurred_at == NOW


def test_one_of_several_signatures_matching_is_enough() -> None:
    body = orjson.dumps({"events": [EVENT]})
    headers = signed(body)
    old = signed(body, secret="whsec_" + base64.b64encode(os.urandom(24)).decode())
    headers["webhook-signature"] = f"{old['webhook-signature']} {headers['webhook-signature']}"
    assert len(parse(body, headers)) == 1


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: ({**h, "webhook-signature": ""}, b),
        lambda h, b: ({k: v for k, v in h.items() if k != "webhook-id"}, b),
        lambda h, b: ({**h, "webhook-id": "msg_2"}, b),
        lambda h, b: (h, b.replace(b"bounced", b"delivered")),
        lambda h, b: (signed(b, secret="whsec_" + base64.b64encode(b"another").decode()), b),
    ],
    ids=["no-signature", "no-id", "other-id", "other-body", "other-secret"],
)
def test_a_wrong_or_missing_signature_is_refused(tamper: object) -> None:
    body = orjson.dumps({"events": [EVENT]})
    headers, changed = tamper(signed(body), body)  # type: ignore[operator]
    with pytest.raises(BadSignature):
        parse(changed, headers)


def test_an_old_signature_is_stale() -> None:
    body = orjson.dumps({"events": [EVENT]})
    with pytest.raises(Stale):
        parse(body, signed(body, at=NOW - timedelta(minutes=6)))


@pytest.mark.parametrize(
    "payload",
    [
        [EVENT],
        {"events": "x"},
        {"events": [{**EVENT, "event": "exploded"}]},
        {"events": [{**EVENT, "id": ""}]},
        {"events": [{**EVENT, "timestamp": "soon"}]},
        {"events": [1]},
    ],
)
def test_a_signed_body_in_another_shape_is_malformed(payload: object) -> None:
    body = orjson.dumps(payload)
    with pytest.raises(MalformedReceipt):
        parse(body, signed(body))


def test_the_reserved_contact_points() -> None:
    assert [s.event for s in simulated("email", "Bounce@Simulator.Herald.Example")] == ["bounced"]
    assert [s.event for s in simulated("email", "complaint@simulator.herald.example")] == [
        "delivered",
        "complained",
    ]
    assert [s.event for s in simulated("sms", "+14155550192")] == ["opted_out"]
    assert simulated("email", "ada@example.com") == ()
    assert simulated("push", "+14155550190") == ()
    with pytest.raises(ValueError, match="whsec_"):
        signer("not-a-secret")
