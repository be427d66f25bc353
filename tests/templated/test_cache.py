"""The render-path caches: LRU eviction; head pointers trusted only while listening."""

from __future__ import annotations

from templated.cache import LRU, HeadCache
from templated.models import Head


def head(code: str, active: int = 1) -> Head:
    return Head(code=code, default_language="en", active_version=active, archived=False)


def test_lru_forgets_the_least_recently_used() -> None:
    cache: LRU[str, int] = LRU("test", 2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    assert len(cache) == 2


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_heads_are_not_cached_while_the_listener_is_down() -> None:
    heads = HeadCache(ttl=60, maxsize=10)
    heads.put(head("a"), heads.generation())
    assert heads.get("a") is None
    heads.set_trusted(True)
    heads.put(head("a"), heads.generation())
    assert heads.get("a") == head("a")
    heads.set_trusted(False)  # notifications may be missed from now on
    assert heads.get("a") is None


def test_an_invalidation_drops_the_head_and_any_load_that_raced_with_it() -> None:
    heads = HeadCache(ttl=60, maxsize=10)
    heads.set_trusted(True)
    heads.put(head("a"), heads.generation())
    started = heads.generation()  # a render starts loading "b"…
    heads.invalidate("a")  # …while "a" is published
    heads.put(head("b"), started)  # the load may predate the change: not kept
    assert heads.get("a") is None
    assert heads.get("b") is None
    heads.put(head("b"), heads.generation())
    assert heads.get("b") == head("b")


def test_heads_expire_after_the_ttl() -> None:
    clock = Clock()
    heads = HeadCache(ttl=30, maxsize=10, clock=clock)
    heads.set_trusted(True)
    heads.put(head("a"), heads.generation())
    clock.now = 29.9
    assert heads.get("a") == head("a")
    clock.now = 30.0
    assert heads.get("a") is None
