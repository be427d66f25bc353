"""deliveryd's settings: a provider the hop's lease leaves no time for stops start-up."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from deliveryd.settings import DeliverydSettings
from mesh.settings import load_settings

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
