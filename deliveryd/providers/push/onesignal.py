"""OneSignal through its REST API, with an idempotency key per hop and device.

OneSignal keeps idempotency keys for 30 days and answers a repeated key with the first
send's result instead of sending again, so a hop retried after a timeout or a worker
crash reaches the device once. Keys must be UUIDs: ours is a name-based UUID (v3) of
`notification:generation:channel:device`.
"""

from __future__ import annotations

from typing import Any

import httpx

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

GONE_ERRORS = ("invalid_player_ids", "invalid_subscription_ids")
# Words of a 400's errors that are about our app or key, not the message.
ACCOUNT_WORDS = ("app_id", "api key", "authorization")


def _gone(errors: Any) -> bool:
    if isinstance(errors, dict):
        return any(errors.get(key) for key in GONE_ERRORS)
    if isinstance(errors, list):
        return any("not subscribed" in str(e).lower() for e in errors)
    return False


def _about_account(response: httpx.Response) -> bool:
    """Whether an error answer is about our app or key (`app_id not found`), not the message."""
    try:
        errors = response.json().get("errors")
    except (ValueError, AttributeError):
        return False
    if not isinstance(errors, list):
        return False
    return any(word in str(e).lower() for e in errors for word in ACCOUNT_WORDS)


class OneSignalProvider(Provider[PushMessage]):
    """`POST /notifications?c=push`; 200 `{"id": …}`, with `errors` for unknown devices."""

    name = "onesignal"

    def __init__(self, *, app_id: str, api_key: str, base_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self._app_id = app_id
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Key {api_key}"},
            timeout=timeout,
        )

    def accepts(self, message: PushMessage) -> bool:
        return message.device.platform == Platform.ONESIGNAL and bool(message.device.token)

    async def send(self, message: PushMessage) -> Sent:
        payload = {
            "app_id": self._app_id,
            "target_channel": "push",
            "include_subscription_ids": [message.device.token],
            "headings": {"en": message.title},
            "contents": {"en": message.body},
            "data": {**message.data, "herald_notification_id": message.notification_id},
            "idempotency_key": message.device_key,
        }
        try:
            response = await self._client.post("/notifications", params={"c": "push"}, json=payload)
        except httpx.TimeoutException as exc:
            raise TransientError(f"onesignal timed out after {self.timeout}s") from exc
        except httpx.TransportError as exc:
            raise TransientError(f"onesignal unreachable: {exc!r}") from exc
        if response.status_code != 200:
            raise classify_http(
                response.status_code,
                response.text,
                provider=self.name,
                account_error=_about_account(response),
                headers=response.headers,
            )
        try:
            body = response.json()
        except ValueError:
            return Sent(message_id="", detail="onesignal answered 200 without JSON")
        errors = body.get("errors")
        if not body.get("id"):
            if _gone(errors):
                raise TargetGone(f"onesignal: subscription not subscribed: {errors}"[:300])
            raise PermanentError(f"onesignal sent nothing: {errors}"[:300])
        replayed = response.headers.get("Idempotent-Replayed", "").lower() == "true"
        return Sent(message_id=str(body["id"]), detail="idempotent replay" if replayed else "")

    async def close(self) -> None:
        await self._client.aclose()
