"""The suppression list through its two doors on the real gateway process: gRPC
SuppressionService (the service token plus an admin API key) and REST `GET
/api/v1/suppressions/{id}`. Entries are seeded with the store's own `add`, into the
edge's database; each test suppresses contact points of its own."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc
import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from gateway.callers import API_KEY_HEADER
from gateway.receipts.servicer import SERVICE_NAME
from gateway.store import suppressions
from gateway.wire import CHANNELS_BY_NAME
from herald.v1 import common_pb2, suppression_pb2, suppression_pb2_grpc
from mesh.interceptors import field_violations
from tests.gateway.http.conftest import Keys, bearer
from tests.support.infra import POSTGRES_URL, SERVICE_TOKEN
from tests.support.processes import ROOT, SERVING, ServiceProcess, health_status

GRPCURL = str(ROOT / ".venv" / "bin" / "grpcurl")

if TYPE_CHECKING:
    Stub = suppression_pb2_grpc.SuppressionServiceAsyncStub


async def _seed(edge: ServiceProcess, channel: str, contact: str, reason: str = "bounced") -> str:
    """Suppresses `contact` as a receipt would; the new entry's id."""
    url = f"{POSTGRES_URL}/{edge.env['HERALD_GATEWAY_DATABASE']}"
    async with await psycopg.AsyncConnection.connect(
        url, autocommit=True, row_factory=dict_row
    ) as conn:
        added = await suppressions.add(
            conn,
            channel=CHANNELS_BY_NAME[channel],
            contact=contact,
            reason=reason,
            detail="550 5.1.1 mailbox unavailable",
            provider="sendgrid",
            receipt_id=None,
            notification_id=None,
        )
        assert added
        cur = await conn.execute(
            """SELECT id FROM suppressions
               WHERE channel = %s AND contact = %s AND remove_time IS NULL""",
            (CHANNELS_BY_NAME[channel], contact),
        )
        row = await cur.fetchone()
    assert row is not None
    return str(row["id"])


def _email() -> str:
    return f"bounced-{uuid.uuid4().hex[:10]}@example.com"


def _as(key: str) -> tuple[tuple[str, str], ...]:
    return ((API_KEY_HEADER, key),)


@pytest.fixture
async def stub(edge: ServiceProcess) -> AsyncIterator[Stub]:
    """SuppressionService over a channel carrying the service token (and no API key)."""
    channel = edge.channel()
    yield suppression_pb2_grpc.SuppressionServiceStub(channel)
    await channel.close()


