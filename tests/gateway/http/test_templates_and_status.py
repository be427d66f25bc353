"""`/api/v1/templates` and the seed's `POST /api/v1/{notification_type}/status/`."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from tests.gateway.http.conftest import WELCOME, Keys, bearer


def test_template_lifecycle(admin: httpx.Client, keys: Keys) -> None:
    code = f"billing/{uuid.uuid4().hex[:8]}/receipt"
    created = admin.post("/api/v1/templates/", json={**WELCOME, "code": code})
    assert created.status_code == 201, created.text
    template = created.json()
    assert template["active_version"] == 1
    assert template["version"]["variables"] == ["link", "name"]
    assert template["version"]["author"] == f"apikey:{_key_id(keys.admin)}:test-admin"
    assert admin.post("/api/v1/templates/", json={**WELCOME, "code": code}).status_code == 409

    v2 = {
        "contents": [{"language": "en", "sms": {"text": "Hi {{ name }}"}}],
        "change_note": "short",
    }
    published = admin.post(f"/api/v1/templates/{code}/versions", json=v2)
    assert published.status_code == 201, published.text
    assert published.json()["active_version"] == 2

    versions = admin.get(f"/api/v1/templates/{code}/versions")
    assert versions.status_code == 200
    assert [v["version"] for v in versions.json()["items"]] == [2, 1]

    back = admin.put(f"/api/v1/templates/{code}/active-version", json={"version": 1})
    assert back.status_code == 200
    assert back.json()["active_version"] == 1
    assert (
        admin.put(f"/api/v1/templates/{code}/active-version", json={"version": 9}).status_code
        == 404
    )

    got = admin.get(f"/api/v1/templates/{code}", params={"version": 2})
    assert got.status_code == 200
    assert got.json()["version"]["version"] == 2
    assert got.json()["version"]["contents"][0]["email"] is None

    listed = admin.get("/api/v1/templates/", params={"code_prefix": code})
    assert [t["code"] for t in listed.json()["items"]] == [code]

    assert admin.delete(f"/api/v1/templates/{code}").status_code == 204
    assert admin.get("/api/v1/templates/", params={"code_prefix": code}).json()["items"] == []
    assert admin.get(f"/api/v1/templates/{code}").json()["archived"] is True


def _key_id(key: str) -> str:
    return key.split("_")[1]


def test_render_preview_and_missing_variable(
    http: httpx.Client, keys: Keys, seeded: dict[str, Any]
) -> None:
    body = {"variables": {"name": "Ada", "link": "https://x"}, "channels": ["email"]}
    rendered = http.post(
        "/api/v1/templates/auth/welcome/render", json=body, headers=bearer(keys.read)
    )
    assert rendered.status_code == 200, rendered.text
    assert rendered.json()["email"]["subject"] == "Welcome, Ada"
    assert rendered.json()["language"] == "en"

    missing = http.post(
        "/api/v1/templates/auth/welcome/render",
        json={"variables": {"link": "https://x"}},
        headers=bearer(keys.read),
    )
    assert missing.status_code == 400
    [field] = missing.json()["error"]["fields"]
    assert field["field"] == "variables.name"
    assert field["description"].startswith("is required by the template")
    unknown = http.get("/api/v1/templates/no/such/template", headers=bearer(keys.read))
    assert unknown.status_code == 404


def test_seed_status_payload_is_kept_as_an_external_report(
    http: httpx.Client, keys: Keys, seeded: dict[str, Any]
) -> None:
    """The seed's status payload joins the trail as a `reported` attempt naming its
    reporter; it never moves a pending notification (no worker runs here, so the
    notification stays pending whatever is reported)."""
    body = {
        "notification_type": "email",
        "user_id": seeded["user"]["id"],
        "template_code": "auth/welcome",
        "variables": {"name": "str", "link": "url"},
    }
    sent = http.post("/api/v1/notifications/", json=body, headers=bearer(keys.send)).json()
    report = {
        "notification_id": sent["notification_id"],
        "status": "delivered",
        "timestamp": "2026-01-02T03:04:05Z",
        "error": None,
    }
    answer = http.post("/api/v1/email/status/", json=report, headers=bearer(keys.status_report))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "notification_id": sent["notification_id"],
        "status": "pending",
        "changed": True,
    }
    # The seed's minimal form (no timestamp, no error) is kept the same way.
    minimal = {"notification_id": sent["notification_id"], "status": "failed"}
    failed = http.post("/api/v1/email/status/", json=minimal, headers=bearer(keys.status_report))
    assert failed.json()["status"] == "pending"
    got = http.get(f"/api/v1/notifications/{sent['notification_id']}", headers=bearer(keys.read))
    record = got.json()
    assert record["status"] == "pending" and record["delivered_at"] is None
    reported = [a for a in record["attempts"] if a["outcome"] == "reported"]
    assert [json.loads(a["detail"])["reported_status"] for a in reported] == [
        "delivered",
        "failed",
    ]
    assert all(json.loads(a["detail"])["reporter"].startswith("apikey:") for a in reported)
    assert reported[0]["started_at"].startswith("2026-01-02T03:04:05")

    # Another client's notification is not there for this client's reporter; admin may.
    theirs = http.post("/api/v1/notifications/", json=body, headers=bearer(keys.other)).json()
    mine_only = {"notification_id": theirs["notification_id"], "status": "delivered"}
    refused = http.post("/api/v1/email/status/", json=mine_only, headers=bearer(keys.status_report))
    assert refused.status_code == 404, refused.text
    assert http.post("/api/v1/email/status/", json=mine_only, headers=bearer(keys.admin)).is_success

    bad_type = http.post("/api/v1/fax/status/", json=minimal, headers=bearer(keys.admin))
    assert bad_type.status_code == 400
    assert bad_type.json()["error"]["fields"][0]["field"] == "notification_type"
    unknown = http.post(
        "/api/v1/push/status/",
        json={"notification_id": str(uuid.uuid4()), "status": "delivered"},
        headers=bearer(keys.admin),
    )
    assert unknown.status_code == 404
