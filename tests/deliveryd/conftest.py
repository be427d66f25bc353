"""Fake providers for deliveryd's tests: started once per session, reset before each test."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fakes.fcm import FcmFake
from tests.fakes.mailgun import MailgunFake
from tests.fakes.onesignal import OneSignalFake
from tests.fakes.sendgrid import SendGridFake
from tests.fakes.smtp import SmtpFake
from tests.fakes.twilio import TwilioFake
from tests.fakes.webpush import WebPushFake


class Fakes:
    """Every fake provider of the session."""

    def __init__(self, fcm_credentials: Path, vapid_private_key: str) -> None:
        self.sendgrid = SendGridFake()
        self.mailgun = MailgunFake()
        self.smtp = SmtpFake()
        self.twilio = TwilioFake()
        self.fcm = FcmFake()
        self.onesignal = OneSignalFake()
        self.webpush = WebPushFake()
        self.fcm_credentials = fcm_credentials
        self.vapid_private_key = vapid_private_key

    @property
    def http(
        self,
    ) -> list[SendGridFake | MailgunFake | TwilioFake | FcmFake | OneSignalFake | WebPushFake]:
        return [self.sendgrid, self.mailgun, self.twilio, self.fcm, self.onesignal, self.webpush]

    async def start(self) -> None:
        for fake in self.http:
            await fake.start()
        await self.smtp.start()
        self.fcm.write_service_account(self.fcm_credentials)

    async def stop(self) -> None:
        for fake in self.http:
            await fake.stop()
        await self.smtp.stop()

    async def reset(self) -> None:
        for fake in self.http:
            await fake.settle()
            fake.reset()
            await fake.resume()
        self.smtp.reset()
        await self.smtp.resume()

    def env(self, **chains: str) -> dict[str, str]:
        """The environment pointing deliveryd's providers at the fakes."""
        env = {
            "HERALD_EMAIL_FROM": "Herald <no-reply@herald.test>",
            "HERALD_SENDGRID_API_KEY": self.sendgrid.api_key,
            "HERALD_SENDGRID_BASE_URL": self.sendgrid.url,
            "HERALD_SENDGRID_TIMEOUT": "1",
            "HERALD_MAILGUN_API_KEY": self.mailgun.api_key,
            "HERALD_MAILGUN_DOMAIN": self.mailgun.domain,
            "HERALD_MAILGUN_BASE_URL": self.mailgun.url,
            "HERALD_MAILGUN_TIMEOUT": "1",
            "HERALD_SMTP_HOST": "127.0.0.1",
            "HERALD_SMTP_PORT": str(self.smtp.port),
            "HERALD_SMTP_STARTTLS": "false",
            "HERALD_SMTP_TIMEOUT": "1",
            "HERALD_TWILIO_ACCOUNT_SID": self.twilio.account_sid,
            "HERALD_TWILIO_AUTH_TOKEN": self.twilio.auth_token,
            "HERALD_TWILIO_FROM": "+15550001111",
            "HERALD_TWILIO_BASE_URL": self.twilio.url,
            "HERALD_TWILIO_TIMEOUT": "1",
            "HERALD_FCM_CREDENTIALS_FILE": str(self.fcm_credentials),
            "HERALD_FCM_BASE_URL": self.fcm.url,
            "HERALD_FCM_TIMEOUT": "1",
            "HERALD_ONESIGNAL_APP_ID": self.onesignal.app_id,
            "HERALD_ONESIGNAL_API_KEY": self.onesignal.api_key,
            "HERALD_ONESIGNAL_BASE_URL": self.onesignal.url,
            "HERALD_ONESIGNAL_TIMEOUT": "1",
            "HERALD_WEBPUSH_VAPID_PRIVATE_KEY": self.vapid_private_key,
            "HERALD_WEBPUSH_SUBJECT": "mailto:ops@herald.test",
            "HERALD_WEBPUSH_TIMEOUT": "1",
        }
        for channel, names in chains.items():
            env[f"HERALD_{channel.upper()}_PROVIDERS"] = names
        return env


def vapid_key() -> str:
    """A VAPID private key as raw base64url, the form Herald's settings take."""
    number = ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value
    return base64.urlsafe_b64encode(number.to_bytes(32, "big")).decode().rstrip("=")


@pytest.fixture(scope="session")
async def session_fakes(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Fakes]:
    """The fakes, started once; module fixtures that start processes point at these."""
    folder = tmp_path_factory.mktemp("fakes")
    all_fakes = Fakes(folder / "fcm-service-account.json", vapid_key())
    await all_fakes.start()
    yield all_fakes
    await all_fakes.stop()


@pytest.fixture
async def fakes(session_fakes: Fakes) -> Fakes:
    """The fakes, healthy and empty for this test."""
    await session_fakes.reset()
    return session_fakes
