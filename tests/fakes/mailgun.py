"""Mailgun Messages API: `POST /v3/{domain}/messages`, Basic `api:KEY`, form data."""

from __future__ import annotations

import base64
import uuid
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeServer


class MailgunFake(FakeServer):
    name = "mailgun"

    def __init__(self, api_key: str = "key-test", domain: str = "mg.example.com") -> None:
        super().__init__()
        self.api_key = api_key
        self.domain = domain
        self.invalid_recipients: set[str] = set()

    def reset(self) -> None:
        super().reset()
        self.invalid_recipients.clear()

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v3/{domain}/messages", self._send)

    def error_body(self, status: int) -> Any:
        return {"message": f"fake failure {status}"}

    async def _send(self, request: web.Request) -> web.Response:
        recorded = self.recorded(request)
        expected = "Basic " + base64.b64encode(f"api:{self.api_key}".encode()).decode()
        if recorded.headers.get("authorization") != expected:
            return web.Response(status=401, text="Forbidden")
        if request.match_info["domain"] != self.domain:
            return web.json_response({"message": "Domain not found"}, status=404)
        form = recorded.form
        to = form.get("to", "")
        if "@" not in to or to in self.invalid_recipients:
            return web.json_response(
                {"message": "to parameter is not a valid address. please check documentation"},
                status=400,
            )
        message_id = f"<{uuid.uuid4().hex}@{self.domain}>"
        self.deliveries.append(
            {
                "message_id": message_id,
                "to": to,
                "from": form.get("from", ""),
                "subject": form.get("subject", ""),
                "text": form.get("text", ""),
                "html": form.get("html", ""),
                "variables": {k[2:]: v for k, v in form.items() if k.startswith("v:")},
            }
        )
        return web.json_response({"id": message_id, "message": "Queued. Thank you."})
