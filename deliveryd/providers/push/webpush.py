"""Web Push (RFC 8030, VAPID, aes128gcm) through pywebpush's async sender.

The endpoint comes from the user's subscription, so it goes only where `mesh.outbound`
allows: a refused one is the target's fault (`PermanentError`), never the provider's.
"""

from __future__ import annotations

import aiohttp
import orjson
from py_vapid import Vapid
from pywebpush import WebPushException, webpush_async

from deliveryd.providers.base import (
    PermanentError,
    Platform,
    Provider,
    PushMessage,
    Sent,
    TargetGone,
    TransientError,
    classify_http,
)
from mesh.outbound import OutboundRefused, OutboundRule
from mesh.public_http import public_session


class WebPushProvider(Provider[PushMessage]):
    """Posts the encrypted payload to the subscription's endpoint (the browser's push service)."""

    name = "webpush"

    def __init__(
        self,
        *,
        vapid_private_key: str,
        subject: str,
        ttl: int,
        timeout: float,
        outbound: OutboundRule,
    ) -> None:
        super().__init__(timeout=timeout)
        self._outbound = outbound
        self._vapid = Vapid.from_string(vapid_private_key)
        self._subject = subject
        self._ttl = ttl
        self._session: aiohttp.ClientSession | None = None

    def accepts(self, message: PushMessage) -> bool:
        device = message.device
        return device.platform == Platform.WEBPUSH and bool(device.endpoint and device.p256dh)

    def _session_now(self) -> aiohttp.ClientSession:
        # Created on first use: an aiohttp session belongs to the running loop.
        if self._session is None:
            self._session = public_session(self._outbound, timeout=self.timeout)
        return self._session

    async def send(self, message: PushMessage) -> Sent:
        device = message.device
        try:
            self._outbound.check_url(device.endpoint, names=False)
        except OutboundRefused as exc:
            raise PermanentError(f"webpush endpoint refused: {exc}") from None
        payload = orjson.dumps(
            {
                "title": message.title,
                "body": message.body,
                "data": dict(message.data),
                "notification_id": message.notification_id,
            }
        ).decode()
        try:
            response = await webpush_async(
                {
                    "endpoint": device.endpoint,
                    "keys": {"p256dh": device.p256dh, "auth": device.auth},
                },
                data=payload,
                vapid_private_key=self._vapid,
                # webpush fills in `aud` and `exp`: a fresh dict per call.
                vapid_claims={"sub": self._subject},
                ttl=self._ttl,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                aiohttp_session=self._session_now(),
            )
        except OutboundRefused as exc:
            # What the endpoint's name resolved to, or where it redirected.
            raise PermanentError(f"webpush endpoint refused: {exc}"[:300]) from None
        except WebPushException as exc:
            status = exc.response.status if exc.response is not None else 0
            if status in (404, 410):
                raise TargetGone(f"webpush subscription gone ({status})", status=status) from None
            if not status:
                raise TransientError(f"webpush failed: {exc.message}"[:300]) from None
            raise classify_http(
                status, str(exc.message), provider=self.name, headers=exc.response.headers
            ) from None
        except TimeoutError as exc:
            raise TransientError(f"webpush timed out after {self.timeout}s") from exc
        except aiohttp.ClientError as exc:
            raise TransientError(f"webpush unreachable: {exc!r}"[:300]) from exc
        assert not isinstance(response, str)
        return Sent(message_id=response.headers.get("Location", ""))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