async def _refused(call: Any, request: Any, *metadata: tuple[str, str]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call(request, metadata=metadata, timeout=10)
    return refused.value


async def test_lists_filters_and_pages_newest_first(
    edge: ServiceProcess, stub: Stub, keys: Keys
) -> None:
    email, phone = _email(), f"+1415555{uuid.uuid4().int % 10_000:04d}"
    lifted = []
    for _ in range(2):  # two lifted entries, then an active one, all of one address
        lifted.append(await _seed(edge, "email", email))
        await stub.RemoveSuppression(
            suppression_pb2.RemoveSuppressionRequest(id=lifted[-1]), metadata=_as(keys.admin)
        )
    active = await _seed(edge, "email", email)
    by_sms = await _seed(edge, "sms", phone, reason="opted_out")

    # A contact point is looked up as it is kept: an email address in any case.
    only_active = await stub.ListSuppressions(
        suppression_pb2.ListSuppressionsRequest(contact=email.upper()), metadata=_as(keys.admin)
    )
    [entry] = only_active.suppressions
    assert (entry.id, entry.channel, entry.contact, entry.reason) == (
        active,
        common_pb2.CHANNEL_EMAIL,
        email,
        "bounced",
    )
    assert (entry.provider, entry.detail) == ("sendgrid", "550 5.1.1 mailbox unavailable")
    assert entry.HasField("create_time") and not entry.HasField("remove_time")
    assert only_active.next_page_token == ""

    # With the lifted ones, two a page, newest first.
    request = suppression_pb2.ListSuppressionsRequest(
        contact=email, include_removed=True, page_size=2
    )
    first = await stub.ListSuppressions(request, metadata=_as(keys.admin))
    assert [e.id for e in first.suppressions] == [active, lifted[1]]
    assert first.next_page_token
    request.page_token = first.next_page_token
    second = await stub.ListSuppressions(request, metadata=_as(keys.admin))
    assert [e.id for e in second.suppressions] == [lifted[0]]
    assert second.next_page_token == ""

    # By channel: the phone number is on sms, and not on email.
    on_sms = await stub.ListSuppressions(
        suppression_pb2.ListSuppressionsRequest(channel=common_pb2.CHANNEL_SMS, contact=phone),
        metadata=_as(keys.admin),
    )
    assert [(e.id, e.reason) for e in on_sms.suppressions] == [(by_sms, "opted_out")]
    on_email = await stub.ListSuppressions(
        suppression_pb2.ListSuppressionsRequest(channel=common_pb2.CHANNEL_EMAIL, contact=phone),
        metadata=_as(keys.admin),
    )
    assert list(on_email.suppressions) == []
    # Without filters, every active entry: these among them.
    everything = await stub.ListSuppressions(
        suppression_pb2.ListSuppressionsRequest(page_size=500), metadata=_as(keys.admin)
    )
    listed = [e.id for e in everything.suppressions]
    assert {active, by_sms} <= set(listed) and not set(lifted) & set(listed)


async def test_gets_one_entry_and_not_a_missing_one(
    edge: ServiceProcess, stub: Stub, keys: Keys
) -> None:
    entry_id = await _seed(edge, "email", _email())
    got = await stub.GetSuppression(
        suppression_pb2.GetSuppressionRequest(id=entry_id), metadata=_as(keys.admin)
    )
    assert got.suppression.id == entry_id and got.suppression.reason == "bounced"

    missing = await _refused(
        stub.GetSuppression,
        suppression_pb2.GetSuppressionRequest(id=str(uuid.uuid4())),
        *_as(keys.admin),
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND


async def test_a_removal_is_recorded_and_happens_once(
    edge: ServiceProcess, stub: Stub, keys: Keys, http: httpx.Client
) -> None:
    email = _email()
    entry_id = await _seed(edge, "email", email)
    request = suppression_pb2.RemoveSuppressionRequest(id=entry_id, reason="mailbox fixed")
    lifted = (await stub.RemoveSuppression(request, metadata=_as(keys.admin))).suppression
    assert (lifted.id, lifted.remove_reason) == (entry_id, "mailbox fixed")
    assert lifted.HasField("remove_time")
    # Recorded as the key's, as the REST edge records it.
    assert lifted.removed_by.startswith("apikey:") and "test-admin" in lifted.removed_by

    # Lifted: no longer active, still there with the lifted ones, and by id.
    active = await stub.ListSuppressions(
        suppression_pb2.ListSuppressionsRequest(contact=email), metadata=_as(keys.admin)
    )
    assert list(active.suppressions) == []
    with_removed = await stub.ListSuppressions(
        suppression_pb2.ListSuppressionsRequest(contact=email, include_removed=True),
        metadata=_as(keys.admin),
    )
    assert list(with_removed.suppressions) == [lifted]
    got = await stub.GetSuppression(
        suppression_pb2.GetSuppressionRequest(id=entry_id), metadata=_as(keys.admin)
    )
    assert got.suppression == lifted

    again = await _refused(stub.RemoveSuppression, request, *_as(keys.admin))
    assert again.code() == grpc.StatusCode.NOT_FOUND
    # REST agrees: lifting it again is a 404 too.
    rest = await asyncio.to_thread(
        http.delete, f"/api/v1/suppressions/{entry_id}", headers=bearer(keys.admin)
    )
    assert rest.status_code == 404, rest.text


async def test_only_an_admin_key_may_call(edge: ServiceProcess, stub: Stub, keys: Keys) -> None:
    entry_id = await _seed(edge, "email", _email())
    calls = [
        (stub.ListSuppressions, suppression_pb2.ListSuppressionsRequest()),
        (stub.GetSuppression, suppression_pb2.GetSuppressionRequest(id=entry_id)),
        (stub.RemoveSuppression, suppression_pb2.RemoveSuppressionRequest(id=entry_id)),
    ]
    for call, request in calls:
        # The service token alone is an internal service: it lacks admin.
        alone = await _refused(call, request)
        assert alone.code() == grpc.StatusCode.PERMISSION_DENIED, alone.details()
        assert "admin" in (alone.details() or "")
        for key in (keys.operator, keys.read, keys.send):
            lacking = await _refused(call, request, *_as(key))
            assert lacking.code() == grpc.StatusCode.PERMISSION_DENIED
        revoked = await _refused(call, request, *_as(keys.revoked))
        assert revoked.code() == grpc.StatusCode.UNAUTHENTICATED
    # Refused before the request is read: a bad id without a key is still a refusal.
    bad = suppression_pb2.GetSuppressionRequest(id="nope")
    assert (await _refused(stub.GetSuppression, bad)).code() == grpc.StatusCode.PERMISSION_DENIED
    # Nothing was lifted by the refused removals.
    still = await stub.GetSuppression(
        suppression_pb2.GetSuppressionRequest(id=entry_id), metadata=_as(keys.admin)
    )
    assert not still.suppression.HasField("remove_time")

    # Without the service token, nothing at all.
    async with grpc.aio.insecure_channel(edge.address) as bare:
        no_token = await _refused(
            suppression_pb2_grpc.SuppressionServiceStub(bare).ListSuppressions,
            suppression_pb2.ListSuppressionsRequest(),
            *_as(keys.admin),
        )
    assert no_token.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("method", "request_", "field"),
    [
        ("GetSuppression", suppression_pb2.GetSuppressionRequest(id="not-a-uuid"), "id"),
        ("GetSuppression", suppression_pb2.GetSuppressionRequest(), "id"),
        ("RemoveSuppression", suppression_pb2.RemoveSuppressionRequest(id="12345"), "id"),
        (
            "RemoveSuppression",
            suppression_pb2.RemoveSuppressionRequest(id=str(uuid.uuid4()), reason="x" * 501),
            "reason",
        ),
        ("ListSuppressions", suppression_pb2.ListSuppressionsRequest(page_size=-1), "page_size"),
        ("ListSuppressions", suppression_pb2.ListSuppressionsRequest(channel=9), "channel"),  # type: ignore[arg-type]
        (
            "ListSuppressions",
            suppression_pb2.ListSuppressionsRequest(page_token="forged"),
            "page_token",
        ),
        ("ListSuppressions", suppression_pb2.ListSuppressionsRequest(contact="a\x00b"), "contact"),
    ],
)
async def test_bad_arguments_name_their_field(
    stub: Stub, keys: Keys, method: str, request_: Any, field: str
) -> None:
    refused = await _refused(getattr(stub, method), request_, *_as(keys.admin))
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(refused)] == [field]


