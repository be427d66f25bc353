"""Twilio Messages: `POST /2010-04-01/Accounts/{sid}/Messages.json`, Basic `SID:TOKEN`.

Plays its status callbacks too: to the `StatusCallback` URL the message was sent with,
signed with the auth token:

    await fakes.twilio.status_callback(message_sid, "undelivered", error_code="30003")
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from tests.fakes.base import Answer, FakeServer, post_webhook
from tests.fakes.signing import TWILIO_SIGNATURE, twilio_signature


class TwilioFake(FakeServer):
    name = "twilio"
    id_field = "sid"

    def __init__(self, account_sid: str = "AC" + "0" * 32, auth_token: str = "tw-token") -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        # Numbers answered with error 21211 ("not a valid phone number").
        self.invalid_numbers: set[str] = set()

    def reset(self) -> None:
        super().reset()
        self.invalid_numbers.clear()

    def sends(self) -> list[float]:
        """When each request to create a message arrived (monotonic seconds), in order."""
        return [r.time for r in self.requests if r.path.endswith("/Messages.json")]

    def busiest(self, window: float = 1.0) -> int:
        """The most message requests received within any `window` seconds: the request rate
        the fake saw, whichever workers sent them."""
        times = self.sends()
        most, first = 0, 0
        for last, at in enumerate(times):
            while at - times[first] >= window:
                first += 1
            most = max(most, last - first + 1)
        return most

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._create)

    def error_body(self, status: int) -> Any:
        return {
            "code": 20500 if status >= 500 else 20429 if status == 429 else 20001,
            "message": f"fake failure {status}",
            "more_info": "https://www.twilio.com/docs/errors",
            "status": status,
        }

    async def _create(self, request: web.Request) -> web.Response:
        recorded = self.recorded(request)
        auth = f"{self.account_sid}:{self.auth_token}".encode()
        sid = request.match_info["sid"]
        if recorded.headers.get("authorization") != "Basic " + base64.b64encode(auth).decode():
            return web.json_response(
                {"code": 20003, "message": "Authenticate", "more_info": "", "status": 401},
                status=401,
            )
        form = recorded.form
        to = form.get("To", "")
        if not to.startswith("+") or to in self.invalid_numbers:
            return web.json_response(
                {
                    "code": 21211,
                    "message": f"The 'To' number {to} is not a valid phone number.",
                    "more_info": "https://www.twilio.com/docs/errors/21211",
                    "status": 400,
                },
                status=400,
            )
        message_sid = "SM" + uuid.uuid4().hex
        now = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
        self.deliveries.append(
            {
                "sid": message_sid,
                "to": to,
                "from": form.get("From", ""),
                "body": form.get("Body", ""),
                "status_callback": form.get("StatusCallback", ""),
            }
        )
        return web.json_response(
            {
                "sid": message_sid,
                "account_sid": sid,
                "to": to,
                "from": form.get("From", ""),
                "body": form.get("Body", ""),
                "status": "queued",
                "num_segments": "1",
                "direction": "outbound-api",
                "date_created": now,
                "date_updated": now,
                "uri": f"/2010-04-01/Accounts/{sid}/Messages/{message_sid}.json",
            },
            status=201,
        )

    async def status_callback(
        self, message: str | dict[str, Any], status: str, *, error_code: str | None = None
    ) -> Answer:
        """Posts `status` of `message` (its sid, or the delivery) to its StatusCallback URL."""
        delivery = self.delivery(message)
        url = delivery["status_callback"]
        assert url, f"message {delivery['sid']} was sent without a StatusCallback"
        form = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "From": delivery["from"],
            "To": delivery["to"],
            "MessageSid": delivery["sid"],
            "SmsSid": delivery["sid"],
            "MessageStatus": status,
            "SmsStatus": status,
        }
        if error_code is not None:
            form["ErrorCode"] = error_code
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "TwilioProxy/1.1",
            TWILIO_SIGNATURE: twilio_signature(self.auth_token, url, form),
        }
        return await post_webhook(url, urlencode(form).encode(), headers)
