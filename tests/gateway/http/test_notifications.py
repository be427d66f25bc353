"""`/api/v1/notifications`: the seed's payload exactly, idempotency, errors, correlation."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.gateway.http.conftest import (
    CLIENT,
    Keys,
    bearer,
    fail_every_channel,
    log_lines,
    stored,
)
from tests.support.processes import ServiceProcess


def seed_notification(user_id: str, **changes: Any) -> dict[str, Any]:
    """The seed's payload, as written in seed 004."""
    payload = {
        "notification_type": "email",
        "user_id": user_id,
        "template_code": "auth/welcome",
        "variables": {"name": "str", "link": "url"},
        "request_id": "str",
        "priority": 1,
        "metadata": {},
    }
    payload.update(changes)
    return payload


def test_seed_payload_is_accepted_as_written(
    http: httpx.Client, keys: Keys, seeded: dict[str, Any], edge: ServiceProcess
) -> None:
    body = seed_notification(seeded["user"]["id"], request_id=f"seed-{uuid.uuid4()}")
    answer = http.post("/api/v1/notifications/", json=body, headers=bearer(keys.send))
    assert answer.status_code == 202, answer.text
    assert answer.json() == {
        "notification_id": answer.json()["notification_id"],
        "status": "pending",
        "duplicate": False,
    }
    sent = stored(edge, answer.json()["notification_id"])
    assert sent.user_id == seeded["user"]["id"]
    assert sent.template_code == "auth/welcome"
    assert sent.priority == 1  # PRIORITY_LOW
    assert sent.channel == 1  # CHANNEL_EMAIL
    assert sent.client_id == CLIENT


def accepted_log(edge: ServiceProcess, notification_id: str) -> dict[str, Any]:
    [line] = [
        line
        for line in log_lines(edge, "notification accepted")
        if line.get("notification_id") == notification_id
    ]
    return line


def test_request_id_becomes_the_correlation_id_and_client_id_is_the_key(
    http: httpx.Client, keys: Keys, seeded: dict[str, Any], edge: ServiceProcess
) -> None:
    request_id = f"corr-{uuid.uuid4()}"
    body = seed_notification(seeded["user"]["id"], request_id=request_id)
    answer = http.post("/api/v1/notifications/", json=body, headers=bearer(keys.send))
    assert answer.status_code == 202, answer.text
    assert answer.headers["x-request-id"] == request_id
    notification_id = answer.json()["notification_id"]
    assert accepted_log(edge, notification_id)["correlation_id"] == request_id
    assert stored(edge, notification_id).client_id == CLIENT


def test_x_request_id_header_wins_and_is_echoed(
    http: httpx.Client, keys: Keys, seeded: dict[str, Any], edge: ServiceProcess
) -> None:
    body = seed_notification(seeded["user"]["id"], request_id=f"body-{uuid.uuid4()}")
    headers = {**bearer(keys.send), "X-Request-ID": "trace-abc-123"}
    answer = http.post("/api/v1/notifications/", json=body, headers=headers)
    assert answer.status_code == 202
    assert answer.headers["x-request-id"] == "trace-abc-123"
    accepted = accepted_log(edge, answer.json()["notification_id"])
    assert accepted["correlation_id"] == "trace-abc-123"
    # Every answer carries one, errors included.
    refused = http.get("/api/v1/notifications/")
    assert refused.status_code == 401
    assert refused.headers["x-request-id"]


def test_same_request_id_same_payload_is_the_same_notification(
    http: httpx.Client, keys: Keys, seeded: dict[str, Any]
) -> None:
    body = seed_notification(seeded["user"]["id"], request_id=f"idem-{uuid.uuid4()}")
    first = http.post("/api/v1/notifications/", json=body, headers=bearer(keys.send))
    again = http.post("/api/v1/notifications/", json=body, headers=bearer(keys.send))
    assert first.status_code == again.status_code == 202
    assert again.json()["notification_id"] == first.json()["notification_id"]
    assert again.json()["duplicate"] is True


def test_conflicting_request_id_reuse_is_409(
    http: httpx.Client, keys: Keys, seeded: dict[str, Any]
) -> None:
    request_id = f"conflict-{uuid.uuid4()}"
    body = seed_notification(seeded["user"]["id"], request_id=request_id)
    assert http.post("/api/v1/notifications/", json=body, headers=bearer(keys.send)).is_success
    other = {**body, "variables": {"name": "someone else", "link": "url"}}
    answer = http.post("/api/v1/notifications/", json=other, headers=bearer(keys.send))
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "FAILED_PRECONDITION"
    assert request_id in answer.json()["error"]["message"]


def test_unknown_user_is_404(http: httpx.Client, keys: Keys, seeded: dict[str, Any]) -> None:
    body = seed_notification(str(uuid.uuid4()), request_id=f"nouser-{uuid.uuid4()}")
    answer = http.post("/api/v1/notifications/", json=body, headers=bearer(keys.send))
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "NOT_FOUND"


