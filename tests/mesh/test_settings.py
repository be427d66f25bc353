"""Settings: built from the environment, frozen, secrets masked, bad values stop start-up."""

from __future__ import annotations

import subprocess
import sys

import pytest
from argon2 import PasswordHasher
from pydantic import ValidationError

from mesh.settings import DEV_SERVICE_TOKEN, CommonSettings, load_settings
from tests.support.processes import ROOT
from userd.passwords import Passwords
from userd.settings import UserdSettings


def test_defaults_point_at_local_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HERALD_POSTGRES_URL", "HERALD_USERD_GRPC_PORT", "HERALD_SERVICE_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    settings = UserdSettings()
    assert settings.grpc_port == 50051
    assert settings.postgres_url == "postgresql://root@127.0.0.1:5432"
    assert settings.database_url("herald_users") == "postgresql://root@127.0.0.1:5432/herald_users"


def test_environment_overrides_and_object_is_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_USERD_GRPC_PORT", "6000")
    monkeypatch.setenv("HERALD_REDIS_PREFIX", "x:")
    settings = UserdSettings()
    assert settings.grpc_port == 6000
    assert settings.redis_prefix == "x:"
    with pytest.raises(ValidationError):
        settings.grpc_port = 1  # type: ignore[misc]


def test_secrets_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_SERVICE_TOKEN", "very-secret-token")
    settings = CommonSettings()
    assert "very-secret-token" not in repr(settings)
    assert "very-secret-token" not in str(settings.model_dump())
    assert settings.service_token.get_secret_value() == "very-secret-token"


def test_bad_value_exits_with_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HERALD_USERD_GRPC_PORT", "not-a-port")
    with pytest.raises(SystemExit) as exited:
        load_settings(UserdSettings)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "HERALD_USERD_GRPC_PORT" in err


def test_process_with_bad_setting_stops_at_start_up() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "templated"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "HERALD_LOG_LEVEL": "LOUD"},
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "HERALD_LOG_LEVEL" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("HERALD_POSTGRES_URL", "not-a-url", "must be a URL starting with postgresql://"),
        ("HERALD_REDIS_URL", "localhost:6379", "must be a URL starting with redis://"),
        ("HERALD_AMQP_URL", "amqp://guest:guest@127.0.0.1:notaport/", "has a bad port"),
        ("HERALD_AMQP_URL", "amqp:///", "must name a host"),
    ],
)
def test_a_bad_server_url_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    reason: str,
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as exited:
        load_settings(UserdSettings)
    assert exited.value.code == 2
    assert capsys.readouterr().err == f"herald: bad configuration: {variable}: {reason}\n"


def test_passwords_in_server_urls_are_masked() -> None:
    settings = CommonSettings(
        postgres_url="postgresql://herald:pg-secret@db:5432",
        amqp_url="amqp://herald:mq-secret@broker:5672/",
        redis_url="redis://:redis-secret@cache:6379/0",
    )
    shown = repr(settings)
    for secret in ("pg-secret", "mq-secret", "redis-secret"):
        assert secret not in shown
    assert "postgresql://herald:***@db:5432" in shown
    assert settings.amqp_url == "amqp://herald:mq-secret@broker:5672/"


@pytest.mark.parametrize(
    ("module", "variable", "value", "named"),
    [
        ("userd", "HERALD_POSTGRES_URL", "postgresql://root:pg-secret@127.0.0.1:1", "PostgreSQL"),
        ("deliveryd", "HERALD_AMQP_URL", "amqp://guest:mq-secret@127.0.0.1:1/", "RabbitMQ"),
    ],
)
def test_an_unreachable_server_stops_start_up_in_one_line(
    module: str, variable: str, value: str, named: str
) -> None:
    args = [sys.executable, "-m", module] + (["email"] if module == "deliveryd" else [])
    result = subprocess.run(
        args,
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            variable: value,
            "HERALD_USERD_GRPC_PORT": "0",
            "HERALD_USERD_METRICS_PORT": "0",
            "HERALD_DELIVERYD_EMAIL_GRPC_PORT": "0",
            "HERALD_DELIVERYD_EMAIL_METRICS_PORT": "0",
        },
    )
    assert result.returncode == 1
    [line] = [x for x in result.stderr.splitlines() if x.startswith("herald:")]
    assert line.startswith(f"herald: cannot start: {named} at ")
    assert "secret" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::", "herald.internal"])
def test_the_development_token_is_refused_beyond_loopback(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    monkeypatch.delenv("HERALD_SERVICE_TOKEN", raising=False)
    monkeypatch.setenv("HERALD_HOST", host)
    with pytest.raises(ValidationError, match="development token"):
        CommonSettings()
    monkeypatch.setenv("HERALD_SERVICE_TOKEN", "a-real-secret-token")
    assert CommonSettings().host == host


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_the_development_token_is_fine_on_loopback(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    monkeypatch.delenv("HERALD_SERVICE_TOKEN", raising=False)
    monkeypatch.setenv("HERALD_HOST", host)
    assert CommonSettings().service_token.get_secret_value() == DEV_SERVICE_TOKEN


@pytest.mark.parametrize("service", ["gateway", "userd", "templated", "deliveryd"])
def test_a_server_beyond_loopback_with_the_development_token_does_not_start(service: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", service, *(["email"] if service == "deliveryd" else [])],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "HERALD_HOST": "0.0.0.0"},
    )
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "HERALD_SERVICE_TOKEN" in line and "development token" in line


async def test_passwords_are_hashed_with_rfc_9106_low_memory_unless_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HERALD_USERD_PASSWORD_HASH_PROFILE", raising=False)
    profile = UserdSettings().password_hash_profile
    assert profile == "rfc_9106_low_memory"
    hashed = await Passwords(profile).hash("correct horse battery")
    assert hashed.startswith("$argon2id$v=19$m=65536,t=3,p=4$")  # RFC 9106, second choice
    cheap = await Passwords("cheapest").hash("correct horse battery")
    assert cheap.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    assert PasswordHasher().verify(cheap, "correct horse battery")  # a hash keeps its own


def test_the_cheapest_password_hash_is_refused_beyond_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HERALD_USERD_PASSWORD_HASH_PROFILE", "cheapest")
    monkeypatch.setenv("HERALD_SERVICE_TOKEN", "a-real-secret")
    monkeypatch.setenv("HERALD_HOST", "127.0.0.1")
    assert UserdSettings().password_hash_profile == "cheapest"
    monkeypatch.setenv("HERALD_HOST", "0.0.0.0")
    with pytest.raises(ValidationError, match="cheapest is for tests"):
        UserdSettings()
