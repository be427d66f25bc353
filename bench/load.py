"""Load generators, each run in its own process so the client does not share a core's
event loop with what it measures.

Open loop (a fixed offered rate): request i is due at start + i/rate and its latency is
measured from that due time, so a slow server cannot hide its queueing by slowing the
client down (no coordinated omission). Closed loop (saturation): `concurrency` callers
send back to back.
"""

from __future__ import annotations

import asyncio
import resource
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import aiohttp
import grpc
import orjson
from google.protobuf import struct_pb2

from herald.v1 import common_pb2, notification_pb2, notification_pb2_grpc

Kind = Literal["rest", "grpc", "batch", "refused"]
CHANNEL = {
    "email": common_pb2.CHANNEL_EMAIL,
    "sms": common_pb2.CHANNEL_SMS,
    "push": common_pb2.CHANNEL_PUSH,
}


@dataclass(frozen=True)
class LoadSpec:
    """What one load process sends, where, how fast and for how long."""

    kind: Kind
    rate: float  # offered requests per second; 0 means closed loop
    concurrency: int  # callers (closed loop) or the cap on requests in flight (open loop)
    duration: float
    rest_url: str
    api_key: str
    grpc_address: str
    service_token: str
    user_ids: tuple[str, ...]
    template_code: str
    channel: str = "email"
    batch_size: int = 100
    tag: str = ""
    start_at: float = 0.0  # wall-clock time to begin, so that several load processes agree
    max_requests: int = 0  # closed loop: stop after this many requests (0: no limit)
    # gRPC: client connections, calls spread round-robin (several clients, as a fleet of
    # callers is; one connection reaches one gateway process when several share the port).
    grpc_connections: int = 1
    # refused (`bench.flood`): what is sent, in turn (names of `bench.model.REFUSALS`).
    refusals: tuple[str, ...] = ()


@dataclass
class LoadResult:
    """What one load process saw."""

    requests: int = 0
    ok: int = 0
    accepted_items: int = 0
    late: int = 0  # open loop: due while `concurrency` requests were already in flight
    errors: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)  # refused: `<what> <status>`
    latencies_ms: list[float] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    cpu_seconds: float = 0.0  # of the load process itself
    peak_rss_mb: float = 0.0


Sender = Callable[[int], Awaitable[int]]  # request number → accepted items (raises on error)


class Client(Protocol):
    """Opens what a load needs and yields its send function (`async with client as send`)."""

    item_errors: Counter[str]  # refusals inside successful calls (SendBatch items)

    async def __aenter__(self) -> Sender: ...

    async def __aexit__(self, *exc: object) -> None: ...


def run_load(spec: LoadSpec) -> LoadResult:
    """Entry point of a load process."""
    import uvloop  # noqa: PLC0415 - the load process picks its own loop

    return uvloop.run(drive(spec, _sender(spec)))


async def drive(spec: LoadSpec, sender: Client) -> LoadResult:
    """Sends with `sender` as `spec` says (open or closed loop); what it saw."""
    result = LoadResult()
    async with sender as send:
        await asyncio.sleep(max(0.0, spec.start_at - time.time()))
        cpu = time.process_time()
        result.started = time.time()
        if spec.rate > 0:
            await _open_loop(spec, send, result)
        else:
            await _closed_loop(spec, send, result)
        result.finished = time.time()
        result.cpu_seconds = time.process_time() - cpu
    result.errors.update(sender.item_errors)
    result.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


async def _one(send: Sender, number: int, due: float, result: LoadResult) -> None:
    result.requests += 1
    try:
        items = await send(number)
    except Exception as exc:  # every failure is a data point, whatever its type
        result.errors[_error_name(exc)] += 1
        return
    result.ok += 1
    result.accepted_items += items
    result.latencies_ms.append((time.perf_counter() - due) * 1000)


async def _open_loop(spec: LoadSpec, send: Sender, result: LoadResult) -> None:
    interval = 1.0 / spec.rate
    start = time.perf_counter()
    in_flight: set[asyncio.Task[None]] = set()
    number = 0
    while True:
        due = start + number * interval
        if due - start >= spec.duration:
            break
        pause = due - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
        if len(in_flight) >= spec.concurrency:
            result.late += 1
        else:
            task = asyncio.create_task(_one(send, number, due, result))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        number += 1
    await asyncio.gather(*in_flight)


async def _closed_loop(spec: LoadSpec, send: Sender, result: LoadResult) -> None:
    stop = time.perf_counter() + spec.duration
    limit = spec.max_requests or 10**12
    counter = iter(range(limit))

    async def caller() -> None:
        for number in counter:
            if time.perf_counter() >= stop:
                return
            await _one(send, number, time.perf_counter(), result)

    await asyncio.gather(*(caller() for _ in range(spec.concurrency)))


