"""`SharedLimits` when Redis does not answer: `LimitsUnavailable` at once, and then no
question to Redis for the backoff window, so an outage adds no timeout to each send.

"Redis" here is a socket in this process that accepts connections and never answers (a
hung or partitioned server: the worst case, each question costs the whole timeout),
counting what reaches it; or a port nothing listens on (connections refused)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from mesh.ratelimit import LimitsUnavailable, SharedLimits
from tests.support.infra import free_port
from tests.support.waits import eventually

TIMEOUT = 0.2
QUOTA = "100/s burst 100"
# What `take` says when it did not ask Redis, within the backoff after a failure.
ASKED_BEFORE = "did not answer a moment ago"


class Unanswering:
    """A TCP server that takes every connection and request and answers nothing."""

    def __init__(self) -> None:
        self.connections = 0
        self.received = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._handlers: list[asyncio.Task[None]] = []

    async def start(self) -> Unanswering:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"redis://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/0"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        self._handlers.append(task)
        while chunk := await reader.read(65536):
            self.received += len(chunk)

    async def connected(self, times: int) -> None:
        """Waits until `times` connections have reached the server."""
        await eventually(lambda: self.connections >= times, what=f"{times} connections")

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def hung() -> AsyncIterator[Unanswering]:
    server = await Unanswering().start()
    yield server
    await server.stop()


async def test_after_a_timeout_redis_is_not_asked_again_for_the_backoff(
    hung: Unanswering,
) -> None:
    limits = SharedLimits(hung.url, prefix="tests-backoff", timeout=TIMEOUT, backoff=60)
    with pytest.raises(LimitsUnavailable) as caught:
        await limits.take("client:k", quota=QUOTA)
    assert ASKED_BEFORE not in str(caught.value)
    await eventually(lambda: hung.received > 0, what="the question to reach the server")
    asked = (hung.connections, hung.received)
    for _ in range(50):
        with pytest.raises(LimitsUnavailable, match=ASKED_BEFORE):
            await limits.take("client:k", quota=QUOTA)
    # A take that asked would have waited out its timeout, and the server, on this same
    # event loop, would have seen the question meanwhile.
    assert (hung.connections, hung.received) == asked


async def test_without_a_backoff_every_take_would_wait_on_redis(hung: Unanswering) -> None:
    """The contrast that shows what the backoff saves: with none, each take asks the
    hung server again (and waits its timeout)."""
    limits = SharedLimits(hung.url, prefix="tests-backoff", timeout=TIMEOUT, backoff=0)
    for asked in range(1, 4):
        with pytest.raises(LimitsUnavailable) as caught:
            await limits.take("client:k", quota=QUOTA)
        assert ASKED_BEFORE not in str(caught.value)
        await hung.connected(asked)


async def test_a_refused_connection_is_unavailable_and_backs_off_too() -> None:
    limits = SharedLimits(f"redis://127.0.0.1:{free_port()}/0", prefix="tests", timeout=TIMEOUT)
    with pytest.raises(LimitsUnavailable) as caught:
        await limits.take("client:k", quota=QUOTA)
    assert ASKED_BEFORE not in str(caught.value)
    with pytest.raises(LimitsUnavailable, match=ASKED_BEFORE):
        await limits.take("client:k", quota=QUOTA)
