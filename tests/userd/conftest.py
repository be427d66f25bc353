"""userd fixtures: one userd process per module, a stub on it, direct looks at its stores."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
import redis
from psycopg.rows import dict_row

from herald.v1 import user_pb2_grpc
from tests.conftest import ServiceFactory
from tests.support.infra import POSTGRES_URL, REDIS_URL, Isolation
from tests.support.processes import ServiceProcess
from tests.userd.helpers import Stub


@pytest.fixture(scope="module")
def userd(service_factory: ServiceFactory) -> Iterator[ServiceProcess]:
    # The rule as deployed: Web Push endpoints on public hosts only (tests/userd/test_outbound.py).
    proc = service_factory("userd", env={"HERALD_OUTBOUND_ALLOW_LOOPBACK": "false"})
    yield proc
    proc.stop()


@pytest.fixture
async def stub(userd: ServiceProcess) -> AsyncIterator[Stub]:
    channel = userd.channel()
    yield user_pb2_grpc.UserServiceStub(channel)
    await channel.close()


@pytest.fixture(scope="module")
def users_db(
    isolation: Isolation, userd: ServiceProcess
) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    """An autocommit connection to the run's users database (userd creates it)."""
    with psycopg.connect(
        f"{POSTGRES_URL}/{isolation.database('users')}", autocommit=True, row_factory=dict_row
    ) as conn:
        yield conn


@pytest.fixture(scope="session")
def shared_redis() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()
