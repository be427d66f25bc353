"""Gateway core fixtures: the real userd and templated in process (`peers`), one gateway
process for the package.

The gateway gets a RabbitMQ vhost and a notifications database of its own (named after
the run, so the run's clean-up drops them): another gateway process of the same test run
(the REST edge's tests) must neither consume our queues nor relay our outbox rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import psycopg
import pytest
from psycopg.rows import dict_row

from herald.v1 import notification_pb2_grpc, status_pb2_grpc
from tests.conftest import ServiceFactory
from tests.gateway.core.helpers import CLIENT_ID, WELCOME, Queues, open_queues
from tests.gateway.core.peers import Peers
from tests.support.infra import (
    POSTGRES_URL,
    Isolation,
    add_vhost,
    release_vhost,
)
from tests.support.processes import ServiceProcess

GRACE_SECONDS = 1.0
RELAY_INTERVAL = 0.2


@pytest.fixture(scope="package")
def peers(isolation: Isolation) -> Iterator[Peers]:
    started = Peers(isolation).start()
    started.templates.add("welcome", WELCOME)
    yield started
    started.stop()


@pytest.fixture(scope="package")
def core_amqp_url(isolation: Isolation) -> Iterator[str]:
    vhost = f"{isolation.vhost}-core"
    yield add_vhost(vhost)
    release_vhost(vhost)


@pytest.fixture(scope="package")
def core_database(isolation: Isolation) -> str:
    return isolation.database("notifications_core")


def gateway_env(peers: Peers, **extra: str) -> dict[str, str]:
    return {
        "HERALD_USERD_ADDR": peers.userd_addr,
        "HERALD_TEMPLATED_ADDR": peers.templated_addr,
        "HERALD_OUTBOX_GRACE_SECONDS": str(GRACE_SECONDS),
        "HERALD_OUTBOX_INTERVAL_SECONDS": str(RELAY_INTERVAL),
        # The retry policy test_status.py expects (BACKOFF_BASE, EMAIL_ATTEMPTS).
        "HERALD_RETRY_BACKOFF_BASE_SECONDS": "0.5",
        "HERALD_EMAIL_MAX_ATTEMPTS": "3",
        # Watches woken by NOTIFY alone (test_watch.py): the periodic check never comes.
        "HERALD_WATCH_CHECK_SECONDS": "300",
        **extra,
    }


@pytest.fixture(scope="package")
async def gateway(
    service_factory: ServiceFactory, peers: Peers, core_amqp_url: str, core_database: str
) -> AsyncIterator[ServiceProcess]:
    env = gateway_env(peers, HERALD_AMQP_URL=core_amqp_url, HERALD_GATEWAY_DATABASE=core_database)
    proc = await asyncio.to_thread(service_factory, "gateway", env=env)
    yield proc
    await asyncio.to_thread(proc.stop)


@pytest.fixture(scope="package")
async def channel(gateway: ServiceProcess) -> AsyncIterator[grpc.aio.Channel]:
    """Calls act for client CLIENT_ID (helpers.CLIENT), whose notifications they see."""
    ch = gateway.channel(CLIENT_ID)
    yield ch
    await ch.close()


@pytest.fixture
def notifications(channel: grpc.aio.Channel) -> notification_pb2_grpc.NotificationServiceStub:
    return notification_pb2_grpc.NotificationServiceStub(channel)


@pytest.fixture
def statuses(channel: grpc.aio.Channel) -> status_pb2_grpc.StatusServiceStub:
    return status_pb2_grpc.StatusServiceStub(channel)


@pytest.fixture(scope="package")
async def package_queues(gateway: ServiceProcess, core_amqp_url: str) -> AsyncIterator[Queues]:
    connection, queues = await open_queues(core_amqp_url)
    yield queues
    await connection.close()


@pytest.fixture
async def queues(package_queues: Queues) -> Queues:
    """The gateway's queues, emptied for this test."""
    await package_queues.purge()
    return package_queues


@pytest.fixture(scope="package")
def db(gateway: ServiceProcess, core_database: str) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    """An autocommit connection to the gateway's notifications database."""
    with psycopg.connect(
        f"{POSTGRES_URL}/{core_database}", autocommit=True, row_factory=dict_row
    ) as conn:
        yield conn
