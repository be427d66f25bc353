"""Settings: built from the environment, frozen, secrets masked, bad values stop start-up."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from mesh.settings import CommonSettings, load_settings
from tests.support.processes import ROOT
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
