"""A SendGrid-compatible Mail Send endpoint that fails a share of requests, for the
failover scenario: `python -m bench.fake_sendgrid --port P --api-key K --fail-ratio 0.5`.

`POST /v3/mail/send` answers like SendGrid v3: 202 with `X-Message-Id` when it accepts,
401 on a wrong key, and 503 with SendGrid's error document for the failing share (a
transient failure, so deliveryd moves on to the next provider of the chain).
`GET /stats` answers what it has seen, as JSON.
"""

from __future__ import annotations

import argparse
import random
import uuid
from collections import Counter

import orjson
from aiohttp import web

MAIL_SEND = "/v3/mail/send"


def build_app(*, api_key: str, fail_ratio: float, seed: int) -> web.Application:
    """The fake's aiohttp application."""
    rng = random.Random(seed)
    counts: Counter[str] = Counter()

    async def send(request: web.Request) -> web.Response:
        await request.read()
        counts["requests"] += 1
        if request.headers.get("Authorization") != f"Bearer {api_key}":
            counts["unauthorized"] += 1
            return _errors("The provided authorization grant is invalid", 401)
        if rng.random() < fail_ratio:
            counts["failed"] += 1
            return _errors("fake SendGrid: service unavailable", 503)
        counts["accepted"] += 1
        return web.Response(status=202, headers={"X-Message-Id": uuid.uuid4().hex[:22]})

    async def stats(_: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(dict(counts)), content_type="application/json")

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post(MAIL_SEND, send)
    app.router.add_get("/stats", stats)
    return app


def _errors(message: str, status: int) -> web.Response:
    body = {"errors": [{"message": message, "field": None, "help": None}]}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fake_sendgrid")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--fail-ratio", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    app = build_app(api_key=args.api_key, fail_ratio=args.fail_ratio, seed=args.seed)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
