"""FCM HTTP v1 and its OAuth token endpoint.

`POST /token` answers the service account's JWT-bearer grant; `POST
/v1/projects/{project}/messages:send` needs that token and answers
`{"name": "projects/…/messages/…"}`. Tokens in `unregistered` get FCM's 404 with the
`UNREGISTERED` error code, which the SDK turns into `UnregisteredError`.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.base import FakeServer

FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class FcmFake(FakeServer):
    name = "fcm"

    def __init__(self, project_id: str = "herald-test") -> None:
        super().__init__()
        self.project_id = project_id
        self.unregistered: set[str] = set()
        self.tokens_issued: list[str] = []

    def reset(self) -> None:
        super().reset()
        self.unregistered.clear()

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/token", self._token)
        app.router.add_post("/v1/projects/{project}/messages:send", self._send)

    def error_body(self, status: int) -> Any:
        error: dict[str, Any] = {
            "code": status,
            "message": f"fake failure {status}",
            "status": STATUS_NAMES.get(status, "UNKNOWN"),
        }
        if status == 429:  # the sending rate: the SDK's QuotaExceededError
            error["details"] = [{"@type": FCM_ERROR, "errorCode": "QUOTA_EXCEEDED"}]
        return {"error": error}

    def write_service_account(self, path: Path) -> Path:
        """A service-account file whose token URI is this fake (a fresh RSA key)."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        path.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": self.project_id,
                    "private_key_id": uuid.uuid4().hex,
                    "private_key": pem,
                    "client_email": f"herald@{self.project_id}.iam.gserviceaccount.com",
                    "client_id": "1",
                    "token_uri": f"{self.url}/token",
                }
            )
        )
        return path

    async def _token(self, request: web.Request) -> web.Response:
        form = self.recorded(request).form
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        token = "ya29.fake-" + uuid.uuid4().hex
        self.tokens_issued.append(token)
        return web.json_response(
            {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}
        )

    async def _send(self, request: web.Request) -> web.Response:
        recorded = self.recorded(request)
        bearer = recorded.headers.get("authorization", "").removeprefix("Bearer ")
        if bearer not in self.tokens_issued:
            return web.json_response(self.error_body(401), status=401)
        message = (recorded.json or {}).get("message", {})
        token = message.get("token", "")
        if token in self.unregistered:
            return web.json_response(
                {
                    "error": {
                        "code": 404,
                        "message": "Requested entity was not found.",
                        "status": "NOT_FOUND",
                        "details": [
                            {
                                "@type": FCM_ERROR,
                                "errorCode": "UNREGISTERED",
                            }
                        ],
                    }
                },
                status=404,
            )
        name = f"projects/{request.match_info['project']}/messages/{uuid.uuid4().int % 10**16}"
        notification = message.get("notification", {})
        self.deliveries.append(
            {
                "name": name,
                "token": token,
                "title": notification.get("title", ""),
                "body": notification.get("body", ""),
                "data": message.get("data", {}),
            }
        )
        return web.json_response({"name": name})
