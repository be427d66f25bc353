"""Mailgun through its HTTP API (`POST /v3/{domain}/messages`, form data, Basic auth)."""

from __future__ import annotations

import httpx

from deliveryd.providers.base import (
    EmailMessage,
    Provider,
    Sent,
    TransientError,
    classify_http,
)


def _about_sender(response: httpx.Response) -> bool:
    """Whether a 400 is about our 'from' address (configuration), not the recipient or content."""
    try:
        text = str(response.json().get("message", ""))
    except (ValueError, AttributeError):
        return False
    return text.lower().lstrip("'").startswith("from")


class MailgunProvider(Provider[EmailMessage]):
    """Answers 200 `{"id": "<…@domain>", "message": "Queued. Thank you."}` on success."""

    name = "mailgun"

    def __init__(
        self, *, api_key: str, domain: str, base_url: str, sender: str, timeout: float
    ) -> None:
        super().__init__(timeout=timeout)
        self._sender = sender
        self._path = f"/v3/{domain}/messages"
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), auth=("api", api_key), timeout=timeout
        )

    async def send(self, message: EmailMessage) -> Sent:
        form = {
            "from": self._sender,
            "to": message.to,
            "subject": message.subject,
            # User variables travel with the message and its events: duplicates are
            # identifiable by their key, receipts matched to their attempt.
            "v:herald_key": message.key,
            "v:herald_notification_id": message.notification_id,
        }
        if message.attempt_id:
            form["v:herald_attempt_id"] = message.attempt_id
        if message.text:
            form["text"] = message.text
        if message.html:
            form["html"] = message.html
        try:
            response = await self._client.post(self._path, data=form)
        except httpx.TimeoutException as exc:
            raise TransientError(f"mailgun timed out after {self.timeout}s") from exc
        except httpx.TransportError as exc:
            raise TransientError(f"mailgun unreachable: {exc!r}") from exc
        if response.status_code != 200:
            # 401 (bad key) and 404 "Domain not found" are the configuration's fault.
            raise classify_http(
                response.status_code,
                response.text,
                provider=self.name,
                account_error=_about_sender(response),
                headers=response.headers,
            )
        try:
            message_id = str(response.json().get("id", ""))
        except ValueError:
            # Accepted all the same: sending it again would be a duplicate.
            return Sent(
                message_id="",
                detail="mailgun answered 200 without JSON",
                awaits_receipt=bool(message.attempt_id),
            )
        # Its webhooks' events name the attempt through the v: variable.
        return Sent(message_id=message_id, awaits_receipt=bool(message.attempt_id))

    async def close(self) -> None:
        await self._client.aclose()