def test_rest_gets_one_entry_by_id(
    edge: ServiceProcess, http: httpx.Client, admin: httpx.Client, keys: Keys
) -> None:
    email = _email()
    entry_id = asyncio.run(_seed(edge, "email", email, reason="complained"))
    got = admin.get(f"/api/v1/suppressions/{entry_id}")
    assert got.status_code == 200, got.text
    body = got.json()
    [listed] = admin.get("/api/v1/suppressions/", params={"contact": email}).json()["items"]
    assert body == listed
    assert (body["id"], body["channel"], body["contact"], body["reason"]) == (
        entry_id,
        "email",
        email,
        "complained",
    )
    assert body["removed_at"] is None and body["notification_id"] is None

    # Lifted, it is still there, with who lifted it and why.
    lifted = admin.request(
        "DELETE", f"/api/v1/suppressions/{entry_id}", json={"reason": "asked again"}
    )
    assert lifted.status_code == 204, lifted.text
    after = admin.get(f"/api/v1/suppressions/{entry_id}").json()
    assert after["removed_at"] and after["remove_reason"] == "asked again"
    assert after["removed_by"].startswith("apikey:")

    missing_id = uuid.uuid4()
    missing = admin.get(f"/api/v1/suppressions/{missing_id}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NOT_FOUND"
    assert str(missing_id) in missing.json()["error"]["message"]
    refused = http.get(f"/api/v1/suppressions/{entry_id}", headers=bearer(keys.operator))
    assert refused.status_code == 403


def test_grpcurl_finds_and_calls_it_as_docs_receipts_shows(
    edge: ServiceProcess, keys: Keys
) -> None:
    """Reflection and health list the service, and docs/receipts.md's grpcurl call works."""
    email = _email()
    entry_id = asyncio.run(_seed(edge, "email", email))
    assert health_status(edge.grpc_port, SERVICE_NAME) == SERVING

    def grpcurl(*args: str) -> str:
        done = subprocess.run(
            [GRPCURL, "-plaintext", *args], check=False, capture_output=True, text=True, timeout=10
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert SERVICE_NAME in grpcurl(edge.address, "list").split()
    answer = grpcurl(
        "-H",
        f"authorization: Bearer {SERVICE_TOKEN}",
        "-H",
        f"x-herald-api-key: {keys.admin}",
        "-d",
        json.dumps({"channel": "CHANNEL_EMAIL", "contact": email, "include_removed": True}),
        edge.address,
        f"{SERVICE_NAME}/ListSuppressions",
    )
    [entry] = json.loads(answer)["suppressions"]
    assert (entry["id"], entry["channel"], entry["contact"]) == (entry_id, "CHANNEL_EMAIL", email)
