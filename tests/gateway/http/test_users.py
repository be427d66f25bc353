"""`/api/v1/users`: the seed's shapes, and the routes around them."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx

from tests.gateway.http.conftest import SEED_USER, Keys, bearer


def new_user(admin: httpx.Client, **changes: Any) -> dict[str, Any]:
    body = {**SEED_USER, "email": f"u{uuid.uuid4().hex[:10]}@example.com", **changes}
    answer = admin.post("/api/v1/users/", json=body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def test_seed_user_payload_and_get_shape(
    http: httpx.Client, keys: Keys, seeded: dict[str, Any]
) -> None:
    created = seeded["user"]
    got = http.get(f"/api/v1/users/{created['id']}", headers=bearer(keys.read))
    assert got.status_code == 200
    user = got.json()
    # The seed's GET shape, exactly those values ...
    assert {k: user[k] for k in ("id", "name", "email", "push_token")} == {
        "id": created["id"],
        "name": "str",
        "email": "seed@example.com",
        "push_token": SEED_USER["push_token"],
    }
    assert user["preferences"]["email"] is True
    assert user["preferences"]["push"] is False
    # ... plus the extras, and never a password.
    assert {"phone", "locale", "time_zone", "push_targets", "created_at", "updated_at"} <= set(user)
    assert "password" not in got.text
    [target] = user["push_targets"]
    assert target["platform"] == "fcm"
    assert target["token"] == SEED_USER["push_token"]


def test_taken_email_is_409_and_service_field_errors_are_named(
    admin: httpx.Client, seeded: dict[str, Any]
) -> None:
    again = admin.post("/api/v1/users/", json=SEED_USER)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "ALREADY_EXISTS"
    # The document's rules are the edge's: a short password is refused there, naming it.
    fresh = f"u{uuid.uuid4().hex[:10]}@example.com"
    refused = admin.post("/api/v1/users/", json={**SEED_USER, "email": fresh, "password": "p"})
    assert refused.status_code == 400
    assert refused.json()["error"]["fields"] == [
        {"field": "password", "description": "String should have at least 8 characters"}
    ]
    # What no schema says is userd's to refuse, naming the field just the same.
    invalid = admin.post("/api/v1/users/", json={**SEED_USER, "email": fresh, "phone": "+10"})
    assert invalid.status_code == 400
    [problem] = invalid.json()["error"]["fields"]
    assert problem["field"] == "phone"


def test_unknown_user_is_404(http: httpx.Client, keys: Keys) -> None:
    answer = http.get(f"/api/v1/users/{uuid.uuid4()}", headers=bearer(keys.read))
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "NOT_FOUND"


def test_update_sends_a_mask_of_the_fields_given(admin: httpx.Client) -> None:
    user = new_user(admin, phone="+5511987654321")
    answer = admin.patch(
        f"/api/v1/users/{user['id']}",
        json={"name": "Ada", "phone": None, "preferences": {"push": True}},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["name"] == "Ada"
    assert answer.json()["phone"] is None
    assert answer.json()["preferences"]["push"] is True
    assert answer.json()["email"] == user["email"]
    # A proto path in a service's violation comes back as the JSON field.
    bad = admin.patch(f"/api/v1/users/{user['id']}", json={"email": "no-at-sign"})
    assert bad.status_code == 400
    assert bad.json()["error"]["fields"][0]["field"] == "email"
    assert admin.patch(f"/api/v1/users/{user['id']}", json={}).status_code == 400
    null_name = admin.patch(f"/api/v1/users/{user['id']}", json={"name": None})
    assert null_name.status_code == 400
    assert null_name.json()["error"]["fields"][0]["field"] == "name"


def test_preferences_push_targets_list_and_delete(admin: httpx.Client) -> None:
    user = new_user(admin)
    prefs = admin.patch(f"/api/v1/users/{user['id']}/preferences", json={"sms": True})
    assert prefs.status_code == 200
    assert prefs.json()["preferences"] == {"email": True, "push": False, "sms": True}

    p256dh = base64.urlsafe_b64encode(b"\x04" + bytes(64)).decode().rstrip("=")
    auth = base64.urlsafe_b64encode(bytes(16)).decode().rstrip("=")
    web = {
        "platform": "webpush",
        "web_push": {"endpoint": "https://push.example.com/x", "p256dh": p256dh, "auth": auth},
        "label": "laptop",
    }
    added = admin.post(f"/api/v1/users/{user['id']}/push-targets", json=web)
    assert added.status_code == 201, added.text
    target = added.json()
    assert target["platform"] == "webpush"
    assert target["web_push"] == {"endpoint": "https://push.example.com/x", "p256dh": p256dh}
    mixed = admin.post(
        f"/api/v1/users/{user['id']}/push-targets", json={"platform": "fcm", "label": "x"}
    )
    assert mixed.status_code == 400
    # A key of the wrong size is refused by the document's pattern, named as the body has it.
    keys = {"endpoint": "https://push.example.com/x", "p256dh": p256dh, "auth": auth[:-1]}
    short = {**web, "web_push": keys}
    refused = admin.post(f"/api/v1/users/{user['id']}/push-targets", json=short)
    assert refused.status_code == 400
    assert refused.json()["error"]["fields"] == [
        {"field": "web_push.auth", "description": "must be base64url of a 16-byte key"}
    ]

    path = f"/api/v1/users/{user['id']}/push-targets/{target['id']}"
    assert admin.delete(path).status_code == 204
    assert admin.delete(path).status_code == 404

    listed = admin.get("/api/v1/users/", params={"page_size": 1})
    assert listed.status_code == 200
    assert len(listed.json()["items"]) == 1
    assert listed.json()["next_page_token"]

    assert admin.delete(f"/api/v1/users/{user['id']}").status_code == 204
    assert admin.get(f"/api/v1/users/{user['id']}").status_code == 404


def test_quiet_hours_are_kept_in_the_users_time_zone_and_read_back(admin: httpx.Client) -> None:
    night = {"start": "22:00", "end": "07:00"}
    user = new_user(admin, time_zone="Europe/London", quiet_hours=night)
    assert (user["time_zone"], user["quiet_hours"]) == ("Europe/London", night)
    path = f"/api/v1/users/{user['id']}"
    assert admin.get(path).json()["quiet_hours"] == night
    # Without one, the gateway's default applies: none of the user's own.
    assert new_user(admin)["quiet_hours"] is None

    early = {"start": "23:30", "end": "06:15"}
    changed = admin.patch(path, json={"quiet_hours": early, "time_zone": "America/Sao_Paulo"})
    assert changed.status_code == 200, changed.text
    before = admin.get(path).json()
    assert (before["time_zone"], before["quiet_hours"]) == ("America/Sao_Paulo", early)

    # A bad zone or time is a 400 naming the field, and nothing changes, not even the
    # good field sent with it.
    bad_changes: list[tuple[dict[str, Any], str]] = [
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({"quiet_hours": {"start": "24:00", "end": "07:00"}}, "quiet_hours.start"),
        ({"quiet_hours": {"start": "22:00", "end": "7am"}}, "quiet_hours.end"),
        ({"quiet_hours": {"start": "22:00"}}, "quiet_hours.end"),
        ({"quiet_hours": "22:00-07:00"}, "quiet_hours"),
        ({"name": "Renamed", "quiet_hours": {"start": "9:00"}}, "quiet_hours.start"),
    ]
    for body, field in bad_changes:
        refused = admin.patch(path, json=body)
        assert refused.status_code == 400, (body, refused.text)
        assert field in [f["field"] for f in refused.json()["error"]["fields"]], refused.text
    assert admin.get(path).json() == before
    bad_users: list[tuple[dict[str, Any], str]] = [
        ({"time_zone": "Europe/Londres"}, "time_zone"),
        ({"quiet_hours": {"start": "22:60", "end": "07:00"}}, "quiet_hours.start"),
    ]
    for body, field in bad_users:
        refused = admin.post("/api/v1/users/", json={**SEED_USER, **body, "email": "q@example.com"})
        assert refused.status_code == 400, (body, refused.text)
        assert field in [f["field"] for f in refused.json()["error"]["fields"]], refused.text

    # null: back to the gateway's default.
    cleared = admin.patch(path, json={"quiet_hours": None})
    assert cleared.status_code == 200, cleared.text
    assert admin.get(path).json()["quiet_hours"] is None
