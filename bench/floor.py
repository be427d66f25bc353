"""The floor: the minimal notification pipeline on the servers Herald sits on, no Herald in it.

Issue 7 names this loop as the ceiling of the infrastructure: HTTP POST → PostgreSQL
insert → RabbitMQ publish with a confirm → consume → PostgreSQL update. The `floor`
scenario drives it with the same load as `rest-sat` and measures it with the same
ledger, so Herald's figures can be read against what these servers and libraries allow
on the machine at hand (figures from two machines are not comparable; ratios to the
floor are closer to it).

One file, one process, one event loop (uvloop), the libraries Herald uses and nothing on
top: a raw ASGI app on uvicorn (httptools) answers `POST /api/v1/notifications/` by
inserting a row (autocommit, from a psycopg pool), publishing a persistent message with a
publisher confirm (aio-pika) and answering 202 with the id; a consumer on the same loop
(prefetch 64) marks each message's row delivered with one UPDATE and acks it. No user,
no template, no routing, no idempotency, no trail, no logs: what it does not do is what
Herald costs on top of it.

    python -m bench.floor --port 8100 --dsn postgresql://root@127.0.0.1/db \
        --amqp-url amqp://guest:guest@127.0.0.1/ --queue floor
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Sequence

import aio_pika
import orjson
import uvicorn
import uvloop
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage
from psycopg_pool import AsyncConnectionPool
from starlette.types import Receive, Scope, Send

PATH = "/api/v1/notifications/"
PREFETCH = 64
POOL_SIZE = 16

SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    id uuid PRIMARY KEY,
    request_id text NOT NULL,
    user_id text NOT NULL,
    body jsonb NOT NULL,
    status text NOT NULL DEFAULT 'pending',
    delivered_provider text,
    create_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now(),
    deliver_time timestamptz
)
"""
INSERT = "INSERT INTO notifications (id, request_id, user_id, body) VALUES (%s, %s, %s, %s)"
DELIVERED = (
    "UPDATE notifications SET status = 'delivered', delivered_provider = 'floor', "
    "deliver_time = now(), update_time = now() WHERE id = %s"
)


class Floor:
    """The HTTP app and the consumer, over one pool and one broker connection."""

    def __init__(self, pool: AsyncConnectionPool, exchange: AbstractExchange, queue: str) -> None:
        self._pool = pool
        self._exchange = exchange
        self._queue = queue

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] != "POST" or scope["path"] != PATH:
            await _answer(send, 404, b'{"error":"not found"}')
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        try:
            payload = orjson.loads(b"".join(chunks))
            request_id, user_id = str(payload["request_id"]), str(payload["user_id"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await _answer(send, 400, b'{"error":"request_id and user_id are required"}')
            return
        notification_id = uuid.uuid4()
        async with self._pool.connection() as conn:
            await conn.execute(
                INSERT, (notification_id, request_id, user_id, orjson.dumps(payload).decode())
            )
        await self._exchange.publish(
            aio_pika.Message(notification_id.bytes, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=self._queue,
        )
        await _answer(send, 202, b'{"id":"%s","status":"pending"}' % str(notification_id).encode())

    async def deliver(self, message: AbstractIncomingMessage) -> None:
        """Marks the message's notification delivered, then acks it."""
        async with self._pool.connection() as conn:
            await conn.execute(DELIVERED, (uuid.UUID(bytes=message.body),))
        await message.ack()


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def serve(port: int, dsn: str, amqp_url: str, queue_name: str) -> None:
    async with AsyncConnectionPool(
        dsn, min_size=POOL_SIZE, max_size=POOL_SIZE, kwargs={"autocommit": True}, open=False
    ) as pool:
        async with pool.connection() as conn:
            await conn.execute(SCHEMA)
        connection = await aio_pika.connect_robust(amqp_url)
        async with connection:
            publish = await connection.channel(publisher_confirms=True)
            consume = await connection.channel()
            await consume.set_qos(prefetch_count=PREFETCH)
            queue = await consume.declare_queue(queue_name, durable=True)
            floor = Floor(pool, publish.default_exchange, queue_name)
            await queue.consume(floor.deliver)
            config = uvicorn.Config(
                floor,
                host="127.0.0.1",
                port=port,
                loop="none",
                http="httptools",
                lifespan="off",
                access_log=False,
                log_level="warning",
            )
            await uvicorn.Server(config).serve()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True, help="a database of its own (table made here)")
    parser.add_argument("--amqp-url", required=True)
    parser.add_argument("--queue", required=True, help="a durable queue of its own")
    args = parser.parse_args(argv)
    uvloop.run(serve(args.port, args.dsn, args.amqp_url, args.queue))


if __name__ == "__main__":
    main()
