"""deliveryd's settings: a provider the hop's lease leaves no time for, or an alert webhook
off the public internet, stops start-up."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from deliveryd.settings import DeliverydSettings
from mesh.settings import load_settings
from tests.support.processes import ROOT

SENDGRID = {"HERALD_EMAIL_PROVIDERS": "sendgrid,sandbox", "HERALD_SENDGRID_API_KEY": "SG.key"}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment with sendgrid first in the email chain and nothing else set."""
    for name in (
        "HERALD_DELIVERYD_LEASE_SECONDS",
        "HERALD_SENDGRID_TIMEOUT",
        "HERALD_SMS_PROVIDERS",
        "HERALD_PUSH_PROVIDERS",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in SENDGRID.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_a_timeout_longer_than_the_lease_allows_is_refused(env: pytest.MonkeyPatch) -> None:
    env.setenv("HERALD_DELIVERYD_LEASE_SECONDS", "10")
    env.setenv("HERALD_SENDGRID_TIMEOUT", "8")  # 8 s + margin > 10 s x 0.8
    with pytest.raises(ValidationError) as refused:
        DeliverydSettings()
    [error] = refused.value.errors()
    assert error["loc"] == ("HERALD_EMAIL_PROVIDERS",)
    assert "HERALD_SENDGRID_TIMEOUT" in error["msg"]
    assert "HERALD_DELIVERYD_LEASE_SECONDS" in error["msg"]


def test_the_refusal_is_one_line_naming_the_variables(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("HERALD_SENDGRID_TIMEOUT", "50")  # the default lease: 60 s x 0.8 = 48 s
    with pytest.raises(SystemExit) as exited:
        load_settings(DeliverydSettings)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("herald: bad configuration: HERALD_EMAIL_PROVIDERS: sendgrid's ")
    assert "HERALD_SENDGRID_TIMEOUT (50 s" in err
    assert "HERALD_DELIVERYD_LEASE_SECONDS=60" in err


def test_a_timeout_that_fits_is_accepted(env: pytest.MonkeyPatch) -> None:
    env.setenv("HERALD_DELIVERYD_LEASE_SECONDS", "3")
    env.setenv("HERALD_SENDGRID_TIMEOUT", "2")  # 2 s + margin <= 3 s x 0.8
    # Providers outside every chain are not checked.
    env.setenv("HERALD_TWILIO_TIMEOUT", "100")
    settings = DeliverydSettings()
    assert settings.providers("email") == ("sendgrid", "sandbox")


# --- The alert webhook: https to a public host unless allowed (mesh.outbound) -------------

WEBHOOK_SETTINGS = (
    "HERALD_ALERT_WEBHOOK_URL",
    "HERALD_ALERT_WEBHOOK_ALLOW_PRIVATE",
    "HERALD_OUTBOUND_ALLOW_LOOPBACK",
)


@pytest.fixture
def webhook_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in WEBHOOK_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://10.0.0.5/alerts", "private address"),
        ("https://169.254.169.254/latest/meta-data/", "link-local address"),
        ("http://127.0.0.1:9000/alerts", "loopback address"),
        ("https://localhost/alerts", "localhost"),
        ("https://alerts.internal/hook", "no public host"),
        ("http://alerts.example.com/hook", "must be an https URL"),
        ("https://]", "not a valid URL"),
    ],
)
def test_an_alert_webhook_off_the_public_internet_is_refused(
    webhook_env: pytest.MonkeyPatch, url: str, reason: str
) -> None:
    webhook_env.setenv("HERALD_ALERT_WEBHOOK_URL", url)
    with pytest.raises(ValidationError) as refused:
        DeliverydSettings()
    [error] = refused.value.errors()
    assert error["loc"] == ("HERALD_ALERT_WEBHOOK_URL",)
    assert reason in error["msg"]
    assert "HERALD_ALERT_WEBHOOK_ALLOW_PRIVATE" in error["msg"]


def test_an_operator_may_allow_a_private_alert_webhook(webhook_env: pytest.MonkeyPatch) -> None:
    webhook_env.setenv("HERALD_ALERT_WEBHOOK_URL", "http://10.0.0.5:9000/alerts")
    webhook_env.setenv("HERALD_ALERT_WEBHOOK_ALLOW_PRIVATE", "true")
    assert DeliverydSettings().alert_webhook_url == "http://10.0.0.5:9000/alerts"


def test_the_loopback_allowance_admits_a_local_alert_webhook_only(
    webhook_env: pytest.MonkeyPatch,
) -> None:
    webhook_env.setenv("HERALD_OUTBOUND_ALLOW_LOOPBACK", "true")
    webhook_env.setenv("HERALD_ALERT_WEBHOOK_URL", "http://127.0.0.1:9000/alerts")
    assert DeliverydSettings().alert_webhook_url == "http://127.0.0.1:9000/alerts"
    webhook_env.setenv("HERALD_ALERT_WEBHOOK_URL", "http://192.168.0.10:9000/alerts")
    with pytest.raises(ValidationError, match="private address"):
        DeliverydSettings()


def test_a_public_https_alert_webhook_is_taken(webhook_env: pytest.MonkeyPatch) -> None:
    webhook_env.setenv("HERALD_ALERT_WEBHOOK_URL", "https://hooks.example.com/herald")
    assert DeliverydSettings().alert_webhook_url == "https://hooks.example.com/herald"
    webhook_env.setenv("HERALD_ALERT_WEBHOOK_URL", "")  # as .env.example has it: no webhook
    assert not DeliverydSettings().alert_webhook_url


def test_a_private_alert_webhook_stops_deliveryd_at_start_up_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "deliveryd", "email"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HERALD_ALERT_WEBHOOK_URL": "https://10.0.0.5/alerts"},
    )
    assert result.returncode == 2
    assert result.stderr.startswith("herald: bad configuration: HERALD_ALERT_WEBHOOK_URL: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "private address" in result.stderr
    assert "Traceback" not in result.stderr


# --- The gateway's public URL, for providers' callbacks --------------------------------


@pytest.mark.parametrize(
    ("value", "taken"),
    [
        ("https://herald.example.com/", "https://herald.example.com"),
        ("https://herald.example.com/api", "https://herald.example.com/api"),
        ("", None),  # as .env.example has it: no callbacks
    ],
)
def test_the_receipts_base_url_is_taken_without_its_last_slash(
    monkeypatch: pytest.MonkeyPatch, value: str, taken: str | None
) -> None:
    monkeypatch.setenv("HERALD_RECEIPTS_BASE_URL", value)
    assert DeliverydSettings().receipts_base_url == taken


@pytest.mark.parametrize(
    "value",
    ["herald.example.com", "ftp://herald.example.com", "https://", "https://h.example/?a=1"],
)
def test_a_receipts_base_url_that_is_no_base_url_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("HERALD_RECEIPTS_BASE_URL", value)
    with pytest.raises(ValidationError) as refused:
        DeliverydSettings()
    [error] = refused.value.errors()
    assert error["loc"] == ("HERALD_RECEIPTS_BASE_URL",)
