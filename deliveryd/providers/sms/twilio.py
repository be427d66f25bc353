"""Twilio through its official SDK (synchronous, run in a worker thread)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

import requests
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from deliveryd.providers.base import (
    PermanentError,
    Provider,
    Sent,
    SmsMessage,
    TransientError,
    classify_http,
    throttled,
)

# Twilio error codes that say the number itself cannot receive this message.
# https://www.twilio.com/docs/api/errors: invalid 'To', unsubscribed, not SMS-capable,
# blocked, landline, region not permitted.
RECIPIENT_CODES = frozenset({21211, 21408, 21610, 21612, 21614, 30003, 30005, 30006})
# Codes about our account or its settings, whatever the HTTP status: 20xxx are the API's
# own (20003 authentication, 20005 account not active, 20008 test credentials, 20404 no
# such account); then an invalid, not SMS-capable or foreign 'From' number, and a trial
# account sending to an unverified number.
SENDER_CODES = frozenset({21212, 21606, 21608, 21659})
# Where the gateway takes Twilio's status callbacks, under its public base URL.
RECEIPTS_PATH = "/webhooks/twilio"


def _about_account(code: int | None) -> bool:
    return code is not None and (20000 <= code < 21000 or code in SENDER_CODES)


def status_callback(base_url: str, message: SmsMessage) -> str:
    """The callback URL Twilio reports the message's statuses to: the gateway's, with
    Herald's ids in the query (Twilio sends back nothing else of ours)."""
    ids = {"attempt": message.attempt_id, "notification": message.notification_id}
    query = urlencode({name: value for name, value in ids.items() if value})
    return f"{base_url.rstrip('/')}{RECEIPTS_PATH}?{query}"


class _HttpClient(TwilioHttpClient):  # type: ignore[misc]
    """The SDK's client, raising `Throttled` with the answer's Retry-After on a 429 (the
    SDK's own exception does not carry the headers)."""

    def request(self, *args: Any, **kwargs: Any) -> Response:
        response = super().request(*args, **kwargs)
        if response.status_code == 429:
            raise throttled("twilio", response.headers)
        return response


class TwilioProvider(Provider[SmsMessage]):
    """`POST /2010-04-01/Accounts/{sid}/Messages.json`; the message id is the `SM…` sid."""

    name = "twilio"

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        sender: str,
        base_url: str,
        timeout: float,
        receipts_base_url: str | None = None,
    ) -> None:
        super().__init__(timeout=timeout)
        # The gateway's public URL; without it, no status callbacks are asked for.
        self._receipts_base_url = receipts_base_url
        self._client = Client(account_sid, auth_token, http_client=_HttpClient(timeout=timeout))
        # Read on every request; region/edge are left unset because they rewrite the host.
        self._client.api.base_url = base_url.rstrip("/")
        self._sender = sender

    def _create(self, message: SmsMessage) -> Sent:
        receipts = (
            {"status_callback": status_callback(self._receipts_base_url, message)}
            if self._receipts_base_url
            else {}
        )
        try:
            created = self._client.messages.create(
                to=message.to, from_=self._sender, body=message.text, **receipts
            )
        except (TwilioRestException, TwilioServiceException) as exc:
            code = exc.code
            text = exc.msg if isinstance(exc, TwilioRestException) else exc.title
            if code in RECIPIENT_CODES:
                raise PermanentError(
                    f"twilio refused the recipient: {code} {text}", status=exc.status
                ) from None
            raise classify_http(
                int(exc.status),
                f"{code} {text}",
                provider=self.name,
                account_error=_about_account(code),
            ) from None
        except requests.Timeout as exc:
            raise TransientError(f"twilio timed out after {self.timeout}s") from exc
        except requests.RequestException as exc:
            raise TransientError(f"twilio unreachable: {exc.__class__.__name__}") from exc
        return Sent(
            message_id=str(created.sid or ""),
            detail=f"twilio status {created.status}",
            awaits_receipt=bool(receipts),
        )

    async def send(self, message: SmsMessage) -> Sent:
        return await asyncio.to_thread(self._create, message)
