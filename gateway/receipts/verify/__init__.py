"""Each provider's webhook, verified and read into `Receipt`s: one pure module per provider
(`sendgrid`, `mailgun`, `twilio`), no I/O. A request is either refused (`BadSignature`,
`Stale`: it is not proven to come from the provider), unreadable though signed
(`MalformedReceipt`), or a list of receipts, possibly empty (events Herald ignores)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class BadSignature(Exception):
    """The request is not proven to come from the provider; `reason` says why, for the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Stale(BadSignature):
    """Signed, but at a time too far from now: a replay, or a clock that is off."""


class MalformedReceipt(ValueError):
    """The body is not in the shape the provider documents (signed or not yet checked)."""


def check_fresh(signed_at: str, *, now: datetime, tolerance: timedelta) -> datetime:
    """The instant of a signature's unix timestamp, refused when unreadable or further
    than `tolerance` from `now`, in either direction (a future one is no less a forgery)."""
    try:
        instant = datetime.fromtimestamp(float(signed_at), UTC)
    except (ValueError, OverflowError, OSError):
        raise BadSignature(f"unreadable signature timestamp {signed_at[:40]!r}") from None
    skew = now - instant
    if skew > tolerance:
        raise Stale(f"signed {skew.total_seconds():.0f}s ago (tolerance {tolerance})")
    if -skew > tolerance:
        raise Stale(f"signed {-skew.total_seconds():.0f}s in the future (tolerance {tolerance})")
    return instant
