"""SendGrid v3 Mail Send: `POST /v3/mail/send`, Bearer auth, 202 with `X-Message-Id`."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeServer


class SendGridFake(FakeServer):
    name = "sendgrid"

    def __init__(self, api_key: str = "SG.test-key") -> None:
        super().__init__()
        self.api_key = api_key
        # Addresses the fake refuses as invalid recipients (400), like a malformed address.
        self.invalid_recipients: set[str] = set()

    def reset(self) -> None:
        super().reset()
        self.invalid_recipients.clear()

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v3/mail/send", self._send)

    def error_body(self, status: int) -> Any:
        return {"errors": [{"message": f"fake failure {status}", "field": None, "help": None}]}

    async def _send(self, request: web.Request) -> web.Response:
        recorded = self.recorded(request)
        if recorded.headers.get("authorization") != f"Bearer {self.api_key}":
            return web.json_response(
                {
                    "errors": [
                        {
                            "message": "The provided authorization grant is invalid, "
                            "expired, or revoked",
                            "field": None,
                            "help": None,
                        }
                    ]
                },
                status=401,
            )
        mail = recorded.json or {}
        to = mail["personalizations"][0]["to"][0]["email"]
        if "@" not in to or to in self.invalid_recipients:
            return web.json_response(
                {
                    "errors": [
                        {
                            "message": "Does not contain a valid address.",
                            "field": "personalizations.0.to.0.email",
                            "help": None,
                        }
                    ]
                },
                status=400,
            )
        contents = {c["type"]: c["value"] for c in mail.get("content", [])}
        message_id = uuid.uuid4().hex[:22]
        self.deliveries.append(
            {
                "message_id": message_id,
                "to": to,
                "from": mail["from"]["email"],
                "subject": mail.get("subject", ""),
                "text": contents.get("text/plain", ""),
                "html": contents.get("text/html", ""),
                "custom_args": mail.get("custom_args", {}),
            }
        )
        return web.Response(status=202, headers={"X-Message-Id": message_id})
