"""A Web Push service (RFC 8030): `POST /push/{id}` with an aes128gcm payload and VAPID.

`subscribe()` makes a browser-side subscription (P-256 key pair and auth secret), so the
fake can decrypt what it receives and record the clear payload. Subscriptions in `gone`
answer 410, as push services do for an expired subscription.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from dataclasses import dataclass
from typing import Any

import http_ece
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fakes.base import FakeServer


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Subscription:
    id: str
    endpoint: str
    p256dh: str
    auth: str
    private_key: ec.EllipticCurvePrivateKey


class WebPushFake(FakeServer):
    name = "webpush"

    def __init__(self) -> None:
        super().__init__()
        self.subscriptions: dict[str, Subscription] = {}
        self.gone: set[str] = set()

    def reset(self) -> None:
        super().reset()
        self.gone.clear()

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/push/{id}", self._push)

    def error_body(self, status: int) -> Any:
        return f"fake failure {status}"

    def subscribe(self) -> Subscription:
        """A new subscription on this push service, as a browser would get it."""
        key = ec.generate_private_key(ec.SECP256R1())
        public = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        sub_id = uuid.uuid4().hex
        subscription = Subscription(
            id=sub_id,
            endpoint=f"{self.url}/push/{sub_id}",
            p256dh=_b64(public),
            auth=_b64(os.urandom(16)),
            private_key=key,
        )
        self.subscriptions[sub_id] = subscription
        return subscription

    async def _push(self, request: web.Request) -> web.Response:
        recorded = self.recorded(request)
        sub_id = request.match_info["id"]
        subscription = self.subscriptions.get(sub_id)
        if subscription is None or sub_id in self.gone:
            return web.Response(status=410, text="push subscription has unsubscribed or expired")
        authorization = recorded.headers.get("authorization", "")
        if not authorization.startswith("vapid t="):
            return web.Response(status=401, text="missing VAPID authorization")
        token = authorization.split("t=", 1)[1].split(",", 1)[0]
        claims = json.loads(_unb64(token.split(".")[1]))
        if recorded.headers.get("content-encoding") != "aes128gcm":
            return web.Response(status=415, text="unsupported content encoding")
        clear = http_ece.decrypt(
            recorded.body,
            private_key=subscription.private_key,
            auth_secret=_unb64(subscription.auth),
            version="aes128gcm",
        )
        message_id = uuid.uuid4().hex
        self.deliveries.append(
            {
                "message_id": message_id,
                "subscription": sub_id,
                "payload": json.loads(clear),
                "ttl": recorded.headers.get("ttl"),
                "vapid_sub": claims.get("sub"),
            }
        )
        return web.Response(status=201, headers={"Location": f"{self.url}/message/{message_id}"})
