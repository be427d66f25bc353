"""Web Push endpoints must be https URLs of public hosts (`mesh.outbound`), judged at
registration by syntax alone (no DNS); HERALD_OUTBOUND_ALLOW_LOOPBACK lets this machine in.

Two real userd processes: the module's (the rule as deployed) and one with the loopback
allowance, as the tests of the fake push service run it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from herald.v1 import user_pb2, user_pb2_grpc
from tests.conftest import ServiceFactory
from tests.support.infra import Isolation
from tests.support.processes import ServiceProcess
from tests.userd.helpers import Stub, create_request, invalid_fields, webpush_target

OFF_LIMITS = [
    "https://169.254.169.254/latest/meta-data/",
    "https://[::ffff:169.254.169.254]/latest/meta-data/",
    "https://10.1.2.3/push/1",
    "https://172.16.0.9/push/1",
    "https://192.168.1.1/push/1",
    "https://[fd00::1]/push/1",
    "https://100.64.0.1/push/1",
    "https://metadata.google.internal/computeMetadata/v1/",
    "https://2130706433/push/1",
    "http://push.example.net/push/1",
    "https://user:pw@push.example.net/push/1",
    "https://]",
    "https://[::1/push",
]
LOOPBACK = [
    "https://127.0.0.1:8000/push/1",
    "http://127.0.0.1:8000/push/1",
    "https://[::1]:8000/push/1",
    "https://[::ffff:127.0.0.1]/push/1",
    "https://localhost/push/1",
    "http://localhost:8000/push/1",
]


@pytest.fixture(scope="module")
def loose_userd(service_factory: ServiceFactory, isolation: Isolation) -> Iterator[ServiceProcess]:
    proc = service_factory(
        "userd",
        env={
            "HERALD_USERD_DATABASE": isolation.database("users_loopback"),
            "HERALD_OUTBOUND_ALLOW_LOOPBACK": "true",
        },
    )
    yield proc
    proc.stop()


@pytest.fixture
async def loose(loose_userd: ServiceProcess) -> AsyncIterator[Stub]:
    channel = loose_userd.channel()
    yield user_pb2_grpc.UserServiceStub(channel)
    await channel.close()


async def refusals(stub: Stub, endpoint: str) -> list[str]:
    """The fields CreateUser, AddPushTarget and UpdateUser name for `endpoint`."""
    fine = webpush_target()
    created = await invalid_fields(
        stub.CreateUser(create_request(push_targets=[fine, webpush_target(endpoint)]))
    )
    user = (await stub.CreateUser(create_request())).user
    added = await invalid_fields(
        stub.AddPushTarget(
            user_pb2.AddPushTargetRequest(user_id=user.id, target=webpush_target(endpoint))
        )
    )
    change = user_pb2.User(id=user.id, push_targets=[webpush_target(endpoint)])
    updated = await invalid_fields(
        stub.UpdateUser(
            user_pb2.UpdateUserRequest(user=change, update_mask=FieldMask(paths=["push_targets"]))
        )
    )
    got = [*created, *added, *updated]
    assert all("https URLs of public hosts" in d for d in (created | added | updated).values())
    return got


@pytest.mark.parametrize("endpoint", OFF_LIMITS + LOOPBACK)
async def test_an_endpoint_off_the_public_internet_is_refused_naming_the_field(
    stub: Stub, endpoint: str
) -> None:
    assert await refusals(stub, endpoint) == [
        "push_targets[1].web_push.endpoint",
        "target.web_push.endpoint",
        "user.push_targets[0].web_push.endpoint",
    ]


@pytest.mark.parametrize("endpoint", OFF_LIMITS)
async def test_the_loopback_allowance_lets_nothing_else_in(loose: Stub, endpoint: str) -> None:
    assert len(await refusals(loose, endpoint)) == 3


@pytest.mark.parametrize("endpoint", LOOPBACK)
async def test_the_loopback_allowance_takes_endpoints_on_this_machine(
    loose: Stub, endpoint: str
) -> None:
    created = await loose.CreateUser(create_request(push_targets=[webpush_target(endpoint)]))
    [target] = created.user.push_targets
    assert target.web_push.endpoint == endpoint


async def test_a_public_host_name_is_taken_without_resolving_it(stub: Stub) -> None:
    endpoint = "https://push.invalid-herald-test.example/send/1"  # no DNS answers for it
    created = await stub.CreateUser(create_request(push_targets=[webpush_target(endpoint)]))
    assert created.user.push_targets[0].web_push.endpoint == endpoint
