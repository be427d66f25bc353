"""What one Send is and what it answers: the item with its caller, its outcome, and the
answer to a reused idempotency key (stored already, or used twice in one run)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from gateway.notifications.model import Accepted, Caller, Outcome
from gateway.notifications.validation import SendCommand
from gateway.store import notifications
from mesh.errors import Conflict, DomainError, FieldViolation, InvalidArgument

IdempotencyKey = tuple[str, str]  # (client_id, request_id)


@dataclass(frozen=True)
class Item:
    """One notification to accept, with who asked for it."""

    command: SendCommand
    caller: Caller
    prefix: str = ""  # of its field names in errors: "requests[3]." in a SendBatch

    @property
    def key(self) -> IdempotencyKey | None:
        request_id = self.command.send.request_id
        return (self.caller.client_id, request_id) if request_id else None


def prefixed(exc: DomainError, prefix: str) -> DomainError:
    """A peer's field violations, renamed for the batch item they belong to."""
    if prefix and isinstance(exc, InvalidArgument):
        return InvalidArgument(
            [FieldViolation(prefix + v.field, v.description) for v in exc.violations]
        )
    return exc


def replay(known: notifications.KnownKey, command: SendCommand) -> Outcome:
    """The answer to a reused idempotency key."""
    if known.payload_hash == command.payload_hash:
        return Accepted(known.id, known.status, duplicate=True)
    return conflict(command.send.request_id, known.id)


def follow(leader: Outcome | None, first: SendCommand, again: SendCommand) -> Outcome:
    """The answer to a key used twice in one batch: like the first use, or a conflict."""
    assert leader is not None
    if first.payload_hash != again.payload_hash:
        return conflict(
            again.send.request_id,
            leader.notification_id if isinstance(leader, Accepted) else None,
        )
    if isinstance(leader, Accepted):
        return Accepted(leader.notification_id, leader.status, duplicate=True)
    return leader


def conflict(request_id: str, notification_id: uuid.UUID | None) -> Conflict:
    earlier = f" by notification {notification_id}" if notification_id else ""
    return Conflict(
        f"request_id {request_id!r} was already used{earlier} with a different payload; "
        "use a new request_id for a new notification"
    )
