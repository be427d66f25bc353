"""Coalescing: unary calls made at the same moment travel as one batch call.

A worker with many jobs in flight makes the same call (Claim, ReportStatus, GetUser) for
each of them, usually within one turn of the event loop (a burst of deliveries). Each
gRPC call costs far more CPU in the protocol than in its work, so a `Coalescer` gathers
the calls made before the loop's next turn, up to `max_batch`, into one batch call, and
answers each caller as its own call would have: its response, or an `AioRpcError` with
the code and message its item got. A failed batch call fails each of its callers with
that error. When the server has no such batch method (UNIMPLEMENTED: an older peer
during a rolling deploy), the coalescer falls back to the single call for good.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import grpc

from herald.v1 import common_pb2
from mesh.errors import rpc_error
from mesh.item_errors import status_code

Req = TypeVar("Req")
Resp = TypeVar("Resp")

Single = Callable[[Req, float | None], Awaitable[Resp]]
Batch = Callable[[list[Req], float | None], Awaitable[Sequence[Resp | common_pb2.ItemError]]]


def item_failure(error: common_pb2.ItemError) -> grpc.aio.AioRpcError:
    """What a caller would have seen had its item been a call of its own."""
    return rpc_error(status_code(error), error.message)


class Coalescer(Generic[Req, Resp]):
    """One method's calls, sent in batches (see the module docstring)."""

    def __init__(self, *, single: Single[Req, Resp], batch: Batch[Req, Resp], max_batch: int):
        self._single = single
        self._batch = batch
        self._max = max_batch
        self._pending: list[tuple[Req, float | None, asyncio.Future[Resp]]] = []
        self._scheduled = False
        self._unsupported = False
        self._sending: set[asyncio.Task[None]] = set()

    async def __call__(self, request: Req, *, timeout: float | None = None) -> Resp:
        if self._unsupported:
            return await self._single(request, timeout)
        future: asyncio.Future[Resp] = asyncio.get_running_loop().create_future()
        self._pending.append((request, timeout, future))
        if len(self._pending) >= self._max:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        items, self._pending = self._pending, []
        if items:
            task = asyncio.create_task(self._send(items))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, items: list[tuple[Req, float | None, asyncio.Future[Resp]]]) -> None:
        if len(items) == 1 or self._unsupported:
            await asyncio.gather(*(self._alone(*item) for item in items))
            return
        deadlines = [t for _, t, _ in items if t is not None]
        try:
            outcomes = await self._batch([r for r, _, _ in items], min(deadlines, default=None))
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                _fail(items, exc)
                return
            self._unsupported = True
            await asyncio.gather(*(self._alone(*item) for item in items))
            return
        except Exception as exc:  # every caller must hear of it
            _fail(items, exc)
            return
        for (_, _, future), outcome in zip(items, outcomes, strict=True):
            if future.done():
                continue  # the caller gave up
            if isinstance(outcome, common_pb2.ItemError):
                future.set_exception(item_failure(outcome))
            else:
                future.set_result(outcome)

    async def _alone(
        self, request: Req, timeout: float | None, future: asyncio.Future[Resp]
    ) -> None:
        try:
            answer = await self._single(request, timeout)
        except Exception as exc:  # handed to the caller
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(answer)


def _fail(items: list[tuple[Req, float | None, asyncio.Future[Resp]]], exc: BaseException) -> None:
    for _, _, future in items:
        if not future.done():
            future.set_exception(exc)
