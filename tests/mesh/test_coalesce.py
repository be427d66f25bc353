"""Coalescer: calls of one moment travel as one batch; each caller hears its own answer."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from herald.v1 import common_pb2
from mesh.coalesce import Coalescer

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
