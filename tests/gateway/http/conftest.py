"""The REST edge as a real gateway process, its gRPC peers faked in-test (tests/.../fakes.py),
and API keys made with the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import ServiceFactory
from tests.gateway.http.fakes import FakeMesh
from tests.support.processes import ROOT, ServiceProcess

EDGE_TIMEOUT_SECONDS = "1"  # the fakes' slow answer outlasts it (504 tests)


@pytest.fixture(scope="package")
def fakes() -> Iterator[FakeMesh]:
    mesh = FakeMesh().start()
    yield mesh
    mesh.stop()


@pytest.fixture(scope="package")
def edge(service_factory: ServiceFactory, fakes: FakeMesh) -> ServiceProcess:
    proc = service_factory(
        "gateway",
        env={
            "HERALD_USERD_ADDR": fakes.address,
            "HERALD_TEMPLATED_ADDR": fakes.address,
            "HERALD_GATEWAY_NOTIFICATIONS_ADDR": fakes.address,
            "HERALD_GATEWAY_RPC_TIMEOUT_SECONDS": EDGE_TIMEOUT_SECONDS,
            "HERALD_GATEWAY_MAX_BODY_BYTES": str(64 * 1024),
        },
    )
    return proc  # started: its gRPC server serves and its HTTP port answers


def apikeys(edge: ServiceProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m gateway apikeys ...` against the edge's database."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", "apikeys", *args],
        check=False,
        cwd=ROOT,
        env={**os.environ, **edge.env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def create_key(edge: ServiceProcess, name: str, scopes: str) -> dict[str, Any]:
    done = apikeys(edge, "create", "--name", name, "--scopes", scopes, "--json")
    assert done.returncode == 0, done.stderr
    created: dict[str, Any] = json.loads(done.stdout)
    return created


@dataclass(frozen=True)
class Keys:
    """Plaintext keys with the scope their name says; `revoked` was revoked unused."""

    send: str
    read: str
    admin: str
    send_read: str
    revoked: str
    send_id: str


@pytest.fixture(scope="package")
def keys(edge: ServiceProcess) -> Keys:
    made = {
        name: create_key(edge, f"test-{name}", scopes)
        for name, scopes in [
            ("send", "send"),
            ("read", "read"),
            ("admin", "admin"),
            ("send_read", "send,read"),
            ("revoked", "admin"),
        ]
    }
    done = apikeys(edge, "revoke", made["revoked"]["id"])
    assert done.returncode == 0, done.stderr
    return Keys(
        send=made["send"]["key"],
        read=made["read"]["key"],
        admin=made["admin"]["key"],
        send_read=made["send_read"]["key"],
        revoked=made["revoked"]["key"],
        send_id=made["send"]["id"],
    )


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="package")
def http(edge: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{edge.http_port}", timeout=10) as client:
        yield client


@pytest.fixture(scope="package")
def admin(http: httpx.Client, keys: Keys) -> httpx.Client:
    """A client speaking with the admin key (every scope)."""
    return httpx.Client(base_url=str(http.base_url), headers=bearer(keys.admin), timeout=10)


SEED_USER = {
    "name": "str",
    "email": "seed@example.com",
    "push_token": "optional str",
    "preferences": {"email": True, "push": False},
    "password": "str",
}

WELCOME = {
    "code": "auth/welcome",
    "name": "Welcome",
    "default_language": "en",
    "contents": [
        {
            "language": "en",
            "email": {"subject": "Welcome, {{ name }}", "html_body": "<a href='{{ link }}'>go</a>"},
            "sms": {"text": "Welcome {{ name }}: {{ link }}"},
        }
    ],
}


@pytest.fixture(scope="package")
def seeded(admin: httpx.Client) -> dict[str, Any]:
    """A user (the seed's payload) and the `auth/welcome` template, made through the edge."""
    user = admin.post("/api/v1/users/", json=SEED_USER)
    assert user.status_code == 201, user.text
    template = admin.post("/api/v1/templates/", json=WELCOME)
    assert template.status_code == 201, template.text
    return {"user": user.json(), "template": template.json()}
