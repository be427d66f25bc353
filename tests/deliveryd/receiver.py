"""A client's receiver of Herald's status callbacks: it records every post and checks each
signature as a client would, with the `standardwebhooks` library and the endpoint's
secret (set once registered)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.fakes.base import FakeServer, Recorded


class CallbackReceiver(FakeServer):
    """Answers 200 to what verifies (`deliveries` holds those bodies), 401 otherwise;
    `fail_next`, `fail_always` and `refuse` make it misbehave."""

    name = "receiver"
    id_field = "id"

    def __init__(self) -> None:
        super().__init__()
        self.secret = ""

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/herald", self._callback)

    @property
    def endpoint(self) -> str:
        return f"{self.url}/herald"

    def verify(self, body: bytes, headers: dict[str, str]) -> Any:
        """The receiver's check: the parsed body, or WebhookVerificationError."""
        return Webhook(self.secret).verify(body, headers)

    async def _callback(self, request: web.Request) -> web.Response:
        recorded = self.recorded(request)
        try:
            event = self.verify(recorded.body, recorded.headers)
        except WebhookVerificationError:
            return web.Response(status=401, text="bad signature")
        self.deliveries.append(event)
        return web.Response(status=204)


def sign_as(secret: str, posted: Recorded) -> str:
    """The signature another secret would give the posted callback (a forgery's)."""
    at = datetime.fromtimestamp(int(posted.headers["webhook-timestamp"]), UTC)
    return Webhook(secret).sign(posted.headers["webhook-id"], at, posted.body)
