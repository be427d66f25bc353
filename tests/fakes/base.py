"""What every fake provider server shares: an aiohttp app on 127.0.0.1, served in the
test's event loop, that records every request and can be told to misbehave.

    fake = await SendGridFake().start()
    fake.fail_next(2, status=503)          # the next two requests answer 503
    fake.delay_next(1, seconds=3)          # the next request answers after 3 s (a timeout)
    fake.fail_always(status=500)           # until fake.heal()
    fake.throttle_next(1, retry_after=3)   # the next request answers 429, Retry-After: 3
    await fake.refuse()                    # stop listening: connections are refused
    await fake.resume()                    # listen again on the same port

`requests` holds every request received (failed or not); `deliveries` only what the
fake accepted, i.e. what the provider would have delivered. A request is accepted when
the fake processed it, whether or not the client was still there to read the answer
(a real provider does not undo a send because its client hung up).

The email and SMS fakes can also play the provider's receipts: they post a signed webhook
about one of their deliveries (`send_event`, `status_callback`), see each fake.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

RECORDED = web.RequestKey("recorded", object)


@dataclass
class Recorded:
    """One request as the fake received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    time: float
    query: dict[str, str] = field(default_factory=dict)
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    status: int = 0


@dataclass
class Fault:
    """How to misbehave for one request: wait, then answer `status` (None: answer normally)."""

    status: int | None = 503
    delay: float = 0.0
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    """What Herald answered a webhook the fake posted."""

    status: int
    text: str


async def post_webhook(url: str, body: bytes, headers: dict[str, str]) -> Answer:
    """Posts `body` to `url` as a provider's webhook does, and answers what came back."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        return Answer(response.status, await response.text())


class FakeServer:
    """Base of every fake: subclasses add routes and answer like their provider."""

    name = "fake"
    # The field of a delivery that holds the provider's message id.
    id_field = "message_id"

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.deliveries: list[dict[str, Any]] = []
        self.port = 0
        self._faults: collections.deque[Fault] = collections.deque()
        self._always: Fault | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # --- lifecycle -------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self, port: int = 0) -> FakeServer:
        app = web.Application(middlewares=[self._middleware], client_max_size=8 * 1024 * 1024)
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await self._listen(port)
        return self

    async def _listen(self, port: int) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", port, reuse_address=True)
        await self._site.start()
        server = self._site._server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]

    async def refuse(self) -> None:
        """Stops listening and drops open connections: connections are refused until `resume()`."""
        if self._site is not None:
            await self._site.stop()
            self._site = None
        if self._runner is not None and self._runner.server is not None:
            for connection in self._runner.server.connections:
                connection.force_close()

    async def resume(self) -> None:
        if self._site is None:
            await self._listen(self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- programming -----------------------------------------------------------------

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 503,
        delay: float = 0.0,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """The next `count` requests answer `status` (after `delay`)."""
        for _ in range(count):
            self._faults.append(Fault(status, delay, body, headers or {}))

    def throttle_next(self, count: int = 1, *, retry_after: float | str | None = 1.0) -> None:
        """The next `count` requests answer 429 (too many requests) with the provider's
        error document and `Retry-After: retry_after` (seconds or an HTTP date; None: no
        such header), as a provider does when sent to faster than its rate."""
        headers = {}
        if retry_after is not None:
            value = retry_after if isinstance(retry_after, str) else f"{retry_after:g}"
            headers["Retry-After"] = value
        self.fail_next(count, status=429, headers=headers)

    def delay_next(self, count: int, seconds: float) -> None:
        """The next `count` requests are answered normally, but only after `seconds`."""
        for _ in range(count):
            self._faults.append(Fault(None, seconds))

    def fail_always(
        self, *, status: int | None = 503, delay: float = 0.0, body: Any = None
    ) -> None:
        """Every request answers `status` (None: normally) after `delay`, until `heal()`."""
        self._always = Fault(status, delay, body)

    def heal(self) -> None:
        self._faults.clear()
        self._always = None

    async def settle(self, timeout: float = 5.0) -> None:
        """Waits (up to `timeout`) for requests still being answered, such as one a test
        delayed past its client's timeout, so they land before the next test, not in it."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)

    def reset(self) -> None:
        """Heals and forgets everything received."""
        self.heal()
        self.requests.clear()
        self.deliveries.clear()

    def delivery(self, message: str | dict[str, Any]) -> dict[str, Any]:
        """One of `deliveries`, by its message id (or itself)."""
        if isinstance(message, dict):
            return message
        for delivery in self.deliveries:
            if delivery[self.id_field] == message:
                return delivery
        raise AssertionError(f"{self.name} delivered no message {message!r}")

    # --- answering -------------------------------------------------------------------

    def error_body(self, status: int) -> Any:
        """The provider's error document for `status`."""
        return {"error": f"fake {self.name} failure", "status": status}

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        recorded = Recorded(
            method=request.method,
            path=request.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            time=time.monotonic(),
            query=dict(request.query),
        )
        ctype = request.content_type
        if ctype == "application/json" and body:
            recorded.json = await request.json()
        elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            recorded.form = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append(recorded)
        request[RECORDED] = recorded
        self._in_flight += 1
        self._idle.clear()
        try:
            return await self._answer(request, handler, recorded)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def _answer(
        self, request: web.Request, handler: Any, recorded: Recorded
    ) -> web.StreamResponse:
        fault = self._faults.popleft() if self._faults else self._always
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.status is not None:
            recorded.status = fault.status
            payload = fault.body if fault.body is not None else self.error_body(fault.status)
            if isinstance(payload, str | bytes):
                return web.Response(status=fault.status, body=payload, headers=fault.headers)
            return web.json_response(payload, status=fault.status, headers=fault.headers)
        response = await handler(request)
        recorded.status = response.status
        return response  # type: ignore[no-any-return]

    @staticmethod
    def recorded(request: web.Request) -> Recorded:
        return request[RECORDED]  # type: ignore[return-value]
