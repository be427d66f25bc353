"""Coalescing: calls made at the same moment travel as one batch.

A busy process makes the same call for many requests at once, usually within one turn of
the event loop: a worker's Claim, GetUser and ReportStatus for a burst of deliveries, a
gateway's accept for concurrent Sends. A `Batcher` gathers the calls made before the
loop's next turn, up to `max_batch`, into one run of a batch function and answers each
caller with its own outcome (a value, or the exception of its item); a run that raises
fails each of its callers with that exception. No call waits for a timer: a lone call
runs at the next turn, and under load batches form by themselves. Calls that do not
arrive in the same turn (a gRPC server starts each call in a turn of its own) are
gathered by `max_running`: while that many runs are in flight, new calls wait for one of
them to end and then go together (group commit, as databases do with their log).

`Coalescer` is a Batcher for gRPC: each gRPC call costs far more CPU in the protocol
than in its work, so the calls travel as one batch call, and each caller hears what its
own call would have: its response, or an `AioRpcError` with the code and message its item
got. When the server has no such batch method (UNIMPLEMENTED: an older peer during a
rolling deploy), the coalescer falls back to the single call for good.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import grpc

from herald.v1 import common_pb2
from mesh.errors import rpc_error
from mesh.item_errors import status_code

T = TypeVar("T")
R = TypeVar("R")
Req = TypeVar("Req")
Resp = TypeVar("Resp")

Run = Callable[[list[T]], Awaitable[Sequence[R | BaseException]]]
Single = Callable[[Req, float | None], Awaitable[Resp]]
Batch = Callable[[list[Req], float | None], Awaitable[Sequence[Resp | common_pb2.ItemError]]]


class Batcher(Generic[T, R]):
    """Calls of one moment as one `run` of a batch function (see the module docstring).

    `run` gets the items in call order and returns one outcome per item; an outcome that
    is an exception is raised to that item's caller. A run is a task of its own. A lone
    call runs in a copy of its caller's context, as if called directly (its correlation
    id reaches the peers it calls). A batch of several runs in an empty context, so no
    caller's context variables leak into the others' work: whatever the batch logs or
    calls carries none of their correlation ids unless `run` binds them per item.
    """

    def __init__(self, run: Run[T, R], *, max_batch: int, max_running: int = 0) -> None:
        self._run = run
        self._max = max_batch
        self._max_running = max_running  # 0: no limit
        self._pending: list[tuple[T, asyncio.Future[R], contextvars.Context]] = []
        self._scheduled = False
        self._running: set[asyncio.Task[None]] = set()

    async def __call__(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future, contextvars.copy_context()))
        if len(self._pending) >= self._max and not self._busy():
            self._start()
        else:
            self._schedule()
        return await future

    def _busy(self) -> bool:
        return 0 < self._max_running <= len(self._running)

    def _schedule(self) -> None:
        if self._pending and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._turn)

    def _turn(self) -> None:
        """Starts what waits, as far as the run slots allow (the end of a run calls again)."""
        self._scheduled = False
        while self._pending and not self._busy():
            self._start()

    def _start(self) -> None:
        batch, self._pending = self._pending[: self._max], self._pending[self._max :]
        context = batch[0][2] if len(batch) == 1 else contextvars.Context()
        settle = self._settle([(item, future) for item, future, _ in batch])
        task = asyncio.create_task(settle, context=context)
        self._running.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._schedule()

    async def _settle(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            outcomes = await self._run([item for item, _ in batch])
        except BaseException as exc:  # every caller must hear of it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue  # the caller gave up
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)


def item_failure(error: common_pb2.ItemError) -> grpc.aio.AioRpcError:
    """What a caller would have seen had its item been a call of its own."""
    return rpc_error(status_code(error), error.message)


class Coalescer(Generic[Req, Resp]):
    """One gRPC method's calls, sent in batch calls (see the module docstring)."""

    def __init__(
        self,
        *,
        single: Single[Req, Resp],
        batch: Batch[Req, Resp],
        max_batch: int,
        max_running: int = 0,
    ):
        self._single = single
        self._batch = batch
        self._unsupported = False
        self._batcher: Batcher[tuple[Req, float | None], Resp] = Batcher(
            self._run, max_batch=max_batch, max_running=max_running
        )

    async def __call__(self, request: Req, *, timeout: float | None = None) -> Resp:
        if self._unsupported:
            return await self._single(request, timeout)
        return await self._batcher((request, timeout))

    async def _run(self, items: list[tuple[Req, float | None]]) -> Sequence[Resp | BaseException]:
        if len(items) == 1 or self._unsupported:
            return await self._alone(items)
        deadlines = [t for _, t in items if t is not None]
        try:
            outcomes = await self._batch([r for r, _ in items], min(deadlines, default=None))
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise
            self._unsupported = True
            return await self._alone(items)
        return [item_failure(o) if isinstance(o, common_pb2.ItemError) else o for o in outcomes]

    async def _alone(self, items: list[tuple[Req, float | None]]) -> list[Resp | BaseException]:
        """Each item as a call of its own."""

        async def one(request: Req, timeout: float | None) -> Resp | BaseException:
            try:
                return await self._single(request, timeout)
            except Exception as exc:  # handed to the caller
                return exc

        return list(await asyncio.gather(*(one(r, t) for r, t in items)))
