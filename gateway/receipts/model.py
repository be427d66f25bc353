"""A receipt, as every provider's webhook is read into: the one shape the lifecycle and
the trail know. Each provider's parser (`gateway.receipts.verify`) checks the signature
and maps the provider's event names onto `ReceiptEvent`."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class ReceiptEvent(enum.StrEnum):
    """What a provider says happened to a message it took."""

    # The provider handed it on or queued it (processed, queued, sent): informational.
    ACCEPTED = "accepted"
    # Delivered to the recipient's mailbox or handset.
    DELIVERED = "delivered"
    # Delayed, still trying (deferred, soft bounce, temporary failure): informational.
    DEFERRED = "deferred"
    # Permanent: the address or number does not take mail/messages (hard bounce).
    BOUNCED = "bounced"
    # Permanent: the provider refused to send it (dropped, blocked).
    DROPPED = "dropped"
    # Permanent: an SMS the carrier did not deliver (undelivered, failed).
    UNDELIVERED = "undelivered"
    # The recipient marked it as spam.
    COMPLAINED = "complained"
    # The recipient opted out of messages from this sender (Twilio 21610).
    OPTED_OUT = "opted_out"

    @property
    def permanent_failure(self) -> bool:
        """The message did not and will not arrive: the hop failed."""
        return self in _PERMANENT

    @property
    def suppresses(self) -> bool:
        """The contact point must not be sent to again on this channel."""
        return self in _SUPPRESSING


_PERMANENT = frozenset(
    {ReceiptEvent.BOUNCED, ReceiptEvent.DROPPED, ReceiptEvent.UNDELIVERED, ReceiptEvent.OPTED_OUT}
)
_SUPPRESSING = frozenset({ReceiptEvent.BOUNCED, ReceiptEvent.COMPLAINED, ReceiptEvent.OPTED_OUT})


@dataclass(frozen=True)
class Receipt:
    """One provider event about one message, signature already verified."""

    provider: str  # "sendgrid", "mailgun", "twilio", "sandbox"
    event: ReceiptEvent
    # The provider's event id, or what identifies this event uniquely: duplicates of one
    # receipt share it, and only the first has an effect.
    receipt_id: str
    # The message id the provider answered the send with (SendGrid's X-Message-Id,
    # Mailgun's id without <>, Twilio's MessageSid); "" when the event lacks it.
    provider_message_id: str
    # Herald's ids, as sent with the message (custom args, v: variables, callback URL).
    attempt_id: str | None
    notification_id: str | None
    occurred_at: datetime
    # The provider's own words and code (bounce reason, SMTP or Twilio error code).
    reason: str
    code: str
    # The email address or phone number the event is about ("" when not given).
    contact: str
