"""OneSignal Create Notification: `POST /notifications?c=push`, `Authorization: Key …`.

Honours `idempotency_key` like the real API: a key already processed is answered with
the first result (and `Idempotent-Replayed: true`) and nothing is sent again; a key that
is not a UUID is refused. Subscriptions in `unsubscribed` are not sent to.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeServer


class OneSignalFake(FakeServer):
    name = "onesignal"

    def __init__(
        self, app_id: str = "11111111-2222-3333-4444-555555555555", api_key: str = "os-key"
    ) -> None:
        super().__init__()
        self.app_id = app_id
        self.api_key = api_key
        self.unsubscribed: set[str] = set()
        self._results: dict[str, dict[str, Any]] = {}
        self._in_progress: dict[str, asyncio.Event] = {}

    def reset(self) -> None:
        super().reset()
        self.unsubscribed.clear()
        self._results.clear()

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/notifications", self._create)

    def error_body(self, status: int) -> Any:
        return {
            "errors": ["API rate limit exceeded." if status == 429 else f"fake failure {status}"]
        }

    async def _create(self, request: web.Request) -> web.Response:
        recorded = self.recorded(request)
        if recorded.headers.get("authorization") != f"Key {self.api_key}":
            return web.json_response(
                {
                    "errors": [
                        "Access denied.  Please include an 'Authorization: ...' header"
                        " with a valid API key"
                    ]
                },
                status=403,
            )
        body = recorded.json or {}
        if body.get("app_id") != self.app_id:
            return web.json_response({"errors": ["app_id not found"]}, status=400)
        key = body.get("idempotency_key")
        if key is not None:
            try:
                uuid.UUID(str(key))
            except ValueError:
                return web.json_response(
                    {"errors": ["idempotency_key must be a valid UUID"]}, status=400
                )
            while key in self._in_progress:
                await self._in_progress[key].wait()
            if key in self._results:
                return web.json_response(
                    self._results[key], headers={"Idempotent-Replayed": "true"}
                )
            self._in_progress[key] = asyncio.Event()
        try:
            result = self._send(body)
            if key is not None:
                self._results[key] = result
            return web.json_response(result)
        finally:
            if key is not None:
                self._in_progress.pop(key).set()

    def _send(self, body: dict[str, Any]) -> dict[str, Any]:
        ids = list(body.get("include_subscription_ids", []))
        invalid = [i for i in ids if i in self.unsubscribed]
        valid = [i for i in ids if i not in self.unsubscribed]
        if not valid:
            return {"id": "", "errors": ["All included players are not subscribed"]}
        notification_id = str(uuid.uuid4())
        for subscription in valid:
            self.deliveries.append(
                {
                    "id": notification_id,
                    "subscription_id": subscription,
                    "title": body.get("headings", {}).get("en", ""),
                    "body": body.get("contents", {}).get("en", ""),
                    "data": body.get("data", {}),
                    "idempotency_key": body.get("idempotency_key"),
                }
            )
        result: dict[str, Any] = {"id": notification_id, "external_id": None}
        if invalid:
            result["errors"] = {"invalid_player_ids": invalid}
        return result
