"""The real servers a run needs, and the isolated names it uses on them.

Every run gets its own databases (`herald_t<run>_*`), RabbitMQ vhost (`herald-t<run>`)
and Redis key prefix (`herald-t<run>:`), so runs on one machine never collide. A server
that does not answer stops the whole run with a message saying which and how to start it.
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import quote

import psycopg
import redis

from bench.processes import unanswered
from tests.support import vhosts

POSTGRES_URL = os.environ.get("HERALD_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432")
REDIS_URL = os.environ.get("HERALD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_HOST = os.environ.get("HERALD_TEST_AMQP_HOST", "127.0.0.1:5672")
AMQP_USER = os.environ.get("HERALD_TEST_AMQP_USER", "guest")
AMQP_PASSWORD = os.environ.get("HERALD_TEST_AMQP_PASSWORD", "guest")
SERVICE_TOKEN = "test-service-token-" + uuid.uuid4().hex[:8]


class InfrastructureMissing(Exception):
    """A server the tests need does not answer."""


def check_servers() -> None:
    """Raises `InfrastructureMissing` naming every server that does not answer."""
    problems = unanswered(POSTGRES_URL, REDIS_URL, AMQP_HOST)
    if problems:
        raise InfrastructureMissing(
            "tests need real servers that do not answer: "
            + "; ".join(problems)
            + ". Start them with `make services` (README, 'The two commands')."
        )


def rabbitmqctl(*args: str) -> None:
    """Runs rabbitmqctl (the local node's admin CLI), raising on failure. Vhosts are made
    and dropped through `tests.support.vhosts`, which spends fewer calls."""
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def amqp_url(vhost: str) -> str:
    return f"amqp://{AMQP_USER}:{AMQP_PASSWORD}@{AMQP_HOST}/{quote(vhost, safe='')}"


def add_vhost(name: str) -> str:
    """Makes vhost `name` for the test user; returns its AMQP URL. `release_vhost(name)`
    when done with it; the run's clean-up drops any left."""
    vhosts.add(name, AMQP_USER)
    return amqp_url(name)


def release_vhost(name: str) -> None:
    """Done with vhost `name`: the next add (or the run's clean-up) deletes it."""
    vhosts.release(name)


# Ports the tests give Herald's servers: below Linux's ephemeral range (32768-60999), so no
# client connection's local end (nor a fake provider's OS-chosen port) can take one, and a
# block of their own per test process, handed out once each: a server restarted on its port
# never finds it given meanwhile to another test's process. A block is claimed with a lock
# held for the process's life, so two runs on one machine (two `make test`, or a run beside
# a developer's `pytest`) never share one.
PORT_BLOCK = 2000
PORT_BLOCKS = (32768 - 20000) // PORT_BLOCK
_LOCKS = Path(tempfile.gettempdir()) / "herald-test-ports"


def _claim_block() -> tuple[int, IO[bytes]]:
    """The first port of a block no other live test process holds, and its held lock."""
    _LOCKS.mkdir(exist_ok=True)
    for block in range(PORT_BLOCKS):
        lock = (_LOCKS / f"block-{block}.lock").open("ab")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        return 20000 + PORT_BLOCK * block, lock
    raise AssertionError(f"all {PORT_BLOCKS} test port blocks are held by other test processes")


_ports: list[Iterator[int]] = []  # this process's block, once claimed
_ports_lock = threading.RLock()  # free_port holds it while it asks _next_ports
_held: list[IO[bytes]] = []  # the block's lock, open for the process's life


def _next_ports() -> Iterator[int]:
    with _ports_lock:  # stacks start processes from several threads
        if not _ports:
            first, lock = _claim_block()
            _held.append(lock)
            _ports.append(iter(range(first, first + PORT_BLOCK)))
        return _ports[0]


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port nothing listens on, never handed out before in this test process."""
    with _ports_lock:
        for port in _next_ports():
            if _bindable(port):
                return port
    raise AssertionError(f"no free port left in this process's block of {PORT_BLOCK}")


@dataclass
class Isolation:
    """The names one test run owns on the shared servers."""

    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def vhost(self) -> str:
        return f"herald-t{self.run_id}"

    @property
    def redis_prefix(self) -> str:
        return f"herald-t{self.run_id}:"

    def database(self, service: str) -> str:
        return f"herald_t{self.run_id}_{service}"

    @property
    def amqp_url(self) -> str:
        return amqp_url(self.vhost)

    def create(self) -> None:
        add_vhost(self.vhost)

    def destroy(self) -> None:
        """Drops the run's databases, vhosts (its own and every `<its vhost>-*`) and Redis
        keys."""
        with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True) as conn:
            rows = conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s",
                (f"herald_t{self.run_id}_%",),
            ).fetchall()

        def drop(names: list[str]) -> None:
            with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True) as conn:
                for name in names:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        # A worker's run leaves dozens: four connections drop them side by side.
        names = [name for (name,) in rows]
        with ThreadPoolExecutor(4) as threads:
            list(threads.map(drop, [names[i::4] for i in range(4)]))
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match=f"{self.redis_prefix}*", count=1000):
            client.delete(key)
        vhosts.drop_all(self.vhost)

    def env(self) -> dict[str, str]:
        """Environment variables that point a Herald process at this run's names."""
        return {
            "HERALD_POSTGRES_URL": POSTGRES_URL,
            "HERALD_REDIS_URL": REDIS_URL,
            "HERALD_REDIS_PREFIX": self.redis_prefix,
            "HERALD_AMQP_URL": self.amqp_url,
            "HERALD_SERVICE_TOKEN": SERVICE_TOKEN,
            "HERALD_USERD_DATABASE": self.database("users"),
            "HERALD_TEMPLATED_DATABASE": self.database("templates"),
            "HERALD_GATEWAY_DATABASE": self.database("notifications"),
            "HERALD_HEALTH_INTERVAL_SECONDS": "0.5",
            "HERALD_GRACE_SECONDS": "5",
            # Stated, so an exported development setting cannot loosen the tests' rule.
            "HERALD_OUTBOUND_ALLOW_LOOPBACK": "false",
        }
