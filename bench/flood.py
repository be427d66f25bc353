"""The rejected scenario's flood: requests the REST edge must refuse before any costly work.

Each request is a `POST /api/v1/notifications/`, and the kinds of `LoadSpec.refusals` take
turns: no Authorization header, a malformed key, a well-formed key whose id is new each
time (so the gateway's cache of unknown ids never answers for it), and a live key with a
body that is not JSON. The first three must be refused with 401 before the body is read;
the last with 400 (or 422) once it fails to parse. Any other answer fails the run.
"""

from __future__ import annotations

import secrets
import uuid
from collections import Counter
from typing import Any

import aiohttp

from bench.load import LoadResult, LoadSpec, Sender, drive, request_prefix, rest_body
from bench.measure import percentiles

PATH = "/api/v1/notifications/"
# The answers each kind of `bench.model.REFUSALS` may get.
EXPECTED = {
    "no-key": frozenset({401}),
    "malformed-key": frozenset({401}),
    "unknown-key": frozenset({401}),
    "bad-json": frozenset({400, 422}),
}
BAD_JSON = b'{"notification_type": "email", "user_id": '


class NotRefused(Exception):
    """The flood got an answer that is not a refusal (or no answer)."""


def run_flood(spec: LoadSpec) -> LoadResult:
    """Entry point of the flood's load process."""
    import uvloop  # noqa: PLC0415 - the load process picks its own loop

    return uvloop.run(_flood(spec))


async def _flood(spec: LoadSpec) -> LoadResult:
    client = _Refusals(spec)
    result = await drive(spec, client)
    result.answers.update(client.answers)
    return result


class _Refusals:
    """`async with _Refusals(spec) as send`: sends request `number` of the kind its turn
    names and counts the answer by kind and status (`no-key 401`)."""

    def __init__(self, spec: LoadSpec) -> None:
        self._spec = spec
        self._run = uuid.uuid4().hex[:8]
        self._session: aiohttp.ClientSession | None = None
        self.item_errors: Counter[str] = Counter()
        self.answers: Counter[str] = Counter()

    async def __aenter__(self) -> Sender:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._spec.concurrency),
            headers={"Content-Type": "application/json"},
        )
        return self._send

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def _request(self, kind: str, number: int) -> tuple[dict[str, str], bytes]:
        body = rest_body(
            self._spec, number, f"{request_prefix(self._spec.tag)}{self._run}-{number}"
        )
        if kind == "no-key":
            return {}, body
        if kind == "malformed-key":
            return _bearer(f"hk_not-a-key-{number}"), body
        if kind == "unknown-key":
            return _bearer(f"hk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"), body
        return _bearer(self._spec.api_key), BAD_JSON

    async def _send(self, number: int) -> int:
        assert self._session is not None
        kinds = self._spec.refusals
        kind = kinds[number % len(kinds)]
        headers, body = self._request(kind, number)
        url = f"{self._spec.rest_url}{PATH}"
        async with self._session.post(url, data=body, headers=headers) as response:
            await response.read()
        self.answers[f"{kind} {response.status}"] += 1
        return 0


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def unexpected(answers: Counter[str] | dict[str, int]) -> dict[str, int]:
    """The answers no kind may get (a 2xx, a 5xx, a 401 to bad JSON...)."""
    out = {}
    for answer, count in answers.items():
        kind, _, status = answer.partition(" ")
        if not status.isdigit() or int(status) not in EXPECTED.get(kind, ()):
            out[answer] = count
    return out


def summary(spec: LoadSpec, result: LoadResult) -> dict[str, Any]:
    """The flood as a row's `notes["flood"]`: offered and achieved rates, the answers by
    kind and status, those no kind may get, and how fast the refusals came."""
    wall = max(result.finished - result.started, spec.duration, 1e-9)
    return {
        "offered_rate": spec.rate,
        "achieved_rate": round(result.ok / wall, 1),
        "duration_s": round(wall, 2),
        "requests": result.requests,
        "late": result.late,
        "kinds": list(spec.refusals),
        "answers": dict(sorted(result.answers.items())),
        "errors": dict(result.errors),
        "unexpected": unexpected(result.answers),
        "refusal_latency_ms": percentiles(result.latencies_ms),
    }
