"""Each client sees only its own: over REST and over gRPC, another client's notification is
not there (404 / NOT_FOUND, as one that does not exist); operator:read and admin see every
client's. API keys made and revoked through the edge fail at once on that process, and
on the others as soon as PostgreSQL's NOTIFY arrives (the cache here lives five minutes)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import grpc
import httpx
import pytest

from gateway.callers import API_KEY_HEADER
from herald.v1 import notification_pb2, notification_pb2_grpc
from mesh.interceptors import CLIENT_HEADER, TOKEN_HEADER
from tests.gateway.http.conftest import (
    CLIENT,
    KEY_CACHE_SECONDS,
    Keys,
    bearer,
    fail_every_channel,
    revoke_key,
)
from tests.support.infra import SERVICE_TOKEN
from tests.support.processes import ServiceProcess


def _send(http: httpx.Client, key: str, user_id: str) -> str:
    body = {
        "notification_type": "email",
        "user_id": user_id,
        "template_code": "auth/welcome",
        "variables": {"name": "A", "link": "https://example.com/reset?token=secret"},
        "metadata": {"purpose": "password-reset"},
    }
    answer = http.post("/api/v1/notifications/", json=body, headers=bearer(key))
    assert answer.status_code == 202, answer.text
    notification_id: str = answer.json()["notification_id"]
    return notification_id


def _listed(http: httpx.Client, key: str) -> set[str]:
    answer = http.get("/api/v1/notifications/", params={"page_size": 100}, headers=bearer(key))
    assert answer.status_code == 200, answer.text
    return {item["id"] for item in answer.json()["items"]}


def test_a_client_never_sees_another_clients_notifications(
    http: httpx.Client, edge: ServiceProcess, keys: Keys, seeded: dict[str, Any]
) -> None:
    user_id = seeded["user"]["id"]
    mine = _send(http, keys.send_read, user_id)
    theirs = _send(http, keys.other, user_id)

    # Read: the owner (any key of its client) sees it; the other client gets a 404 that
    # reads exactly like a notification that does not exist.
    assert http.get(f"/api/v1/notifications/{mine}", headers=bearer(keys.read)).is_success
    refused = http.get(f"/api/v1/notifications/{mine}", headers=bearer(keys.other))
    missing_id = uuid.uuid4()
    missing = http.get(f"/api/v1/notifications/{missing_id}", headers=bearer(keys.other))
    assert refused.status_code == missing.status_code == 404
    assert refused.json()["error"]["message"].replace(mine, "ID") == missing.json()["error"][
        "message"
    ].replace(str(missing_id), "ID")
    assert "secret" not in refused.text

    # List: each client lists only its own.
    assert mine in _listed(http, keys.read) and theirs not in _listed(http, keys.read)
    assert theirs in _listed(http, keys.other) and mine not in _listed(http, keys.other)

    # Retry: another client's failed notification is not there either.
    fail_every_channel(edge, mine)
    retry = f"/api/v1/notifications/{mine}/retry"
    assert http.post(retry, headers=bearer(keys.other)).status_code == 404

    # operator:read and admin see every client's; operator:read changes nothing.
    for key in (keys.operator, keys.admin):
        assert {mine, theirs} <= _listed(http, key)
        assert http.get(f"/api/v1/notifications/{theirs}", headers=bearer(key)).is_success
    assert http.post(retry, headers=bearer(keys.operator)).status_code == 403
    assert http.post(retry, headers=bearer(keys.admin)).status_code == 202


def test_a_send_only_key_cannot_read_users(
    http: httpx.Client, keys: Keys, seeded: dict[str, Any]
) -> None:
    user = f"/api/v1/users/{seeded['user']['id']}"
    assert http.get(user, headers=bearer(keys.send)).status_code == 403
    assert http.get("/api/v1/users/", headers=bearer(keys.send)).status_code == 403
    got = http.get(user, headers=bearer(keys.read))
    assert got.status_code == 200 and got.json()["email"] == seeded["user"]["email"]


def _grpc_get(
    edge: ServiceProcess, notification_id: str, *metadata: tuple[str, str]
) -> notification_pb2.Notification:
    with grpc.insecure_channel(edge.address) as channel:
        answer = notification_pb2_grpc.NotificationServiceStub(channel).GetNotification(
            notification_pb2.GetNotificationRequest(id=notification_id),
            metadata=((TOKEN_HEADER, f"Bearer {SERVICE_TOKEN}"), *metadata),
            timeout=10,
        )
    return answer.notification


def _grpc_code(edge: ServiceProcess, notification_id: str, *metadata: tuple[str, str]) -> Any:
    with pytest.raises(grpc.RpcError) as refused:
        _grpc_get(edge, notification_id, *metadata)
    return refused.value.code()


def test_grpc_callers_name_their_client_and_keep_the_same_rules(
    http: httpx.Client, edge: ServiceProcess, keys: Keys, seeded: dict[str, Any]
) -> None:
    mine = _send(http, keys.send_read, seeded["user"]["id"])
    # An internal service acting for a client sees that client's notifications only.
    assert _grpc_get(edge, mine, (CLIENT_HEADER, CLIENT)).client_id == CLIENT
    assert _grpc_code(edge, mine, (CLIENT_HEADER, "other")) == grpc.StatusCode.NOT_FOUND
    assert _grpc_code(edge, mine) == grpc.StatusCode.NOT_FOUND  # "internal", by default
    # An API key over gRPC: exactly its REST rights.
    assert _grpc_get(edge, mine, (API_KEY_HEADER, keys.read)).id == mine
    assert _grpc_get(edge, mine, (API_KEY_HEADER, keys.operator)).id == mine
    assert _grpc_code(edge, mine, (API_KEY_HEADER, keys.other)) == grpc.StatusCode.NOT_FOUND
    assert _grpc_code(edge, mine, (API_KEY_HEADER, keys.send)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    assert _grpc_code(edge, mine, (API_KEY_HEADER, keys.revoked)) == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    # A key and a client header that disagree are refused.
    assert _grpc_code(edge, mine, (API_KEY_HEADER, keys.read), (CLIENT_HEADER, "other")) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    assert _grpc_code(edge, mine, (CLIENT_HEADER, "bad client!")) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )


def test_a_key_revoked_through_the_edge_fails_at_once(
    http: httpx.Client, admin: httpx.Client
) -> None:
    created = admin.post(
        "/api/v1/api-keys/",
        json={"name": "short-lived", "scopes": ["users:read"], "client_id": "acme"},
    )
    assert created.status_code == 201, created.text
    key = created.json()
    assert (key["client_id"], key["scopes"]) == ("acme", ["users:read"])
    listed = admin.get("/api/v1/api-keys/").json()["items"]
    assert any(k["id"] == key["id"] and "key" not in k for k in listed)
    assert http.get("/api/v1/users/", headers=bearer(key["key"])).status_code == 200  # cached
    assert admin.delete(f"/api/v1/api-keys/{key['id']}").status_code == 204
    assert http.get("/api/v1/users/", headers=bearer(key["key"])).status_code == 401
    assert admin.delete(f"/api/v1/api-keys/{key['id']}").status_code == 404


def test_a_key_revoked_elsewhere_fails_when_postgres_says_so(
    http: httpx.Client, edge: ServiceProcess, admin: httpx.Client
) -> None:
    """Revoked by another process (this one, with the CLI's code): the gateway learns of it
    by NOTIFY. The key's row is cached for five minutes here, so only the NOTIFY can make
    it fail."""
    key = admin.post(
        "/api/v1/api-keys/", json={"name": "cli-revoked", "scopes": ["users:read"]}
    ).json()
    assert http.get("/api/v1/users/", headers=bearer(key["key"])).status_code == 200  # cached
    assert revoke_key(edge, key["id"])
    deadline = time.monotonic() + KEY_CACHE_SECONDS / 10
    while http.get("/api/v1/users/", headers=bearer(key["key"])).status_code != 401:
        assert time.monotonic() < deadline, "the revocation never reached the gateway"
        time.sleep(0.05)


def _key_reads(http: httpx.Client) -> dict[str, float]:
    reads = {"ids": 0.0, "row": 0.0}
    for line in http.get("/metrics").text.splitlines():
        if line.startswith("herald_api_key_reads_total{"):
            kind = line.split('read="')[1].split('"')[0]
            reads[kind] = float(line.split()[-1])
    return reads


def test_made_up_key_ids_cost_no_query_each(http: httpx.Client, keys: Keys) -> None:
    """A flood of well-formed keys with ids no key has, all at once: each is refused, and
    the database is read for the set of ids at most about once a second (every waiting
    request shares the read), never for a row. An unknown id waits for that read: that
    is the price, paid in idle time, not work."""
    assert http.get("/api/v1/users/", headers=bearer(keys.read)).status_code == 200
    before = _key_reads(http)
    started = time.monotonic()

    async def flood() -> list[int]:
        async with httpx.AsyncClient(base_url=str(http.base_url), timeout=30) as client:
            answers = await asyncio.gather(
                *(
                    client.get(
                        "/api/v1/users/",
                        headers=bearer(f"hk_{uuid.uuid4().hex[:12]}_{'A' * 43}"),
                    )
                    for _ in range(200)
                )
            )
        return [a.status_code for a in answers]

    assert set(asyncio.run(flood())) == {401}
    seconds = time.monotonic() - started
    after = _key_reads(http)
    assert after["row"] == before["row"]
    assert after["ids"] - before["ids"] <= seconds + 1
