"""A client's status callback receiver for the callbacks scenario: answers 204 to every
POST at once and counts them. `python -m bench.receiver --port P`; `GET /stats` answers
{"received": n, "events": distinct webhook-ids}."""

from __future__ import annotations

import argparse

import orjson
from aiohttp import web


def build_app() -> web.Application:
    seen: set[str] = set()
    counts = {"received": 0}

    async def callback(request: web.Request) -> web.Response:
        await request.read()
        counts["received"] += 1
        seen.add(request.headers.get("webhook-id", ""))
        return web.Response(status=204)

    async def stats(_: web.Request) -> web.Response:
        body = {"received": counts["received"], "events": len(seen - {""})}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    app = web.Application()
    app.router.add_post("/callbacks", callback)
    app.router.add_get("/stats", stats)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(build_app(), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
