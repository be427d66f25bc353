"""The payload hash behind idempotency is pinned: stored keys hold it, so the same send
must hash to the same bytes release after release."""

from __future__ import annotations

import uuid

from gateway.notifications.model import NewSend, Priority
from gateway.notifications.validation import Limits, validate_send

LIMITS = Limits(max_variables_bytes=32 * 1024, max_metadata_bytes=8 * 1024)


def test_the_payload_hash_of_a_full_send_is_pinned() -> None:
    send = NewSend(
        user_id=uuid.UUID("6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"),
        channel="sms",
        template_code="auth/welcome",
        variables={"name": "Bia", "n": 3, "nested": {"b": [1, "x", True, None], "a": 0.5}},
        request_id="req-1",
        priority=Priority.HIGH,
        message_type="alert",
        metadata={"z": "last", "a": {"k": False}},
        language="pt-BR",
        template_version=2,
    )
    command = validate_send(send, limits=LIMITS)
    assert command.payload_hash.hex() == (
        "919c22118deee14c8515a6c08e4abdfcbe7f8a035f128254f98e39dd8d9c4894"
    )
    assert command.encoded.metadata_json() == {"a": {"k": False}, "z": "last"}


def test_the_payload_hash_of_a_minimal_send_is_pinned() -> None:
    send = NewSend(user_id=uuid.UUID(int=1), channel="email", template_code="w")
    assert validate_send(send, limits=LIMITS).payload_hash.hex() == (
        "1898c231c7a0cc1ff57465ae2cafbf3b260bd7d961a35d545300da37ec13b77c"
    )
