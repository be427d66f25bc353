"""Registering status callback endpoints over REST: scope callbacks:write, each client its
own (another's is 404), admin any; where callbacks may go (https to a public host: this
gateway does not allow loopback); a bounded number per client. Posting them is
`tests/deliveryd/test_callbacks_e2e.py`."""

from __future__ import annotations

from typing import Any

import httpx

from tests.gateway.http.conftest import Keys, bearer, create_key
from tests.support.processes import ServiceProcess

HOOK = "https://hooks.example.com/herald"


def _key(edge: ServiceProcess, client: str) -> dict[str, str]:
    return bearer(create_key(edge, f"cb-{client}", "callbacks:write", client)["key"])


def _register(http: httpx.Client, headers: dict[str, str], **body: Any) -> httpx.Response:
    return http.post("/api/v1/callbacks/", json={"url": HOOK, **body}, headers=headers)


def test_a_client_registers_lists_rotates_and_deletes_its_own(
    http: httpx.Client, edge: ServiceProcess
) -> None:
    mine = _key(edge, "cb-owner")
    created = _register(http, mine, events="final", description="orders service")
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["secret"].startswith("whsec_") and endpoint["client_id"] == "cb-owner"
    assert (endpoint["events"], endpoint["url"]) == ("final", HOOK)

    listed = http.get("/api/v1/callbacks/", headers=mine).json()["items"]
    assert [e["id"] for e in listed] == [endpoint["id"]]
    assert "secret" not in listed[0]  # shown once, at registration
    one = http.get(f"/api/v1/callbacks/{endpoint['id']}", headers=mine)
    assert one.status_code == 200 and "secret" not in one.json()

    rotated = http.post(f"/api/v1/callbacks/{endpoint['id']}/rotate-secret", json={}, headers=mine)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"] not in ("", endpoint["secret"])

    assert http.delete(f"/api/v1/callbacks/{endpoint['id']}", headers=mine).status_code == 204
    assert http.get(f"/api/v1/callbacks/{endpoint['id']}", headers=mine).status_code == 404


def test_another_clients_endpoint_is_not_there_but_admin_sees_it(
    http: httpx.Client, edge: ServiceProcess, keys: Keys
) -> None:
    owner, stranger = _key(edge, "cb-a"), _key(edge, "cb-b")
    endpoint = _register(http, owner).json()
    path = f"/api/v1/callbacks/{endpoint['id']}"
    for method, url in (("GET", path), ("DELETE", path), ("POST", f"{path}/rotate-secret")):
        body: dict[str, int] | None = {} if method == "POST" else None
        answer = http.request(method, url, headers=stranger, json=body)
        assert answer.status_code == 404, (method, answer.text)
    assert endpoint["id"] not in [
        e["id"] for e in http.get("/api/v1/callbacks/", headers=stranger).json()["items"]
    ]
    admin = bearer(keys.admin)
    assert http.get(path, headers=admin).status_code == 200
    for_b = _register(http, admin, client_id="cb-b")
    assert for_b.status_code == 201 and for_b.json()["client_id"] == "cb-b"
    # A client naming another client is refused as if that client did not exist.
    assert _register(http, owner, client_id="cb-b").status_code == 404


def test_bad_registrations_name_the_field_and_change_nothing(
    http: httpx.Client, edge: ServiceProcess, keys: Keys
) -> None:
    mine = _key(edge, "cb-bad")
    for url in (
        "http://hooks.example.com/x",  # not https
        "https://127.0.0.1/x",  # loopback: not allowed on this gateway
        "https://169.254.169.254/latest/meta-data",  # the cloud metadata address
        "https://10.0.0.8/x",  # private
        "https://printer.local/x",  # a local name
    ):
        answer = http.post("/api/v1/callbacks/", json={"url": url}, headers=mine)
        assert answer.status_code == 400, (url, answer.text)
        assert answer.json()["error"]["fields"][0]["field"] == "url", answer.text
    answer = _register(http, mine, events="sometimes")
    assert answer.status_code == 400 and "events" in answer.text
    assert http.get("/api/v1/callbacks/", headers=mine).json()["items"] == []
    # Sending or reading notifications is not enough to register callbacks.
    assert _register(http, bearer(keys.send_read)).status_code == 403


def test_a_client_has_a_bounded_number_of_endpoints(
    http: httpx.Client, edge: ServiceProcess
) -> None:
    mine = _key(edge, "cb-many")
    made = [_register(http, mine).status_code for _ in range(10)]
    assert made == [201] * 10
    assert _register(http, mine).status_code == 429
