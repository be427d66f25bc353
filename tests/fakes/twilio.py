"""Twilio Messages: `POST /2010-04-01/Accounts/{sid}/Messages.json`, Basic `SID:TOKEN`."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeServer


class TwilioFake(FakeServer):
    name = "twilio"

    def __init__(self, account_sid: str = "AC" + "0" * 32, auth_token: str = "tw-token") -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        # Numbers answered with error 21211 ("not a valid phone number").
        self.invalid_numbers: set[str] = set()

    def reset(self) -> None:
        super().reset()
        self.invalid_numbers.clear()

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
