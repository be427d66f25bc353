"""Providers: one small class per provider, built from settings into ordered chains."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from email.utils import formataddr, parseaddr
from typing import Any, TypeVar

from deliveryd.providers.base import EmailMessage, Provider, PushMessage, SmsMessage
from deliveryd.providers.sandbox import SandboxProvider
from deliveryd.providers.sandbox_receipts import SandboxReceipts
from deliveryd.settings import DeliverydSettings

M = TypeVar("M")

# The sandbox answers at once; a short timeout leaves the hop's lease budget alone.
SANDBOX_TIMEOUT = 1.0


def _secret(value: Any) -> str:
    return "" if value is None else str(value.get_secret_value())


def _sendgrid(s: DeliverydSettings) -> Provider[EmailMessage]:
    from deliveryd.providers.email.sendgrid import SendGridProvider  # noqa: PLC0415

    return SendGridProvider(
        api_key=_secret(s.sendgrid_api_key),
        base_url=s.sendgrid_base_url,
        sender=s.email_from,
        timeout=s.sendgrid_timeout,
    )


def _mailgun(s: DeliverydSettings) -> Provider[EmailMessage]:
    from deliveryd.providers.email.mailgun import MailgunProvider  # noqa: PLC0415

    return MailgunProvider(
        api_key=_secret(s.mailgun_api_key),
        domain=s.mailgun_domain or "",
        base_url=s.mailgun_base_url,
        sender=s.email_from,
        timeout=s.mailgun_timeout,
    )


def _smtp(s: DeliverydSettings) -> Provider[EmailMessage]:
    from deliveryd.providers.email.smtp import SmtpProvider  # noqa: PLC0415

    return SmtpProvider(
        host=s.smtp_host or "",
        port=s.smtp_port,
        username=s.smtp_username,
        password=_secret(s.smtp_password) or None,
        start_tls=s.smtp_starttls,
        sender=s.email_from,
        timeout=s.smtp_timeout,
    )


def _gmail(s: DeliverydSettings) -> Provider[EmailMessage]:
    from deliveryd.providers.email.gmail import GmailProvider  # noqa: PLC0415

    account = s.gmail_account or ""
    # Gmail sends as the account (a From that is not one of its verified aliases is
    # replaced), so unless HERALD_EMAIL_FROM is set the account is the From.
    chosen = "email_from" in s.model_fields_set
    sender = s.email_from if chosen else formataddr((parseaddr(s.email_from)[0], account))
    return GmailProvider(
        account=account,
        app_password=_secret(s.gmail_app_password),
        sender=sender,
        host=s.gmail_host,
        port=s.gmail_port,
        timeout=s.gmail_timeout,
    )


def _twilio(s: DeliverydSettings) -> Provider[SmsMessage]:
    from deliveryd.providers.sms.twilio import TwilioProvider  # noqa: PLC0415

    return TwilioProvider(
        account_sid=s.twilio_account_sid or "",
        auth_token=_secret(s.twilio_auth_token),
        sender=s.twilio_from or "",
        base_url=s.twilio_base_url,
        timeout=s.twilio_timeout,
        receipts_base_url=s.receipts_base_url,
    )


def _fcm(s: DeliverydSettings) -> Provider[PushMessage]:
    from deliveryd.providers.push.fcm import FcmProvider  # noqa: PLC0415

    return FcmProvider(
        credentials_file=s.fcm_credentials_file or "",
        project_id=s.fcm_project_id,
        base_url=s.fcm_base_url,
        timeout=s.fcm_timeout,
    )


def _onesignal(s: DeliverydSettings) -> Provider[PushMessage]:
    from deliveryd.providers.push.onesignal import OneSignalProvider  # noqa: PLC0415

    return OneSignalProvider(
        app_id=s.onesignal_app_id or "",
        api_key=_secret(s.onesignal_api_key),
        base_url=s.onesignal_base_url,
        timeout=s.onesignal_timeout,
    )


def _webpush(s: DeliverydSettings) -> Provider[PushMessage]:
    from deliveryd.providers.push.webpush import WebPushProvider  # noqa: PLC0415

    return WebPushProvider(
        vapid_private_key=_secret(s.webpush_vapid_private_key),
        subject=s.webpush_subject or "",
        ttl=s.webpush_ttl_seconds,
        timeout=s.webpush_timeout,
        outbound=s.outbound_rule(),
    )


def _receipts(s: DeliverydSettings) -> SandboxReceipts | None:
    """The sandbox's receipts, when configured (secret and the gateway's URL)."""
    if s.sandbox_receipts_secret is None or not s.receipts_base_url:
        return None
    return SandboxReceipts(
        url=f"{s.receipts_base_url}/webhooks/sandbox",
        secret=_secret(s.sandbox_receipts_secret),
        delay=s.sandbox_receipt_delay_seconds,
    )


# Only the SDKs a chain names are imported: firebase-admin alone takes a while to load.
EMAIL: dict[str, Callable[[DeliverydSettings], Provider[EmailMessage]]] = {
    "sendgrid": _sendgrid,
    "mailgun": _mailgun,
    "smtp": _smtp,
    "gmail": _gmail,
}
SMS: dict[str, Callable[[DeliverydSettings], Provider[SmsMessage]]] = {"twilio": _twilio}
PUSH: dict[str, Callable[[DeliverydSettings], Provider[PushMessage]]] = {
    "fcm": _fcm,
    "onesignal": _onesignal,
    "webpush": _webpush,
}


def _chain(
    names: Sequence[str],
    factories: Mapping[str, Callable[[DeliverydSettings], Provider[M]]],
    settings: DeliverydSettings,
) -> list[Provider[M]]:
    """The providers `names` (the sandbox included), in that order."""
    chain: list[Provider[M]] = []
    for name in names:
        if name == "sandbox":
            chain.append(SandboxProvider[M](timeout=SANDBOX_TIMEOUT, receipts=_receipts(settings)))
        else:
            chain.append(factories[name](settings))
    return chain


def email_providers(settings: DeliverydSettings) -> list[Provider[EmailMessage]]:
    """The email chain's providers, in the configured order."""
    return _chain(settings.email_providers, EMAIL, settings)


def sms_providers(settings: DeliverydSettings) -> list[Provider[SmsMessage]]:
    return _chain(settings.sms_providers, SMS, settings)


def push_providers(settings: DeliverydSettings) -> list[Provider[PushMessage]]:
    return _chain(settings.push_providers, PUSH, settings)
