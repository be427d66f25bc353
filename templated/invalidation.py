"""Keeps every process's head cache honest: LISTEN for the NOTIFY each change sends.

While the listening connection is up, cached heads are trusted and each notification
drops the head of its code. While it is down (or reconnecting), the cache is bypassed
and cleared, because notifications may have been missed: renders then read the head
from PostgreSQL until the listener is back.
"""

from __future__ import annotations

from mesh.listen import Listener
from templated.cache import HeadCache
from templated.store import NOTIFY_CHANNEL, parse_notify_payload


def invalidation_listener(*, url: str, heads: HeadCache, origin: str) -> Listener:
    """A listener dropping the head each other process's change names (this process's
    own writes invalidated its cache when they returned)."""

    def on_notify(payload: str) -> None:
        sender, code = parse_notify_payload(payload)
        if sender != origin:
            heads.invalidate(code)

    return Listener(
        url=url, channel=NOTIFY_CHANNEL, on_notify=on_notify, on_listening=heads.set_trusted
    )
