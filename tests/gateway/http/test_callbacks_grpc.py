"""Status callback endpoints through gRPC CallbackService on the real gateway process: the
service token plus an API key (callbacks:write; admin for any client) or an internal
service acting for a client (which may manage that client's endpoints), and a
notification's callbacks with their attempts. The REST twin is `test_callbacks.py`; this
gateway does not allow loopback, so endpoints are https URLs of a public host, which the
callbacks process's dispatcher (run in this process, on the gateway's database) fails to
reach (each attempt recorded)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import httpx
import pytest
from google.protobuf import json_format

from gateway.callbacks.dispatcher import Dispatcher
from gateway.callbacks.servicer import SERVICE_NAME
from gateway.callers import API_KEY_HEADER
from herald.v1 import callback_pb2, callback_pb2_grpc, common_pb2, notification_pb2
from herald.v1 import notification_pb2_grpc as notification_grpc
from mesh import db
from mesh.interceptors import CLIENT_HEADER, field_violations
from mesh.outbound import OutboundRule
from tests.gateway.http.conftest import (
    Keys,
    bearer,
    create_key,
    database_url,
    fail_every_channel,
)
from tests.support.infra import SERVICE_TOKEN
from tests.support.processes import ROOT, SERVING, ServiceProcess, health_status
from tests.support.waits import eventually

GRPCURL = str(ROOT / ".venv" / "bin" / "grpcurl")
HOOK = "https://hooks.example.com/herald"

if TYPE_CHECKING:
    Stub = callback_pb2_grpc.CallbackServiceAsyncStub

Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Writers:
    """callbacks:write keys, each of a client of its own (`cbg-<name>`); `bad` also reads
    notifications."""

    owner: str
    stranger: str
    bad: str


@pytest.fixture(scope="module")
def writers(edge: ServiceProcess) -> Writers:
    return Writers(
        **{
            name: create_key(edge, f"cbg-{name}", scopes, f"cbg-{name}")["key"]
            for name, scopes in (
                ("owner", "callbacks:write"),
                ("stranger", "callbacks:write"),
                ("bad", "callbacks:write,notifications:read"),
            )
        }
    )


@pytest.fixture
async def posting(edge: ServiceProcess) -> AsyncIterator[None]:
    """What `python -m gateway callbacks` runs, its Dispatcher, here in the test's process
    on the gateway's database (the gateway posts nothing; the process itself is tested in
    tests/deliveryd/test_callbacks_e2e.py)."""
    pool = await db.open_pool(database_url(edge), max_size=2)
    dispatcher = Dispatcher(
        pool,
        rule=OutboundRule(allow_loopback=False),
        timeout=5,
        retry_for=86400,
        backoff_base=1,
        backoff_max=3600,
        interval=0.05,
        concurrency=4,
        per_endpoint=2,
        grace=1,
    )
    task = asyncio.create_task(dispatcher.run())
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await pool.close()


def _as(key: str) -> Metadata:
    return ((API_KEY_HEADER, key),)


def _for(client: str) -> Metadata:
    """An internal service acting for `client`."""
    return ((CLIENT_HEADER, client),)


@pytest.fixture
async def stub(edge: ServiceProcess) -> AsyncIterator[Stub]:
    """CallbackService over a channel carrying the service token (and no client)."""
    channel = edge.channel()
    yield callback_pb2_grpc.CallbackServiceStub(channel)
    await channel.close()


async def _refused(call: Any, request: Any, metadata: Metadata = ()) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call(request, metadata=metadata, timeout=10)
    return refused.value


async def _create(
    stub: Stub, metadata: Metadata, **fields: Any
) -> callback_pb2.CreateCallbackResponse:
    request = callback_pb2.CreateCallbackRequest(url=HOOK, **fields)
    created: callback_pb2.CreateCallbackResponse = await stub.CreateCallback(
        request, metadata=metadata, timeout=10
    )
    return created


async def test_a_client_creates_lists_gets_rotates_and_deletes_its_own(
    stub: Stub, writers: Writers, http: httpx.Client
) -> None:
    mine = _as(writers.owner)
    created = await _create(
        stub, mine, events=callback_pb2.CALLBACK_EVENTS_FINAL, description="orders service"
    )
    endpoint = created.endpoint
    assert created.secret.startswith("whsec_")
    assert (endpoint.client_id, endpoint.url, endpoint.events, endpoint.description) == (
        "cbg-owner",
        HOOK,
        callback_pb2.CALLBACK_EVENTS_FINAL,
        "orders service",
    )
    assert endpoint.HasField("create_time") and not endpoint.HasField("failing_since")
    uuid.UUID(endpoint.id)

    listed = await stub.ListCallbacks(callback_pb2.ListCallbacksRequest(), metadata=mine)
    assert list(listed.endpoints) == [endpoint]  # no secret: the message has none
    got = await stub.GetCallback(callback_pb2.GetCallbackRequest(id=endpoint.id), metadata=mine)
    assert got.endpoint == endpoint
    # REST is the other door to the same endpoint.
    rest = await asyncio.to_thread(
        http.get, f"/api/v1/callbacks/{endpoint.id}", headers=bearer(writers.owner)
    )
    assert rest.status_code == 200 and rest.json()["events"] == "final", rest.text

    # Rotated: a new secret each time; the overlap is optional, and 0 is a value.
    rotated = await stub.RotateCallbackSecret(
        callback_pb2.RotateCallbackSecretRequest(id=endpoint.id), metadata=mine
    )
    at_once = await stub.RotateCallbackSecret(
        callback_pb2.RotateCallbackSecretRequest(id=endpoint.id, overlap_seconds=0),
        metadata=mine,
    )
    assert rotated.endpoint == endpoint == at_once.endpoint
    assert len({created.secret, rotated.secret, at_once.secret}) == 3

    deleted = await stub.DeleteCallback(
        callback_pb2.DeleteCallbackRequest(id=endpoint.id), metadata=mine
    )
    assert deleted.cancelled_callbacks == 0
    gone = await _refused(stub.GetCallback, callback_pb2.GetCallbackRequest(id=endpoint.id), mine)
    assert gone.code() == grpc.StatusCode.NOT_FOUND and endpoint.id in (gone.details() or "")
    again = await _refused(
        stub.DeleteCallback, callback_pb2.DeleteCallbackRequest(id=endpoint.id), mine
    )
    assert again.code() == grpc.StatusCode.NOT_FOUND
    after = await stub.ListCallbacks(callback_pb2.ListCallbacksRequest(), metadata=mine)
    assert list(after.endpoints) == []


async def test_another_clients_endpoint_is_not_found_but_admin_acts_for_any(
    stub: Stub, writers: Writers, keys: Keys
) -> None:
    owner, stranger, admin = _as(writers.owner), _as(writers.stranger), _as(keys.admin)
    endpoint = (await _create(stub, owner)).endpoint
    for call, request in (
        (stub.GetCallback, callback_pb2.GetCallbackRequest(id=endpoint.id)),
        (stub.DeleteCallback, callback_pb2.DeleteCallbackRequest(id=endpoint.id)),
        (stub.RotateCallbackSecret, callback_pb2.RotateCallbackSecretRequest(id=endpoint.id)),
        # Naming another client is refused as if that client did not exist.
        (stub.CreateCallback, callback_pb2.CreateCallbackRequest(url=HOOK, client_id="cbg-owner")),
        (stub.ListCallbacks, callback_pb2.ListCallbacksRequest(client_id="cbg-owner")),
    ):
        refused = await _refused(call, request, stranger)
        assert refused.code() == grpc.StatusCode.NOT_FOUND, (request, refused.details())
    theirs = await stub.ListCallbacks(callback_pb2.ListCallbacksRequest(), metadata=stranger)
    assert endpoint.id not in [e.id for e in theirs.endpoints]
    # Nothing the stranger tried changed it.
    still = await stub.GetCallback(callback_pb2.GetCallbackRequest(id=endpoint.id), metadata=owner)
    assert still.endpoint == endpoint

    # Admin reads it, and registers and lists for a client it names, or for every client.
    got = await stub.GetCallback(callback_pb2.GetCallbackRequest(id=endpoint.id), metadata=admin)
    assert got.endpoint == endpoint
    for_stranger = (await _create(stub, admin, client_id="cbg-stranger")).endpoint
    assert for_stranger.client_id == "cbg-stranger"
    theirs = await stub.ListCallbacks(callback_pb2.ListCallbacksRequest(), metadata=stranger)
    assert for_stranger in theirs.endpoints
    named = await stub.ListCallbacks(
        callback_pb2.ListCallbacksRequest(client_id="cbg-stranger"), metadata=admin
    )
    assert {e.client_id for e in named.endpoints} == {"cbg-stranger"}
    every = await stub.ListCallbacks(callback_pb2.ListCallbacksRequest(), metadata=admin)
    assert {endpoint.id, for_stranger.id} <= {e.id for e in every.endpoints}
    for made in (endpoint, for_stranger):
        await stub.DeleteCallback(callback_pb2.DeleteCallbackRequest(id=made.id), metadata=admin)


async def test_an_internal_service_manages_its_clients_endpoints_only(
    stub: Stub, writers: Writers
) -> None:
    service = _for("cbg-svc")
    endpoint = (await _create(stub, service)).endpoint
    assert (endpoint.client_id, endpoint.events) == ("cbg-svc", callback_pb2.CALLBACK_EVENTS_ALL)
    listed = await stub.ListCallbacks(callback_pb2.ListCallbacksRequest(), metadata=service)
    assert [e.id for e in listed.endpoints] == [endpoint.id]
    rotated = await stub.RotateCallbackSecret(
        callback_pb2.RotateCallbackSecretRequest(id=endpoint.id, overlap_seconds=3600),
        metadata=service,
    )
    assert rotated.secret.startswith("whsec_")

    # Another client's endpoint, or acting for another client by name: not there.
    owners = (await _create(stub, _as(writers.owner))).endpoint
    refused = await _refused(
        stub.GetCallback, callback_pb2.GetCallbackRequest(id=owners.id), service
    )
    assert refused.code() == grpc.StatusCode.NOT_FOUND
    refused = await _refused(
        stub.CreateCallback,
        callback_pb2.CreateCallbackRequest(url=HOOK, client_id="cbg-owner"),
        service,
    )
    assert refused.code() == grpc.StatusCode.NOT_FOUND
    # A service acting for another client sees none of them.
    other = await stub.ListCallbacks(callback_pb2.ListCallbacksRequest(), metadata=_for("cbg-x"))
    assert list(other.endpoints) == []
    for made, by in ((endpoint, service), (owners, _as(writers.owner))):
        await stub.DeleteCallback(callback_pb2.DeleteCallbackRequest(id=made.id), metadata=by)


async def test_a_client_has_a_bounded_number_of_endpoints(stub: Stub) -> None:
    service = _for(f"cbg-many-{uuid.uuid4().hex[:6]}")
    for _ in range(10):  # HERALD_CALLBACK_MAX_ENDPOINTS' default
        await _create(stub, service)
    over = await _refused(
        stub.CreateCallback, callback_pb2.CreateCallbackRequest(url=HOOK), service
    )
    assert over.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, over.details()


@pytest.mark.parametrize(
    ("method", "request_", "field"),
    [
        ("CreateCallback", callback_pb2.CreateCallbackRequest(), "url"),
        (
            "CreateCallback",
            callback_pb2.CreateCallbackRequest(url="http://hooks.example.com/x"),
            "url",
        ),
        ("CreateCallback", callback_pb2.CreateCallbackRequest(url="https://127.0.0.1/x"), "url"),
        ("CreateCallback", callback_pb2.CreateCallbackRequest(url="https://10.0.0.8/x"), "url"),
        (
            "CreateCallback",
            callback_pb2.CreateCallbackRequest(url=f"{HOOK}/{'x' * 2000}"),
            "url",
        ),
        ("CreateCallback", callback_pb2.CreateCallbackRequest(url=HOOK, events=9), "events"),  # type: ignore[arg-type]
        (
            "CreateCallback",
            callback_pb2.CreateCallbackRequest(url=HOOK, description="x" * 501),
            "description",
        ),
        ("GetCallback", callback_pb2.GetCallbackRequest(id="nope"), "id"),
        ("DeleteCallback", callback_pb2.DeleteCallbackRequest(), "id"),
        ("RotateCallbackSecret", callback_pb2.RotateCallbackSecretRequest(id="12345"), "id"),
        (
            "RotateCallbackSecret",
            callback_pb2.RotateCallbackSecretRequest(id=str(uuid.uuid4()), overlap_seconds=-1),
            "overlap_seconds",
        ),
        (
            "RotateCallbackSecret",
            callback_pb2.RotateCallbackSecretRequest(id=str(uuid.uuid4()), overlap_seconds=604801),
            "overlap_seconds",
        ),
        (
            "ListNotificationCallbacks",
            callback_pb2.ListNotificationCallbacksRequest(notification_id="x"),
            "notification_id",
        ),
    ],
)
async def test_bad_arguments_name_their_field(
    stub: Stub, writers: Writers, method: str, request_: Any, field: str
) -> None:
    refused = await _refused(getattr(stub, method), request_, _as(writers.bad))
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.details()
    assert [f for f, _ in field_violations(refused)] == [field]
    listed = await stub.ListCallbacks(
        callback_pb2.ListCallbacksRequest(), metadata=_as(writers.bad)
    )
    assert list(listed.endpoints) == []  # nothing was registered


async def test_an_admin_names_a_client_id_that_can_be_one(stub: Stub, keys: Keys) -> None:
    refused = await _refused(
        stub.CreateCallback,
        callback_pb2.CreateCallbackRequest(url=HOOK, client_id="not a client"),
        _as(keys.admin),
    )
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(refused)] == ["client_id"]


async def test_without_the_scope_a_call_is_refused(
    edge: ServiceProcess, stub: Stub, writers: Writers, keys: Keys
) -> None:
    endpoint = (await _create(stub, _as(writers.owner))).endpoint
    managing = [
        (stub.CreateCallback, callback_pb2.CreateCallbackRequest(url=HOOK)),
        (stub.ListCallbacks, callback_pb2.ListCallbacksRequest()),
        (stub.GetCallback, callback_pb2.GetCallbackRequest(id=endpoint.id)),
        (stub.DeleteCallback, callback_pb2.DeleteCallbackRequest(id=endpoint.id)),
        (stub.RotateCallbackSecret, callback_pb2.RotateCallbackSecretRequest(id=endpoint.id)),
        # Refused before the request is read: a bad id is still a refusal.
        (stub.GetCallback, callback_pb2.GetCallbackRequest(id="nope")),
    ]
    # Sending and reading notifications, or reading everything, is not managing callbacks.
    for key in (keys.send_read, keys.operator):
        for call, request in managing:
            lacking = await _refused(call, request, _as(key))
            assert lacking.code() == grpc.StatusCode.PERMISSION_DENIED, lacking.details()
            assert "callbacks:write" in (lacking.details() or "")
    history = callback_pb2.ListNotificationCallbacksRequest(notification_id="nope")
    lacking = await _refused(stub.ListNotificationCallbacks, history, _as(writers.owner))
    assert lacking.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "notifications:read" in (lacking.details() or "")
    revoked = await _refused(
        stub.ListCallbacks, callback_pb2.ListCallbacksRequest(), _as(keys.revoked)
    )
    assert revoked.code() == grpc.StatusCode.UNAUTHENTICATED
    # Nothing was deleted or rotated by the refused calls.
    still = await stub.GetCallback(
        callback_pb2.GetCallbackRequest(id=endpoint.id), metadata=_as(writers.owner)
    )
    assert still.endpoint == endpoint

    # Without the service token, nothing at all.
    async with grpc.aio.insecure_channel(edge.address) as bare:
        no_token = await _refused(
            callback_pb2_grpc.CallbackServiceStub(bare).ListCallbacks,
            callback_pb2.ListCallbacksRequest(),
            _as(keys.admin),
        )
    assert no_token.code() == grpc.StatusCode.UNAUTHENTICATED
    await stub.DeleteCallback(
        callback_pb2.DeleteCallbackRequest(id=endpoint.id), metadata=_as(writers.owner)
    )


async def _send(edge: ServiceProcess, client: str, user_id: str) -> str:
    """A notification sent by an internal service acting for `client`; its id."""
    request = notification_pb2.SendRequest(
        user_id=user_id,
        channel=common_pb2.CHANNEL_EMAIL,
        template_code="auth/welcome",
        request_id=f"cbg-{uuid.uuid4()}",
    )
    request.variables.update({"name": "Ada", "link": "https://example.com"})
    request.metadata.update({"order": "42"})
    async with edge.channel(client) as channel:
        sent = await notification_grpc.NotificationServiceStub(channel).Send(request, timeout=10)
    return sent.notification_id


@pytest.mark.usefixtures("posting")
async def test_a_notifications_callbacks_with_their_attempts_and_no_one_elses(
    edge: ServiceProcess, stub: Stub, keys: Keys, seeded: dict[str, Any]
) -> None:
    client = f"cbg-hist-{uuid.uuid4().hex[:6]}"
    service = _for(client)
    endpoint = (await _create(stub, service)).endpoint
    nid = await _send(edge, client, seeded["user"]["id"])
    await asyncio.to_thread(fail_every_channel, edge, nid, client)
    request = callback_pb2.ListNotificationCallbacksRequest(notification_id=nid)

    async def attempted() -> callback_pb2.CallbackEvent | None:
        answer = await stub.ListNotificationCallbacks(request, metadata=service, timeout=10)
        [event] = answer.events  # pending → failed, to the one endpoint
        return event if event.attempts else None

    # The dispatcher posts at once, and cannot reach the host: one attempt, recorded.
    await eventually(attempted)
    event = await attempted()
    assert event is not None
    assert (event.endpoint_id, event.status) == (
        endpoint.id,
        common_pb2.NOTIFICATION_STATUS_FAILED,
    )
    attempt = event.attempts[0]
    assert (attempt.url, attempt.status_code) == (HOOK, 0) and attempt.error
    assert attempt.HasField("duration") and attempt.HasField("attempt_time")
    # Retried later, unless something answered the name with a final 4xx.
    assert event.state in (callback_pb2.CALLBACK_STATE_PENDING, callback_pb2.CALLBACK_STATE_FAILED)
    assert event.HasField("next_attempt_time") == (
        event.state == callback_pb2.CALLBACK_STATE_PENDING
    )
    body = event.body
    assert (body.id, body.type, body.notification_id) == (event.id, "notification.status", nid)
    assert (body.status, body.previous_status, body.channel) == (
        common_pb2.NOTIFICATION_STATUS_FAILED,
        common_pb2.NOTIFICATION_STATUS_PENDING,
        common_pb2.CHANNEL_EMAIL,
    )
    assert body.request_id.startswith("cbg-") and body.HasField("occur_time")
    assert json_format.MessageToDict(body.metadata) == {"order": "42"}

    # Another client's notification is not there, as a missing one is not; those who read
    # every client's see it.
    for metadata in (_as(keys.other), _as(keys.read), _for("tests")):
        refused = await _refused(stub.ListNotificationCallbacks, request, metadata)
        assert refused.code() == grpc.StatusCode.NOT_FOUND, metadata
    missing = callback_pb2.ListNotificationCallbacksRequest(notification_id=str(uuid.uuid4()))
    refused = await _refused(stub.ListNotificationCallbacks, missing, service)
    assert refused.code() == grpc.StatusCode.NOT_FOUND
    for reader in (keys.admin, keys.operator):
        seen = await stub.ListNotificationCallbacks(request, metadata=_as(reader))
        assert [e.id for e in seen.events] == [event.id]

    await stub.DeleteCallback(callback_pb2.DeleteCallbackRequest(id=endpoint.id), metadata=service)


def test_grpcurl_finds_and_calls_it_as_the_docs_show(edge: ServiceProcess) -> None:
    """Reflection and health list the service, and docs/callbacks.md's call works."""
    assert health_status(edge.grpc_port, SERVICE_NAME) == SERVING
    key = create_key(edge, "cbg-grpcurl", "callbacks:write", "cbg-grpcurl")["key"]

    def grpcurl(*args: str) -> str:
        done = subprocess.run(
            [GRPCURL, "-plaintext", *args], check=False, capture_output=True, text=True, timeout=10
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert SERVICE_NAME in grpcurl(edge.address, "list").split()
    answer = json.loads(
        grpcurl(
            "-H",
            f"authorization: Bearer {SERVICE_TOKEN}",
            "-H",
            f"x-herald-api-key: {key}",
            "-d",
            json.dumps(
                {"url": HOOK, "events": "CALLBACK_EVENTS_FINAL", "description": "orders service"}
            ),
            edge.address,
            f"{SERVICE_NAME}/CreateCallback",
        )
    )
    assert answer["secret"].startswith("whsec_")
    endpoint = answer["endpoint"]
    assert (endpoint["client_id"], endpoint["url"], endpoint["events"]) == (
        "cbg-grpcurl",
        HOOK,
        "CALLBACK_EVENTS_FINAL",
    )
    rotated = json.loads(
        grpcurl(
            "-H",
            f"authorization: Bearer {SERVICE_TOKEN}",
            "-H",
            f"x-herald-api-key: {key}",
            "-d",
            json.dumps({"id": endpoint["id"], "overlap_seconds": 3600}),
            edge.address,
            f"{SERVICE_NAME}/RotateCallbackSecret",
        )
    )
    assert rotated["secret"] not in ("", answer["secret"])