def _error_name(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"grpc:{exc.code().name}"
    if isinstance(exc, HttpError):
        return f"http:{exc.status}"
    return exc.__class__.__name__


class HttpError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def request_prefix(tag: str) -> str:
    """What every request_id of a scenario tagged `tag` starts with (and no other's)."""
    return f"bench-{tag}-"


def merge(results: list[LoadResult]) -> LoadResult:
    """The results of several load processes of one scenario, as one."""
    merged = LoadResult()
    for part in results:
        merged.requests += part.requests
        merged.ok += part.ok
        merged.accepted_items += part.accepted_items
        merged.late += part.late
        merged.errors.update(part.errors)
        merged.answers.update(part.answers)
        merged.latencies_ms.extend(part.latencies_ms)
        merged.cpu_seconds += part.cpu_seconds
        merged.peak_rss_mb = max(merged.peak_rss_mb, part.peak_rss_mb)
    merged.started = min((r.started for r in results), default=0.0)
    merged.finished = max((r.finished for r in results), default=0.0)
    return merged


def warm() -> None:
    """Run once in each pool process ahead of the first scenario: pays for the imports."""


def _variables(number: int) -> dict[str, str]:
    return {"name": f"user {number}", "link": f"https://example.com/n/{number}"}


def rest_body(spec: LoadSpec, number: int, request_id: str) -> bytes:
    """The JSON body of REST Send number `number`."""
    return orjson.dumps(
        {
            "notification_type": spec.channel,
            "user_id": spec.user_ids[number % len(spec.user_ids)],
            "template_code": spec.template_code,
            "variables": _variables(number),
            "request_id": request_id,
            "priority": 2,
            "metadata": {"bench": spec.tag},
        }
    )


class _sender:  # noqa: N801 - used as `async with _sender(spec) as send`
    """Opens the client a load kind needs and yields its send function."""

    def __init__(self, spec: LoadSpec) -> None:
        self._spec = spec
        self._run = uuid.uuid4().hex[:8]
        self._session: aiohttp.ClientSession | None = None
        self._channels: list[grpc.aio.Channel] = []
        self._stubs: list[notification_pb2_grpc.NotificationServiceAsyncStub] = []
        # SendBatch items refused inside a successful call, by gRPC code.
        self.item_errors: Counter[str] = Counter()

    def _user(self, number: int) -> str:
        return self._spec.user_ids[number % len(self._spec.user_ids)]

    def _request_id(self, number: int) -> str:
        return f"{request_prefix(self._spec.tag)}{self._run}-{number}"

    async def __aenter__(self) -> Sender:
        spec = self._spec
        if spec.kind == "rest":
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=spec.concurrency),
                headers={
                    "Authorization": f"Bearer {spec.api_key}",
                    "Content-Type": "application/json",
                },
            )
            return self._send_rest
        # A local subchannel pool per channel: its own TCP connection, not a shared one.
        self._channels = [
            grpc.aio.insecure_channel(
                spec.grpc_address, options=[("grpc.use_local_subchannel_pool", 1)]
            )
            for _ in range(spec.grpc_connections)
        ]
        self._stubs = [notification_pb2_grpc.NotificationServiceStub(c) for c in self._channels]
        self._metadata = (("authorization", f"Bearer {spec.service_token}"),)
        return self._send_grpc if spec.kind == "grpc" else self._send_batch

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
        for channel in self._channels:
            await channel.close()

    def _stub(self, number: int) -> notification_pb2_grpc.NotificationServiceAsyncStub:
        return self._stubs[number % len(self._stubs)]

    async def _send_rest(self, number: int) -> int:
        assert self._session is not None
        body = rest_body(self._spec, number, self._request_id(number))
        async with self._session.post(
            f"{self._spec.rest_url}/api/v1/notifications/", data=body
        ) as response:
            await response.read()
            if response.status != 202:
                raise HttpError(response.status)
        return 1

    def _send_request(self, number: int) -> notification_pb2.SendRequest:
        variables = struct_pb2.Struct()
        variables.update(_variables(number))
        return notification_pb2.SendRequest(
            user_id=self._user(number),
            channel=CHANNEL[self._spec.channel],
            template_code=self._spec.template_code,
            variables=variables,
            request_id=self._request_id(number),
            priority=common_pb2.PRIORITY_NORMAL,
        )

    async def _send_grpc(self, number: int) -> int:
        stub = self._stub(number)
        await stub.Send(self._send_request(number), metadata=self._metadata, timeout=30)
        return 1

    async def _send_batch(self, number: int) -> int:
        size = self._spec.batch_size
        request = notification_pb2.SendBatchRequest(
            requests=[self._send_request(number * size + i) for i in range(size)]
        )
        answer = await self._stub(number).SendBatch(request, metadata=self._metadata, timeout=60)
        accepted = 0
        for item in answer.results:
            if item.HasField("accepted"):
                accepted += 1
            else:
                self.item_errors[f"item:{_code(item.error.code).name}"] += 1
        return accepted


def _code(number: int) -> grpc.StatusCode:
    """The `grpc.StatusCode` of a google.rpc.Code number."""
    for code in grpc.StatusCode:
        if code.value[0] == number:
            return code
    return grpc.StatusCode.UNKNOWN
