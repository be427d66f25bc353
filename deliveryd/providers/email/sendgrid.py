"""SendGrid through its official SDK (synchronous, so it runs in a worker thread)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
from email.utils import parseaddr
from typing import Any

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import CustomArg, Email, Mail

from deliveryd.providers.base import (
    EmailMessage,
    Provider,
    Sent,
    TransientError,
    classify_http,
)


def _about_sender(text: str) -> bool:
    """Whether an error answer names our 'from' field (configuration), not the recipient."""
    try:
        errors = json.loads(text).get("errors")
    except (ValueError, AttributeError):
        return False
    if not isinstance(errors, list):
        return False
    return any(isinstance(e, dict) and str(e.get("field") or "").startswith("from") for e in errors)


class SendGridProvider(Provider[EmailMessage]):
    """`POST /v3/mail/send`; the message id comes back in `X-Message-Id`."""

    name = "sendgrid"

    def __init__(self, *, api_key: str, base_url: str, sender: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self._client = SendGridAPIClient(api_key=api_key, host=base_url.rstrip("/"))
        # The SDK has no timeout of its own: without this a hung server holds a thread forever.
        self._client.client.timeout = timeout
        name, address = parseaddr(sender)
        self._sender = (address, name or None)

    def _mail(self, message: EmailMessage) -> Mail:
        mail = Mail(
            from_email=Email(*self._sender),
            to_emails=message.to,
            subject=message.subject,
            plain_text_content=message.text or None,
            html_content=message.html or None,
        )
        # Custom args travel with the message and come back in events: a duplicate sent
        # after a crash is identifiable by its key, a receipt matched to its attempt.
        mail.add_custom_arg(CustomArg("herald_key", message.key))
        mail.add_custom_arg(CustomArg("herald_notification_id", message.notification_id))
        if message.attempt_id:
            mail.add_custom_arg(CustomArg("herald_attempt_id", message.attempt_id))
        return mail

    def _post(self, body: dict[str, Any]) -> Sent:
        try:
            response = self._client.client.mail.send.post(request_body=body)
        except HTTPError as exc:
            text = (
                exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else str(exc.body)
            )
            raise classify_http(
                int(exc.status_code),
                text,
                provider=self.name,
                account_error=_about_sender(text),
                headers=exc.headers,
            ) from None
        except TimeoutError as exc:
            raise TransientError(f"sendgrid timed out after {self.timeout}s") from exc
        except urllib.error.URLError as exc:
            raise TransientError(f"sendgrid unreachable: {exc.reason}") from exc
        except OSError as exc:
            raise TransientError(f"sendgrid connection failed: {exc}") from exc
        message_id = response.headers.get("X-Message-Id", "") if response.headers else ""
        # The Event Webhook's receipts name the attempt through its custom argument.
        return Sent(message_id=str(message_id), awaits_receipt="custom_args" in body)

    async def send(self, message: EmailMessage) -> Sent:
        return await asyncio.to_thread(self._post, self._mail(message).get())
