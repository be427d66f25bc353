"""Validation of a NewSend, and the payload hash behind idempotency.

Every field is bounded (rules: `mesh.rules`); a bad send names each field at fault
(prefixed in batches, "requests[3].template_code"). The hash and the size limits are
taken over the send's herald.v1 SendRequest encoding (`payload`, the adapter that keeps
that encoding), as they were before the domain took dataclasses: the hashes of keys stored
earlier still match, and a size limit means the same number of bytes to a REST and a gRPC
caller. That encoding is also what templated renders (`variables`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway.notifications.model import NewSend, Priority
from gateway.notifications.payload import EncodedSend, encode
from mesh import rules
from mesh.errors import FieldViolation, InvalidArgument


@dataclass(frozen=True)
class Limits:
    max_variables_bytes: int
    max_metadata_bytes: int
    # How far ahead send_at may be.
    schedule_horizon_seconds: int = 30 * 86400


@dataclass(frozen=True)
class SendCommand:
    """A valid send, its encoding and what idempotency needs from it."""

    send: NewSend
    encoded: EncodedSend

    @property
    def payload_hash(self) -> bytes:
        return self.encoded.payload_hash

    @property
    def user_key(self) -> str:
        """The user id as userd is asked for it."""
        return str(self.send.user_id)


def validate_send(
    send: NewSend, *, limits: Limits, prefix: str = "", now: datetime | None = None
) -> SendCommand:
    """The send as a command, or InvalidArgument naming every field at fault (`now`:
    what send_at must be after)."""
    problems, encoded = _check(send, limits, prefix, now)
    if problems:
        raise InvalidArgument(problems)
    return SendCommand(send, encoded)


def violations(send: NewSend, *, limits: Limits, prefix: str = "") -> list[FieldViolation]:
    """Every field of `send` at fault (none: valid)."""
    return _check(send, limits, prefix, None)[0]


def _check(
    send: NewSend, limits: Limits, prefix: str, now: datetime | None
) -> tuple[list[FieldViolation], EncodedSend]:
    problems: list[FieldViolation] = []

    def bad(field: str, description: str) -> None:
        problems.append(FieldViolation(prefix + field, description))

    if send.channel not in rules.CHANNEL_NAMES:
        bad("channel", "must be email, sms or push")
    if not send.template_code:
        bad("template_code", "required")
    elif not rules.matches(rules.TEMPLATE_CODE, send.template_code, rules.MAX_TEMPLATE_CODE):
        bad("template_code", rules.TEMPLATE_CODE_RULE)
    if send.request_id and not rules.matches(
        rules.REQUEST_ID, send.request_id, rules.MAX_REQUEST_ID
    ):
        bad("request_id", rules.REQUEST_ID_RULE)
    if send.priority not in tuple(Priority):
        bad("priority", "unknown priority")
    if send.message_type not in rules.MESSAGE_TYPE_NAMES:
        bad("message_type", "unknown message type")
    if send.language and not rules.matches(rules.LANGUAGE, send.language, rules.MAX_LANGUAGE):
        bad("language", rules.LANGUAGE_RULE)
    if send.template_version < 0:
        bad("template_version", "must be 0 (active) or a version number")
    if send.quiet_hours not in ("", "respect", "bypass"):
        bad("quiet_hours", "must be respect or bypass")
    if send.send_at is not None:
        now = now or datetime.now(UTC)
        horizon = timedelta(seconds=limits.schedule_horizon_seconds)
        if send.send_at.tzinfo is None:
            bad("send_at", "must have a time zone offset (RFC 3339)")
        elif send.send_at <= now:
            bad("send_at", "must be in the future")
        elif send.send_at > now + horizon:
            bad("send_at", f"at most {limits.schedule_horizon_seconds} seconds ahead")
    encoded = encode(send)
    if encoded.variables_size > limits.max_variables_bytes:
        bad("variables", f"larger than {limits.max_variables_bytes} bytes")
    if encoded.metadata_size > limits.max_metadata_bytes:
        bad("metadata", f"larger than {limits.max_metadata_bytes} bytes")
    elif problem := encoded.metadata_problem():
        bad("metadata", problem)
    return problems, encoded
