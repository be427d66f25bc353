"""In-process caches of the render path: compiled templates, versions, active pointers.

Versions are immutable, so compiled templates and version contents are cached until
evicted (LRU). The per-code head (active version, default language, archived) changes;
it is trusted only while the LISTEN/NOTIFY listener is connected (see invalidation.py),
invalidated by every notification, and expires after a TTL as a safety net against a
connection that died silently.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from prometheus_client import Counter

from templated.models import Head

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

CACHE_LOOKUPS = Counter(
    "herald_templated_cache_lookups_total",
    "Render-path cache lookups, by cache and result.",
    ["cache", "result"],
)


class LRU(Generic[K, V]):
    """A bounded mapping that forgets the least recently used entry first."""

    def __init__(self, name: str, maxsize: int) -> None:
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._maxsize = maxsize
        self._hit = CACHE_LOOKUPS.labels(cache=name, result="hit")
        self._miss = CACHE_LOOKUPS.labels(cache=name, result="miss")

    def get(self, key: K) -> V | None:
        value = self._entries.get(key)
        if value is None:
            self._miss.inc()
            return None
        self._entries.move_to_end(key)
        self._hit.inc()
        return value

    def put(self, key: K, value: V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self._maxsize:
            self._entries.popitem(last=False)

    def pop(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class HeadCache:
    """Active-version pointers per code, invalidated by NOTIFY, bounded by a TTL.

    A load that raced with an invalidation is not stored: `generation()` is read before
    the query and `put` drops the answer if any invalidation happened meanwhile.
    """

    def __init__(
        self, *, ttl: float, maxsize: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: LRU[str, tuple[Head, float]] = LRU("head", maxsize)
        self._ttl = ttl
        self._clock = clock
        self._generation = 0
        self._trusted = False

    def get(self, code: str) -> Head | None:
        if not self._trusted:
            return None
        entry = self._entries.get(code)
        if entry is None:
            return None
        head, expires = entry
        if self._clock() >= expires:
            self._entries.pop(code)
            return None
        return head

    def generation(self) -> int:
        return self._generation

    def put(self, head: Head, generation: int) -> None:
        if self._trusted and generation == self._generation:
            self._entries.put(head.code, (head, self._clock() + self._ttl))

    def invalidate(self, code: str) -> None:
        self._generation += 1
        self._entries.pop(code)

    def set_trusted(self, trusted: bool) -> None:
        """Called by the listener: whatever was cached may have missed notifications."""
        self._trusted = trusted
        self._generation += 1
        self._entries.clear()

    @property
    def trusted(self) -> bool:
        return self._trusted
