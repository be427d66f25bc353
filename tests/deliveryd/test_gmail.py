"""The `gmail` preset: SMTP to smtp.gmail.com:587 with STARTTLS and an app password, with
only the account and the app password to set. Sent through the real client against a
local SMTP server that, as Gmail does, wants STARTTLS (certificate verified) before AUTH."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from deliveryd.providers import email_providers
from deliveryd.providers.base import EmailMessage, Provider, TransientError
from deliveryd.providers.email.gmail import GmailProvider
from deliveryd.settings import DeliverydSettings
from tests.fakes.smtp import SmtpFake
from tests.fakes.tls import local_certificate

ACCOUNT = "herald.alerts@gmail.com"
APP_PASSWORD = "abcd efgh ijkl mnop"  # as Google shows it


def message() -> EmailMessage:
    return EmailMessage(
        to="jane@example.com",
        subject="Welcome, Jane",
        html="<p>Hello</p>",
        text="Hello",
        key="n-1:1:email",
        notification_id="n-1",
    )


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The three lines of docs/providers.md, and nothing else of the email chain's."""
    for name in ("HERALD_EMAIL_FROM", "HERALD_GMAIL_HOST", "HERALD_GMAIL_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HERALD_EMAIL_PROVIDERS", "gmail")
    monkeypatch.setenv("HERALD_GMAIL_ACCOUNT", ACCOUNT)
    monkeypatch.setenv("HERALD_GMAIL_APP_PASSWORD", APP_PASSWORD)
    return monkeypatch


@pytest.fixture
async def gmail(env: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[SmtpFake]:
    """A submission server with a certificate the client trusts, taking only the account
    and its app password; the preset pointed at it."""
    context, trusted = local_certificate(tmp_path)
    env.setenv("SSL_CERT_FILE", str(trusted))
    server = await SmtpFake(tls=context, credentials=(ACCOUNT, "abcdefghijklmnop")).start()
    env.setenv("HERALD_GMAIL_HOST", "127.0.0.1")
    env.setenv("HERALD_GMAIL_PORT", str(server.port))
    yield server
    await server.stop()


def chain() -> list[Provider[EmailMessage]]:
    return email_providers(DeliverydSettings())


def test_the_preset_is_gmail_s_submission_server(env: pytest.MonkeyPatch) -> None:
    settings = DeliverydSettings()
    assert (settings.gmail_host, settings.gmail_port) == ("smtp.gmail.com", 587)
    [provider] = email_providers(settings)
    assert isinstance(provider, GmailProvider)
    assert (provider.name, provider.timeout) == ("gmail", 10.0)


def test_the_preset_needs_the_app_password(env: pytest.MonkeyPatch) -> None:
    env.delenv("HERALD_GMAIL_APP_PASSWORD")
    with pytest.raises(ValidationError) as refused:
        DeliverydSettings()
    [error] = refused.value.errors()
    assert error["loc"] == ("HERALD_EMAIL_PROVIDERS",)
    assert "gmail needs HERALD_GMAIL_APP_PASSWORD" in error["msg"]


async def test_gmail_sends_over_starttls_as_the_account(gmail: SmtpFake) -> None:
    [provider] = chain()
    sent = await provider.send(message())
    [delivery] = gmail.deliveries
    assert delivery["tls"] is True
    assert delivery["login"] == ACCOUNT
    assert delivery["mail_from"] == ACCOUNT
    assert delivery["from"] == f"Herald <{ACCOUNT}>"
    assert delivery["to"] == ["jane@example.com"]
    assert sent.message_id == delivery["message_id"]


async def test_a_from_set_is_kept(gmail: SmtpFake, env: pytest.MonkeyPatch) -> None:
    env.setenv("HERALD_EMAIL_FROM", "Alerts <alerts@example.com>")
    [provider] = chain()
    await provider.send(message())
    [delivery] = gmail.deliveries
    assert delivery["from"] == "Alerts <alerts@example.com>"


async def test_a_wrong_app_password_is_transient(gmail: SmtpFake, env: pytest.MonkeyPatch) -> None:
    env.setenv("HERALD_GMAIL_APP_PASSWORD", "zzzz zzzz zzzz zzzz")
    [provider] = chain()
    with pytest.raises(TransientError, match="rejected the credentials"):
        await provider.send(message())
    assert not gmail.deliveries


async def test_no_password_goes_over_a_connection_without_tls(
    env: pytest.MonkeyPatch,
) -> None:
    server = await SmtpFake().start()  # no STARTTLS offered
    try:
        env.setenv("HERALD_GMAIL_HOST", "127.0.0.1")
        env.setenv("HERALD_GMAIL_PORT", str(server.port))
        [provider] = chain()
        with pytest.raises(TransientError, match="STARTTLS"):
            await provider.send(message())
        assert not server.deliveries
    finally:
        await server.stop()
