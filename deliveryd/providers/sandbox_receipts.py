"""The sandbox's receipts, sent: for a message to one of the reserved contact points
(`mesh.sandbox_receipts`), the sandbox posts the receipts a real provider would, signed,
to the gateway's `/webhooks/sandbox`, a moment after it took the message (as a real
provider's callback comes later than its answer).

Posting happens in the background and never holds up the hop. A refused connection, a
timeout or a 5xx is tried again with backoff for up to a minute; what still fails is
logged, and the notification stays `sent` until the gateway's receipt window ends. A
worker stopped before its receipts went out loses them the same way (the sandbox is a
simulation: a real provider keeps retrying its callbacks for hours).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import httpx
import orjson
import structlog
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

from deliveryd.providers.base import EmailMessage, SmsMessage
from mesh.sandbox_receipts import Simulated, simulated
from mesh.signing import signed_headers, signer

log = structlog.get_logger(__name__)

# How long one receipt's post is retried, and how long stopping waits for posts under way.
RETRY_SECONDS = 60.0
CLOSE_SECONDS = 5.0


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code >= 500
    return isinstance(exc, httpx.TransportError)


class SandboxReceipts:
    """Sends the sandbox's receipts to `url` (the gateway's /webhooks/sandbox)."""

    def __init__(self, *, url: str, secret: str, delay: float, timeout: float = 5.0) -> None:
        self._url = url
        signer(secret)  # a bad one fails here, at start
        self._secret = secret
        self._delay = delay
        self._client = httpx.AsyncClient(timeout=timeout)
        self._posts: set[asyncio.Task[None]] = set()

    def receipts_for(self, message: object) -> tuple[Simulated, ...]:
        """What the message's contact point gets; none outside a hop (no attempt id)."""
        if isinstance(message, EmailMessage) and message.attempt_id:
            return simulated("email", message.to)
        if isinstance(message, SmsMessage) and message.attempt_id:
            return simulated("sms", message.to)
        return ()

    def emit(
        self, message: EmailMessage | SmsMessage, message_id: str, receipts: tuple[Simulated, ...]
    ) -> None:
        """Posts `receipts` about the message after the delay, in the background."""
        events: list[dict[str, object]] = [
            {
                "id": str(uuid.uuid4()),
                "event": r.event,
                "message_id": message_id,
                "attempt_id": message.attempt_id,
                "notification_id": message.notification_id,
                "recipient": message.to,
                "code": r.code,
                "reason": r.reason,
            }
            for r in receipts
        ]
        task = asyncio.create_task(self._post_each(events))
        self._posts.add(task)
        task.add_done_callback(self._posts.discard)

    async def _post_each(self, events: list[dict[str, object]]) -> None:
        for event in events:  # one callback each, in order, as providers send them
            await asyncio.sleep(self._delay)
            event["timestamp"] = datetime.now(UTC).timestamp()
            try:
                async for attempt in AsyncRetrying(
                    retry=retry_if_exception(_retryable),
                    wait=wait_exponential_jitter(initial=0.5, max=10),
                    stop=stop_after_delay(RETRY_SECONDS),
                    reraise=True,
                ):
                    with attempt:
                        await self._post(orjson.dumps({"events": [event]}))
            except httpx.HTTPError as exc:
                log.error("sandbox receipt not delivered", event=event["event"], error=repr(exc))
                return

    async def _post(self, body: bytes) -> None:
        headers = signed_headers(
            body, [self._secret], webhook_id=f"msg_{uuid.uuid4().hex}", at=datetime.now(UTC)
        )
        headers["Content-Type"] = "application/json"
        response = await self._client.post(self._url, content=body, headers=headers)
        response.raise_for_status()

    async def close(self) -> None:
        """Waits a little for posts under way, then drops the rest."""
        if self._posts:
            _, pending = await asyncio.wait(set(self._posts), timeout=CLOSE_SECONDS)
            for task in pending:
                task.cancel()
        await self._client.aclose()
