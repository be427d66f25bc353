"""SendGrid v3 Mail Send: `POST /v3/mail/send`, Bearer auth, 202 with `X-Message-Id`.

Plays the signed Event Webhook too, about a message it took (Herald's setting takes
`public_key`):

    await fakes.sendgrid.send_event(url, message_id, "bounce", reason="550 no such user")
    await fakes.sendgrid.post_events(url, [fake.event(m, "processed"), fake.event(m, "delivered")])
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.base import Answer, FakeServer, post_webhook
from tests.fakes.signing import SendGridSigner

# What SendGrid writes in each event by default, before the caller's fields.
EVENT_DEFAULTS: dict[str, dict[str, Any]] = {
    "delivered": {"response": "250 2.0.0 OK"},
    "deferred": {"response": "451 4.3.0 try again later", "attempt": "1"},
    "bounce": {
        "type": "bounce",
        "status": "5.1.1",
        "reason": "550 5.1.1 The email account that you tried to reach does not exist.",
    },
    "dropped": {"reason": "Bounced Address", "status": "5.0.0"},
}


class SendGridFake(FakeServer):
    name = "sendgrid"

    def __init__(self, api_key: str = "SG.test-key") -> None:
        super().__init__()
        self.api_key = api_key
        # Addresses the fake refuses as invalid recipients (400), like a malformed address.
        self.invalid_recipients: set[str] = set()
        # The Event Webhook's signing key pair, kept across resets (a process has the key).
        self.signer = SendGridSigner()

    @property
    def public_key(self) -> str:
        """The Event Webhook's verification key, as SendGrid's settings page shows it."""
        return self.signer.public_key

    def reset(self) -> None:
        super().reset()
        self.invalid_recipients.clear()

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v3/mail/send", self._send)

    def error_body(self, status: int) -> Any:
        message = "too many requests" if status == 429 else f"fake failure {status}"
        return {"errors": [{"message": message, "field": None, "help": None}]}

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

    # --- the Event Webhook -----------------------------------------------------------

    def event(self, message: str | dict[str, Any], event: str, **fields: Any) -> dict[str, Any]:
        """One event about a message this fake took, as SendGrid writes it: the send's
        custom args as top-level fields; `fields` add to or override the defaults."""
        delivery = self.delivery(message)
        return {
            "email": delivery["to"],
            "timestamp": int(time.time()),
            "smtp-id": f"<{delivery['message_id']}@ismtpd-fake>",
            "event": event,
            "sg_event_id": secrets.token_urlsafe(16),
            # The send's X-Message-Id, then the filter's suffix.
            "sg_message_id": f"{delivery['message_id']}.recvd-fake-1-{secrets.token_hex(4)}.0",
            **delivery["custom_args"],
            **EVENT_DEFAULTS.get(event, {}),
            **fields,
        }

    async def post_events(
        self, url: str, events: list[dict[str, Any]], *, timestamp: str | None = None
    ) -> Answer:
        """Posts a batch of events to `url`, signed (at `timestamp`, default now)."""
        body = orjson.dumps(events)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "SendGrid Event API",
            **self.signer.headers(body, timestamp),
        }
        return await post_webhook(url, body, headers)

    async def send_event(
        self, url: str, message: str | dict[str, Any], event: str, **fields: Any
    ) -> Answer:
        """Posts one signed event about `message` (its id, or the delivery) to `url`."""
        return await self.post_events(url, [self.event(message, event, **fields)])
