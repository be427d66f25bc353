"""Batcher and Coalescer: calls of one moment travel as one batch; each caller hears its
own answer."""

from __future__ import annotations

import asyncio
import contextvars

import grpc
import pytest

from herald.v1 import common_pb2
from mesh.coalesce import Batcher, Coalescer

NOT_FOUND = grpc.StatusCode.NOT_FOUND


class Peer:
    """Answers n with n * 10; a negative n is NOT_FOUND; records every call made."""

    def __init__(self, *, batch_error: grpc.StatusCode | None = None) -> None:
        self.singles: list[int] = []
        self.batches: list[list[int]] = []
        self.batch_error = batch_error

    async def single(self, request: int, timeout: float | None) -> int:
        self.singles.append(request)
        await asyncio.sleep(0)
        if request < 0:
            raise grpc.aio.AioRpcError(
                NOT_FOUND, grpc.aio.Metadata(), grpc.aio.Metadata(), details=f"no {request}"
            )
        return request * 10

    async def batch(
        self, requests: list[int], timeout: float | None
    ) -> list[int | common_pb2.ItemError]:
        self.batches.append(list(requests))
        await asyncio.sleep(0)
        if self.batch_error is not None:
            raise grpc.aio.AioRpcError(
                self.batch_error, grpc.aio.Metadata(), grpc.aio.Metadata(), details="batch failed"
            )
        return [
            r * 10 if r >= 0 else common_pb2.ItemError(code=NOT_FOUND.value[0], message=f"no {r}")
            for r in requests
        ]


CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="")


class Runs:
    """A batch function: n → n * 10, a negative n fails alone; records each run's items
    and the context variable its run saw."""

    def __init__(self, *, fail: Exception | None = None) -> None:
        self.runs: list[list[int]] = []
        self.seen: list[str] = []
        self.fail = fail

    async def __call__(self, items: list[int]) -> list[int | BaseException]:
        self.runs.append(list(items))
        self.seen.append(CALLER.get())
        await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        return [n * 10 if n >= 0 else LookupError(f"no {n}") for n in items]


async def test_batcher_runs_the_calls_of_one_moment_once_each_with_its_own_outcome() -> None:
    runs = Runs()
    call: Batcher[int, int] = Batcher(runs, max_batch=100)

    answers = await asyncio.gather(*(call(n) for n in (1, -2, 3)), return_exceptions=True)

    assert answers[0] == 10 and answers[2] == 30
    assert isinstance(answers[1], LookupError) and str(answers[1]) == "no -2"
    assert runs.runs == [[1, -2, 3]]
    assert await call(4) == 40 and runs.runs[-1] == [4]  # a lone call runs alone


async def test_batcher_runs_hold_at_most_max_batch() -> None:
    runs = Runs()
    call: Batcher[int, int] = Batcher(runs, max_batch=2)
    assert await asyncio.gather(*(call(n) for n in range(5))) == [0, 10, 20, 30, 40]
    assert sorted(map(len, runs.runs)) == [1, 2, 2]


async def test_calls_wait_for_a_free_run_slot_and_then_go_together() -> None:
    gate = asyncio.Event()
    runs: list[list[int]] = []

    async def run(items: list[int]) -> list[int]:
        runs.append(list(items))
        await gate.wait()
        return items

    call: Batcher[int, int] = Batcher(run, max_batch=100, max_running=1)
    first = asyncio.ensure_future(call(0))
    await asyncio.sleep(0.01)
    later = [asyncio.ensure_future(call(n)) for n in (1, 2, 3)]
    for _ in range(3):  # arriving in turns of their own, while the slot is taken
        await asyncio.sleep(0)
    later.append(asyncio.ensure_future(call(4)))
    await asyncio.sleep(0.01)
    assert runs == [[0]]
    gate.set()
    assert [await first, *[await f for f in later]] == [0, 1, 2, 3, 4]
    assert runs == [[0], [1, 2, 3, 4]]


async def test_a_failed_run_fails_each_caller_with_its_exception() -> None:
    runs = Runs(fail=ConnectionError("database down"))
    call: Batcher[int, int] = Batcher(runs, max_batch=100)
    answers = await asyncio.gather(call(1), call(2), return_exceptions=True)
    assert all(isinstance(a, ConnectionError) and str(a) == "database down" for a in answers)


async def test_a_batch_sees_no_callers_context_variables_a_lone_call_its_own() -> None:
    runs = Runs()
    call: Batcher[int, int] = Batcher(runs, max_batch=2)

    async def as_caller(name: str, n: int) -> int:
        CALLER.set(name)
        return await call(n)

    # The second caller fills the batch and flushes it from its own context.
    assert list(await asyncio.gather(as_caller("a", 1), as_caller("b", 2))) == [10, 20]
    assert await as_caller("c", 3) == 30  # alone, flushed at the loop's next turn
    assert runs.seen == ["", "c"]


def coalescer(peer: Peer, max_batch: int = 100) -> Coalescer[int, int]:
    return Coalescer(single=peer.single, batch=peer.batch, max_batch=max_batch)


async def test_calls_of_one_moment_are_one_batch_and_each_hears_its_own_answer() -> None:
    peer = Peer()
    call = coalescer(peer)

    answers = await asyncio.gather(
        *(call(n, timeout=1) for n in (1, 2, -3, 4)), return_exceptions=True
    )

    assert answers[:2] == [10, 20] and answers[3] == 40
    error = answers[2]
    assert isinstance(error, grpc.aio.AioRpcError)
    assert (error.code(), error.details()) == (NOT_FOUND, "no -3")
    assert peer.batches == [[1, 2, -3, 4]] and peer.singles == []


async def test_a_lone_call_is_a_single_call() -> None:
    peer = Peer()
    assert await coalescer(peer)(5) == 50
    assert peer.singles == [5] and peer.batches == []


async def test_batches_hold_at_most_max_batch() -> None:
    peer = Peer()
    call = coalescer(peer, max_batch=3)
    assert await asyncio.gather(*(call(n) for n in range(7))) == [n * 10 for n in range(7)]
    assert sorted(len(b) for b in peer.batches) == [3, 3] and peer.singles == [6]


async def test_a_failed_batch_fails_each_caller() -> None:
    peer = Peer(batch_error=grpc.StatusCode.UNAVAILABLE)
    call = coalescer(peer)
    answers = await asyncio.gather(call(1), call(2), return_exceptions=True)
    assert all(
        isinstance(a, grpc.aio.AioRpcError) and a.code() == grpc.StatusCode.UNAVAILABLE
        for a in answers
    )


async def test_a_peer_without_the_batch_method_gets_single_calls_from_then_on() -> None:
    peer = Peer(batch_error=grpc.StatusCode.UNIMPLEMENTED)
    call = coalescer(peer)
    assert list(await asyncio.gather(call(1), call(2))) == [10, 20]
    assert list(await asyncio.gather(call(3), call(4))) == [30, 40]
    assert peer.batches == [[1, 2]] and peer.singles == [1, 2, 3, 4]


async def test_a_caller_that_gives_up_leaves_the_others_their_answers() -> None:
    peer = Peer()
    call = coalescer(peer)
    impatient = asyncio.ensure_future(call(1))
    patient = asyncio.ensure_future(call(2))
    await asyncio.sleep(0)
    impatient.cancel()
    assert await patient == 20
    with pytest.raises(asyncio.CancelledError):
        await impatient
