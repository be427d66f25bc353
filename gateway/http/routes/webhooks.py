"""`/webhooks/{provider}`: providers' receipts (SendGrid Event Webhook, Mailgun webhooks,
Twilio status callbacks, and the sandbox's simulated ones). No API key: each provider's
own signature is the authentication, verified before anything is read
(`gateway.receipts.verify`).

A missing, wrong or stale signature is a 401 and changes nothing; a signed body that is
not in the provider's documented shape is a 400; everything signed is answered 200 once
kept, receipts for messages Herald does not know included (so the provider stops
retrying), with counts of what became of them. A provider whose receipts are not
configured answers 404.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from urllib.parse import parse_qsl

import structlog
from fastapi import APIRouter, Request
from pydantic import BaseModel, SecretStr

from gateway.http.errors import http_error
from gateway.receipts.service import SIGNATURE_FAILURES, Ingested, Receipts
from gateway.receipts.verify import BadSignature, MalformedReceipt, Stale
from gateway.receipts.verify import mailgun as mailgun_receipts
from gateway.receipts.verify import sandbox as sandbox_receipts
from gateway.receipts.verify import sendgrid as sendgrid_receipts
from gateway.receipts.verify import twilio as twilio_receipts
from gateway.settings import GatewaySettings

log = structlog.get_logger(__name__)
T = TypeVar("T")

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
TWILIO_SIGNATURE = "X-Twilio-Signature"


class ReceiptsTaken(BaseModel):
    """What became of the receipts of one callback."""

    applied: int
    waiting: int
    duplicate: int
    unknown: int


def _taken(result: Ingested) -> ReceiptsTaken:
    return ReceiptsTaken(
        applied=result.applied,
        waiting=result.waiting,
        duplicate=result.duplicate,
        unknown=result.unknown,
    )


def _secret(value: SecretStr | None, provider: str) -> str:
    if value is None:
        raise http_error(404, f"{provider} receipts are not configured here")
    return value.get_secret_value()


def _verified(provider: str, read: Callable[[], T]) -> T:
    """The receipts `read` verifies and parses; 401 for a signature that does not prove
    the provider sent it now, 400 for a signed body in no shape the provider documents."""
    try:
        return read()
    except BadSignature as exc:
        reason = "stale" if isinstance(exc, Stale) else "invalid"
        SIGNATURE_FAILURES.labels(provider, reason).inc()
        log.warning("receipt refused", provider=provider, reason=exc.reason)
        raise http_error(401, f"the {provider} signature is missing, wrong or stale") from None
    except MalformedReceipt as exc:
        raise http_error(400, f"not a {provider} receipt: {exc}") from None


_RESPONSES: dict[int | str, dict[str, str]] = {
    400: {"description": "Signed, but not in the provider's documented shape."},
    401: {"description": "Missing, wrong or stale signature: nothing changed."},
    404: {"description": "This provider's receipts are not configured."},
}


def router(receipts: Receipts, settings: GatewaySettings) -> APIRouter:
    api = APIRouter(prefix="/webhooks", tags=["receipts"])
    tolerance = timedelta(seconds=settings.receipt_tolerance_seconds)

    @api.post("/sendgrid", responses=_RESPONSES, summary="SendGrid Event Webhook (signed)")
    async def sendgrid(request: Request) -> ReceiptsTaken:
        key = _secret(settings.sendgrid_webhook_public_key, "SendGrid")
        body = await request.body()
        found = _verified(
            "sendgrid",
            lambda: sendgrid_receipts.parse(
                body,
                request.headers.get(SENDGRID_SIGNATURE, ""),
                request.headers.get(SENDGRID_TIMESTAMP, ""),
                public_key=key,
                now=datetime.now(UTC),
                tolerance=tolerance,
            ),
        )
        return _taken(await receipts.ingest(found))

    @api.post("/mailgun", responses=_RESPONSES, summary="Mailgun webhook (signed)")
    async def mailgun(request: Request) -> ReceiptsTaken:
        key = _secret(settings.mailgun_webhook_signing_key, "Mailgun")
        body = await request.body()
        # Mailgun signs its timestamp and token, not the event: a token used twice is a
        # signature lifted onto another body, refused like any bad signature.
        signed = _verified(
            "mailgun",
            lambda: mailgun_receipts.verify(
                body, signing_key=key, now=datetime.now(UTC), tolerance=tolerance
            ),
        )
        if not await receipts.first_use("mailgun", signed.token):
            SIGNATURE_FAILURES.labels("mailgun", "replayed").inc()
            raise http_error(401, "the Mailgun signature was used before")
        found = _verified("mailgun", lambda: mailgun_receipts.read(signed))
        return _taken(await receipts.ingest(found))

    @api.post("/twilio", responses=_RESPONSES, summary="Twilio status callback (signed)")
    async def twilio(request: Request) -> ReceiptsTaken:
        token = _secret(settings.twilio_webhook_auth_token, "Twilio")
        # Twilio posts application/x-www-form-urlencoded (read here, no multipart parser).
        try:
            form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        except UnicodeDecodeError:
            raise http_error(400, "not a Twilio status callback: not UTF-8") from None
        url = str(request.url)
        if settings.receipts_public_url:
            query = f"?{request.url.query}" if request.url.query else ""
            url = f"{settings.receipts_public_url.rstrip('/')}{request.url.path}{query}"
        found = _verified(
            "twilio",
            lambda: twilio_receipts.parse(
                url,
                form,
                request.headers.get(TWILIO_SIGNATURE, ""),
                auth_token=token,
                now=datetime.now(UTC),
            ),
        )
        return _taken(await receipts.ingest(found))

    @api.post("/sandbox", responses=_RESPONSES, summary="The sandbox provider's receipts (signed)")
    async def sandbox(request: Request) -> ReceiptsTaken:
        secret = _secret(settings.sandbox_receipts_secret, "Sandbox")
        body = await request.body()
        found = _verified(
            "sandbox",
            lambda: sandbox_receipts.parse(
                body,
                request.headers,
                secret=secret,
                now=datetime.now(UTC),
                tolerance=tolerance,
            ),
        )
        return _taken(await receipts.ingest(found))

    return api
