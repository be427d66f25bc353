"""A client's status callback receiver for the callbacks scenario: answers 204 to every
POST to /callbacks at once and counts them (`POST /reset` starts the count again).
`python -m bench.receiver --port P`; `GET /stats` answers
{"received": n, "events": distinct webhook-ids, "last": unix time the last new one came,
"lag_ms": percentiles from each event's `time` (the status change) to its arrival}.

A client's receiver runs on the client's machines; this one shares the bench's cores with
the stack, so what it spends is taken from Herald. It is therefore as cheap as a receiver
can be: httptools' parser (uvicorn's) on a bare asyncio protocol over uvloop, measured at
about 40 µs of CPU a callback where aiohttp's server took about 170 µs. The scenario still
watches it (`receiver`, counted apart from Herald)."""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import datetime
from typing import cast

import httptools
import orjson
import uvloop

from bench.measure import percentiles

NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


class Tally:
    """What the receiver got."""

    def __init__(self) -> None:
        self.received = 0
        self.seen: set[bytes] = set()
        self.last = 0.0
        self.lags_ms: list[float] = []

    def add(self, event_id: bytes, body: bytes) -> None:
        self.received += 1
        if not event_id or event_id in self.seen:
            return
        self.seen.add(event_id)
        self.last = time.time()
        occurred = datetime.fromisoformat(orjson.loads(body)["time"]).timestamp()
        self.lags_ms.append((self.last - occurred) * 1000)

    def reset(self) -> None:
        """Forgets what came (the next row counts from zero)."""
        self.received, self.last = 0, 0.0
        self.seen.clear()
        self.lags_ms.clear()

    def stats(self) -> bytes:
        return orjson.dumps(
            {
                "received": self.received,
                "events": len(self.seen),
                "last": self.last,
                "lag_ms": percentiles(self.lags_ms),
            }
        )


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection, kept alive while the client keeps it."""

    def __init__(self, tally: Tally) -> None:
        self._tally = tally
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._event_id = b""
        self._body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._transport.close()

    # httptools' callbacks, in the order a request is parsed.
    def on_message_begin(self) -> None:
        self._url, self._event_id, self._body = b"", b"", []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"webhook-id":
            self._event_id = value

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        assert self._transport is not None
        method = self._parser.get_method()
        if method == b"POST" and self._url == b"/callbacks":
            self._tally.add(self._event_id, b"".join(self._body))
            self._transport.write(NO_CONTENT)
        elif method == b"POST" and self._url == b"/reset":
            self._tally.reset()
            self._transport.write(NO_CONTENT)
        elif method == b"GET" and self._url == b"/stats":
            body = self._tally.stats()
            head = (
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            )
            self._transport.write(head % len(body) + body)
        else:
            self._transport.write(NOT_FOUND)
        if not self._parser.should_keep_alive():
            self._transport.close()


async def serve(port: int) -> None:
    tally = Tally()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(tally), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(serve(args.port))


if __name__ == "__main__":
    main()
