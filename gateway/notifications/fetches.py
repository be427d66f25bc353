"""What a run fetches once and shares between its items: users and renderings, so that
items asking for the same one cost one call (or one share of a batch call)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from mesh.errors import DomainError

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    """One fetch per key per call, shared by every item that needs it."""

    def __init__(self) -> None:
        self._futures: dict[K, asyncio.Future[V]] = {}

    def seed(self, key: K, value: V | DomainError) -> None:
        """Answers `key` with what a batch call already fetched (a value or its error)."""
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        if isinstance(value, DomainError):
            future.set_exception(value)
            future.exception()  # retrieved: an item that never asks logs no warning
        else:
            future.set_result(value)
        self._futures[key] = future

    def known(self, key: K) -> V | None:
        """The value already fetched for `key`, if any (None while pending or failed)."""
        future = self._futures.get(key)
        if future is None or not future.done() or future.cancelled() or future.exception():
            return None
        return future.result()

    async def get(self, key: K, fetch: Callable[[], Awaitable[V]]) -> V:
        future = self._futures.get(key)
        if future is None:
            future = asyncio.ensure_future(fetch())
            self._futures[key] = future
        return await asyncio.shield(future)


RenderKey = tuple[str, str, int, tuple[int, ...], bytes]


@dataclass(frozen=True)
class Rendering:
    """What one item asks templated to render; items with equal keys share the answer.

    `variables` are the send's variables in the encoding validation took them in
    (`payload.EncodedSend.variables`): equal bytes, equal variables."""

    code: str
    language: str
    variables: bytes
    channels: tuple[int, ...]
    version: int

    @property
    def key(self) -> RenderKey:
        return (self.code, self.language, self.version, self.channels, self.variables)
