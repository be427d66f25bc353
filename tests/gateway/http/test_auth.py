"""API keys: every /api/v1 route answers 401 without a live key and 403 without its scope,
before touching anything; the CLI creates, lists and revokes keys; an admin sets a key's
send rate over REST, and the key's next sends obey it."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from tests.gateway.http.conftest import (
    Keys,
    apikeys,
    bearer,
    create_key_with_cli,
    service_work,
)
from tests.support.infra import POSTGRES_URL
from tests.support.processes import ServiceProcess
from tests.support.stack import Core

# The route table: what scope each route needs.
SCOPES = {
    ("POST", "/api/v1/notifications/"): "notifications:send",
    ("POST", "/api/v1/notifications/batch"): "notifications:send",
    ("GET", "/api/v1/notifications/"): "notifications:read",
    ("GET", "/api/v1/notifications/{notification_id}"): "notifications:read",
    ("POST", "/api/v1/notifications/{notification_id}/retry"): "notifications:send",
    ("POST", "/api/v1/notifications/{notification_id}/cancel"): "notifications:send",
    ("POST", "/api/v1/{notification_type}/status/"): "status:report",
    ("POST", "/api/v1/users/"): "users:write",
    ("GET", "/api/v1/users/"): "users:read",
    ("GET", "/api/v1/users/{user_id}"): "users:read",
    ("PATCH", "/api/v1/users/{user_id}"): "users:write",
    ("DELETE", "/api/v1/users/{user_id}"): "users:write",
    ("PATCH", "/api/v1/users/{user_id}/preferences"): "users:write",
    ("POST", "/api/v1/users/{user_id}/push-targets"): "users:write",
    ("DELETE", "/api/v1/users/{user_id}/push-targets/{target_id}"): "users:write",
    ("POST", "/api/v1/templates/"): "templates:write",
    ("GET", "/api/v1/templates/"): "templates:read",
    ("GET", "/api/v1/templates/{code}"): "templates:read",
    ("DELETE", "/api/v1/templates/{code}"): "templates:write",
    ("GET", "/api/v1/templates/{code}/versions"): "templates:read",
    ("POST", "/api/v1/templates/{code}/versions"): "templates:write",
    ("PUT", "/api/v1/templates/{code}/active-version"): "templates:write",
    ("POST", "/api/v1/templates/{code}/render"): "templates:read",
    ("POST", "/api/v1/api-keys/"): "admin",
    ("GET", "/api/v1/api-keys/"): "admin",
    ("DELETE", "/api/v1/api-keys/{key_id}"): "admin",
    ("PUT", "/api/v1/api-keys/{key_id}/rate"): "admin",
    ("GET", "/api/v1/suppressions/"): "admin",
    ("GET", "/api/v1/suppressions/{suppression_id}"): "admin",
    ("DELETE", "/api/v1/suppressions/{suppression_id}"): "admin",
    ("GET", "/api/v1/notifications/{notification_id}/callbacks"): "notifications:read",
    ("POST", "/api/v1/callbacks/"): "callbacks:write",
    ("GET", "/api/v1/callbacks/"): "callbacks:write",
    ("GET", "/api/v1/callbacks/{callback_id}"): "callbacks:write",
    ("DELETE", "/api/v1/callbacks/{callback_id}"): "callbacks:write",
    ("POST", "/api/v1/callbacks/{callback_id}/rotate-secret"): "callbacks:write",
}
PARAMS = {
    "notification_id": str(uuid.uuid4()),
    "user_id": str(uuid.uuid4()),
    "target_id": str(uuid.uuid4()),
    "notification_type": "email",
    # No test makes this template: the admin's request of each route below really runs
    # (DELETE archives), and the package's seeded `auth/welcome` must stay sendable.
    "code": "scopes/none",
    "key_id": "000000000000",
    "suppression_id": str(uuid.uuid4()),
    "callback_id": str(uuid.uuid4()),
}
# A key (a Keys field) without the scope: least privilege, every scope exactly what it says.
LACKING = {
    "notifications:send": "read",
    "notifications:read": "send",
    "users:read": "send",
    "users:write": "read",
    "templates:read": "send",
    "templates:write": "read",
    "status:report": "send_read",
    "callbacks:write": "send_read",
    "admin": "operator",
}


def concrete(path: str) -> str:
    for name, value in PARAMS.items():
        path = path.replace("{" + name + "}", value)
    return path


def test_openapi_declares_exactly_the_route_table(http: httpx.Client) -> None:
    document = http.get("/openapi.json").json()
    declared = {
        (method.upper(), path): operation["security"][0]["ApiKey"][0]
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if path.startswith("/api/v1")
    }
    assert declared == SCOPES
    assert document["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    assert "security" not in document["paths"]["/health"]["get"]


@pytest.mark.parametrize(("method", "path"), sorted(SCOPES))
def test_every_route_needs_a_live_key_with_its_scope(
    http: httpx.Client, keys: Keys, stack: Core, method: str, path: str
) -> None:
    url = concrete(path)
    body: dict[str, Any] | None = {} if method in ("POST", "PUT", "PATCH") else None
    work_before = service_work(stack)
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        bearer("hk_000000000000_" + "A" * 43),
        bearer("not-a-key"),
        bearer(keys.revoked),
        bearer(keys.admin[:-1] + ("B" if keys.admin[-1] != "B" else "C")),
    ):
        answer = http.request(method, url, json=body, headers=headers)
        assert answer.status_code == 401, (headers, answer.text)
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert answer.json()["error"]["code"] == "UNAUTHENTICATED"
    lacking = getattr(keys, LACKING[SCOPES[(method, path)]])
    refused = http.request(method, url, json=body, headers=bearer(lacking))
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "PERMISSION_DENIED"
    assert service_work(stack) == work_before, "a refused request reached a service"
    allowed = http.request(method, url, json=body, headers=bearer(keys.admin))
    assert allowed.status_code not in (401, 403), allowed.text


def test_refusals_do_not_reveal_whether_a_resource_exists(
    http: httpx.Client, keys: Keys, seeded: dict[str, Any]
) -> None:
    existing = f"/api/v1/users/{seeded['user']['id']}"
    missing = f"/api/v1/users/{uuid.uuid4()}"
    for headers, status in ((bearer("hk_nope"), 401), (bearer(keys.send), 403)):
        a = http.get(existing, headers=headers)
        b = http.get(missing, headers=headers)
        assert a.status_code == b.status_code == status
        assert a.json() == b.json()
    # Without a key, not even whether the body parses or the route exists.
    assert (
        http.post(
            "/api/v1/users/", content=b"{nope", headers={"Content-Type": "application/json"}
        ).status_code
        == 401
    )
    assert http.get("/api/v1/no-such-route").status_code == 401
    assert http.get("/api/v1/no-such-route", headers=bearer(keys.read)).status_code == 404


def test_broad_scopes_include_the_narrow_ones(http: httpx.Client, keys: Keys) -> None:
    """admin includes every scope; operator:read every read; a write its read."""
    for key in (keys.admin, keys.operator, keys.send_read, keys.read):
        assert http.get("/api/v1/notifications/", headers=bearer(key)).status_code == 200
    for key in (keys.admin, keys.operator, keys.users_write):
        assert http.get("/api/v1/users/", headers=bearer(key)).status_code == 200
    for key in (keys.admin, keys.operator, keys.templates_write):
        assert http.get("/api/v1/templates/", headers=bearer(key)).status_code == 200
    for key in (keys.operator, keys.users_write, keys.templates_write):
        refused = http.post("/api/v1/notifications/", json={}, headers=bearer(key))
        assert refused.status_code == 403, refused.text


def test_open_routes_need_no_key(http: httpx.Client) -> None:
    assert http.get("/health").status_code == 200
    assert http.get("/metrics").status_code == 200
    assert http.get("/openapi.json").status_code == 200
    assert http.get("/docs").status_code == 200


def test_cli_lists_and_revokes_and_keys_are_stored_hashed(
    http: httpx.Client, edge: ServiceProcess
) -> None:
    created = create_key_with_cli(edge, "cli-test", "read")
    assert created["key"].startswith(f"hk_{created['id']}_")
    # The legacy name reads as its three scopes; without --client, a client of its own.
    assert created["scopes"] == ["notifications:read", "templates:read", "users:read"]
    assert created["client_id"] == created["id"]
    listed = apikeys(edge, "list", "--json")
    assert listed.returncode == 0
    rows = {row["id"]: row for row in json.loads(listed.stdout)}
    assert rows[created["id"]]["name"] == "cli-test"
    assert rows[created["id"]]["revoked_at"] is None
    assert created["key"] not in listed.stdout
    plain = apikeys(edge, "list")
    assert created["id"] in plain.stdout and created["key"] not in plain.stdout
    # What the database keeps: the SHA-256 of the key, and the key nowhere.
    database = f"{POSTGRES_URL}/{edge.env['HERALD_GATEWAY_DATABASE']}"
    with psycopg.connect(database) as conn:
        row = conn.execute("SELECT * FROM api_keys WHERE id = %s", (created["id"],)).fetchone()
    assert row is not None
    assert hashlib.sha256(created["key"].encode()).digest() in row
    assert not any(created["key"] in str(value) for value in row)

    assert http.get("/api/v1/users/", headers=bearer(created["key"])).status_code == 200
    assert apikeys(edge, "revoke", created["id"]).returncode == 0
    assert apikeys(edge, "revoke", created["id"]).returncode == 1  # already revoked
    listed = json.loads(apikeys(edge, "list", "--json").stdout)
    assert next(r for r in listed if r["id"] == created["id"])["revoked_at"]

    bad_scope = apikeys(edge, "create", "--name", "x", "--scopes", "send,root")
    assert bad_scope.returncode == 2
    assert "unknown scope 'root'" in bad_scope.stderr


def test_an_admin_sets_a_keys_rate_and_its_next_sends_obey_it(
    http: httpx.Client, admin: httpx.Client, keys: Keys, seeded: dict[str, Any]
) -> None:
    created = admin.post(
        "/api/v1/api-keys/",
        json={"name": "rated", "scopes": ["notifications:send"], "client_id": "rated"},
    )
    assert created.status_code == 201, created.text
    key_id, key = created.json()["id"], created.json()["key"]
    rate_path = f"/api/v1/api-keys/{key_id}/rate"

    def rate() -> tuple[int | None, int | None]:
        [row] = [k for k in admin.get("/api/v1/api-keys/").json()["items"] if k["id"] == key_id]
        return row["rate_per_second"], row["rate_burst"]

    item = {
        "notification_type": "email",
        "user_id": seeded["user"]["id"],
        "template_code": "auth/welcome",
        "variables": {"name": "Ada", "link": "https://example.com"},
        # Nothing is published: no worker runs here, and none needs to.
        "send_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
    }
    two = {"notifications": [item, item]}

    def send(body: dict[str, Any], path: str = "/api/v1/notifications/") -> httpx.Response:
        return http.post(path, json=body, headers=bearer(key))

    assert rate() == (None, None)  # the gateway's default
    assert admin.put(rate_path, json={"rate_per_second": 1, "rate_burst": 1}).status_code == 204
    assert rate() == (1, 1)
    # One a second, one at once: a send passes; a batch of two never can (all or none).
    first = send(item)
    assert first.status_code == 202, first.text
    refused = send(two, "/api/v1/notifications/batch")
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "RESOURCE_EXHAUSTED"
    assert int(refused.headers["Retry-After"]) >= 1
    # 0: unlimited.
    assert admin.put(rate_path, json={"rate_per_second": 0}).status_code == 204
    assert rate()[0] == 0
    for _ in range(3):
        accepted = send(two, "/api/v1/notifications/batch")
        assert accepted.status_code == 202, accepted.text

    # Only an admin key may; only a live key's rate can be set.
    for lacking in (key, keys.send_read, keys.other, keys.operator):
        answer = http.put(rate_path, json={"rate_per_second": 5}, headers=bearer(lacking))
        assert answer.status_code == 403, answer.text
    revoked_id = keys.revoked.split("_")[1]
    for missing in ("000000000000", revoked_id):
        answer = admin.put(f"/api/v1/api-keys/{missing}/rate", json={"rate_per_second": 5})
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["code"] == "NOT_FOUND"

    # Bad input is a 400 naming the field, and changes nothing.
    for body, field in [
        ({"rate_per_second": -1}, "rate_per_second"),
        ({"rate_per_second": "fast"}, "rate_per_second"),
        ({"rate_per_second": 1.5}, "rate_per_second"),
        ({"rate_per_second": 2_000_000}, "rate_per_second"),
        ({"rate_burst": 5}, "rate_per_second"),  # a burst needs a rate
        ({"rate_per_second": 5, "rate_burst": 0}, "rate_burst"),
        ({"rate_per_second": 5, "burst": 10}, "burst"),
    ]:
        answer = admin.put(rate_path, json=body)
        assert answer.status_code == 400, (body, answer.text)
        assert field in [f["field"] for f in answer.json()["error"]["fields"]], (body, answer.text)
    assert rate()[0] == 0
    # Both left out: back to the default.
    assert admin.put(rate_path, json={}).status_code == 204
    assert rate() == (None, None)


def test_openapi_documents_setting_a_keys_rate(http: httpx.Client) -> None:
    document = http.get("/openapi.json").json()
    operation = document["paths"]["/api/v1/api-keys/{key_id}/rate"]["put"]
    assert {"204", "400", "404"} <= set(operation["responses"])
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    schema = document["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]
    assert set(schema["properties"]) == {"rate_per_second", "rate_burst"}
