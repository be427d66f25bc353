"""Mailgun Messages API: `POST /v3/{domain}/messages`, Basic `api:KEY`, form data.

Plays its webhooks too, about a message it took, signed with `signing_key`:

    await fakes.mailgun.send_event(url, message_id, "failed", severity="temporary")
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.base import Answer, FakeServer, post_webhook
from tests.fakes.signing import mailgun_signature_block

# How Mailgun words a failure by default: (code, message) per severity.
FAILURES = {
    "permanent": (550, "5.1.1 The email account that you tried to reach does not exist."),
    "temporary": (451, "4.3.0 Mailbox temporarily unavailable, try again later"),
}


class MailgunFake(FakeServer):
    name = "mailgun"

    def __init__(self, api_key: str = "key-test", domain: str = "mg.example.com") -> None:
        super().__init__()
        self.api_key = api_key
        self.domain = domain
        self.invalid_recipients: set[str] = set()
        # The account's HTTP webhook signing key, kept across resets.
        self.signing_key = secrets.token_hex(16)

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

    # --- webhooks --------------------------------------------------------------------

    def event_data(
        self,
        message: str | dict[str, Any],
        event: str,
        *,
        severity: str | None = None,
        reason: str | None = None,
        code: int | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        """The `event-data` of one event about a message this fake took: the send's `v:`
        variables as `user-variables`; a failure is permanent (a bounce) unless told."""
        delivery = self.delivery(message)
        data: dict[str, Any] = {
            "id": secrets.token_urlsafe(16),
            "event": event,
            "timestamp": time.time(),
            "recipient": delivery["to"],
            "message": {"headers": {"message-id": delivery["message_id"].strip("<>")}},
            "user-variables": dict(delivery["variables"]),
        }
        if event == "failed":
            severity = severity or "permanent"
            default_code, default_message = FAILURES.get(severity, FAILURES["permanent"])
            data["severity"] = severity
            data["reason"] = reason or ("bounce" if severity == "permanent" else "generic")
            data["delivery-status"] = {
                "code": code or default_code,
                "message": default_message,
                "description": description or "",
                "attempt-no": 1,
            }
        elif event == "delivered":
            data["delivery-status"] = {"code": 250, "message": "OK", "description": ""}
        return data

    async def post_event(
        self, url: str, event_data: dict[str, Any], *, timestamp: str | None = None
    ) -> Answer:
        """Posts one event to `url`, signed (at `timestamp`, default now) with a new token."""
        body = orjson.dumps(
            {
                "signature": mailgun_signature_block(self.signing_key, timestamp),
                "event-data": event_data,
            }
        )
        headers = {"Content-Type": "application/json", "User-Agent": "mailgun/treq-16.12.0"}
        return await post_webhook(url, body, headers)

    async def send_event(
        self,
        url: str,
        message: str | dict[str, Any],
        event: str,
        *,
        severity: str | None = None,
        reason: str | None = None,
        code: int | None = None,
        description: str | None = None,
    ) -> Answer:
        """Posts one signed event about `message` (its id, or the delivery) to `url`."""
        data = self.event_data(
            message, event, severity=severity, reason=reason, code=code, description=description
        )
        return await self.post_event(url, data)