def test_missing_template_variable_is_400_naming_it(
    http: httpx.Client, keys: Keys, seeded: dict[str, Any]
) -> None:
    body = seed_notification(seeded["user"]["id"], variables={"name": "Ada"}, request_id=None)
    answer = http.post("/api/v1/notifications/", json=body, headers=bearer(keys.send))
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "INVALID_ARGUMENT"
    [field] = error["fields"]
    assert field["field"] == "variables.link"
    assert field["description"].startswith("is required by the template")
    assert "variables.link" in error["message"]


def test_edge_validation_names_fields_and_refuses_unknown_ones(
    http: httpx.Client, keys: Keys, seeded: dict[str, Any]
) -> None:
    body = seed_notification(seeded["user"]["id"], priority=9, colour="blue")
    del body["notification_type"]
    answer = http.post("/api/v1/notifications/", json=body, headers=bearer(keys.send))
    assert answer.status_code == 400
    fields = {f["field"]: f["description"] for f in answer.json()["error"]["fields"]}
    assert fields["notification_type"] == "required"
    assert "priority" in fields
    assert fields["colour"] == "unknown field 'colour'"


def test_get_and_list_notifications(http: httpx.Client, keys: Keys, seeded: dict[str, Any]) -> None:
    body = seed_notification(seeded["user"]["id"], notification_type="push", request_id=None)
    sent = http.post("/api/v1/notifications/", json=body, headers=bearer(keys.send)).json()
    got = http.get(f"/api/v1/notifications/{sent['notification_id']}", headers=bearer(keys.read))
    assert got.status_code == 200, got.text
    notification = got.json()
    assert notification["id"] == sent["notification_id"]
    assert notification["status"] == "pending"
    assert notification["notification_type"] == "push"
    assert notification["priority"] == 1
    assert notification["message_type"] == "transactional"
    assert notification["attempts"] == []
    listed = http.get(
        "/api/v1/notifications/",
        params={"user_id": seeded["user"]["id"], "page_size": 500},
        headers=bearer(keys.read),
    )
    assert listed.status_code == 200
    assert sent["notification_id"] in {n["id"] for n in listed.json()["items"]}
    missing = http.get(f"/api/v1/notifications/{uuid.uuid4()}", headers=bearer(keys.read))
    assert missing.status_code == 404


def test_retry_needs_a_failed_notification(
    http: httpx.Client, edge: ServiceProcess, keys: Keys, seeded: dict[str, Any]
) -> None:
    body = seed_notification(seeded["user"]["id"], request_id=None)
    sent = http.post("/api/v1/notifications/", json=body, headers=bearer(keys.send)).json()
    path = f"/api/v1/notifications/{sent['notification_id']}/retry"
    assert http.post(path, headers=bearer(keys.admin)).status_code == 409
    fail_every_channel(edge, sent["notification_id"])
    # Another client's retry finds nothing there.
    assert http.post(path, headers=bearer(keys.other)).status_code == 404
    retried = http.post(path, json={"reason": "mailbox fixed"}, headers=bearer(keys.send))
    assert retried.status_code == 202, retried.text
    assert retried.json()["status"] == "pending"
    assert retried.json()["retries"][0]["reason"] == "mailbox fixed"
    assert retried.json()["retries"][0]["requested_by"].startswith("apikey:")


def test_batch_answers_per_item(http: httpx.Client, keys: Keys, seeded: dict[str, Any]) -> None:
    good = seed_notification(seeded["user"]["id"], request_id=None)
    no_user = seed_notification(str(uuid.uuid4()), request_id=None)
    no_var = seed_notification(seeded["user"]["id"], variables={}, request_id=None)
    answer = http.post(
        "/api/v1/notifications/batch",
        json={"notifications": [good, no_user, no_var]},
        headers=bearer(keys.send),
    )
    assert answer.status_code == 202, answer.text
    result = answer.json()
    assert (result["accepted"], result["rejected"]) == (1, 2)
    first, second, third = result["results"]
    assert first["status"] == "pending" and first["error"] is None
    assert second["error"]["code"] == "NOT_FOUND"
    assert {f["field"] for f in third["error"]["fields"]} == {
        "notifications[2].variables.link",
        "notifications[2].variables.name",
    }


def test_a_template_code_refused_names_the_rest_field(
    http: httpx.Client, keys: Keys, seeded: dict[str, Any]
) -> None:
    body = seed_notification(seeded["user"]["id"], template_code="Auth/Welcome", request_id=None)
    answer = http.post("/api/v1/notifications/", json=body, headers=bearer(keys.send))
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "INVALID_ARGUMENT"
    assert [f["field"] for f in error["fields"]] == ["template_code"]
