"""The parts a bench stack is built from: the shared servers, one Herald process, free
ports, gRPC health and the RabbitMQ admin CLI.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import psycopg
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
SERVING = health_pb2.HealthCheckResponse.SERVING


@dataclass(frozen=True)
class Servers:
    """Where the shared servers are (the same defaults as Herald's own settings)."""

    postgres_url: str = "postgresql://root@127.0.0.1:5432"
    redis_url: str = "redis://127.0.0.1:6379/0"
    amqp_host: str = "127.0.0.1:5672"
    amqp_user: str = "guest"
    amqp_password: str = "guest"

    @classmethod
    def from_env(cls) -> Servers:
        """`HERALD_BENCH_*` variables override the defaults."""
        env = os.environ
        return cls(
            postgres_url=env.get("HERALD_BENCH_POSTGRES_URL", cls.postgres_url),
            redis_url=env.get("HERALD_BENCH_REDIS_URL", cls.redis_url),
            amqp_host=env.get("HERALD_BENCH_AMQP_HOST", cls.amqp_host),
            amqp_user=env.get("HERALD_BENCH_AMQP_USER", cls.amqp_user),
            amqp_password=env.get("HERALD_BENCH_AMQP_PASSWORD", cls.amqp_password),
        )

    def check(self) -> None:
        """Raises `StackError` naming every server that does not answer."""
        problems = unanswered(self.postgres_url, self.redis_url, self.amqp_host)
        if problems:
            raise StackError(
                "the bench needs servers that do not answer: "
                + "; ".join(problems)
                + ". Start them with `make services`."
            )


def unanswered(postgres_url: str, redis_url: str, amqp_host: str) -> list[str]:
    """Each of PostgreSQL, Redis and RabbitMQ (host:port) that does not answer, named with
    its address and the error (the bench and the test suite both refuse to run then)."""
    problems: list[str] = []
    try:
        with psycopg.connect(f"{postgres_url}/postgres", connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        problems.append(f"PostgreSQL at {postgres_url} ({exc.__class__.__name__})")
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        problems.append(f"Redis at {redis_url} ({exc.__class__.__name__})")
    host, port = amqp_host.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError as exc:
        problems.append(f"RabbitMQ at {amqp_host} ({exc.__class__.__name__})")
    return problems


class StackError(Exception):
    """The stack could not be started (the message says which part and why)."""


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def health_status(address: str, timeout: float = 1.0) -> int | None:
    """The overall gRPC health status of the server at `address` (None: unreachable)."""
    with grpc.insecure_channel(address) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout
            )
        except grpc.RpcError:
            return None
    return int(answer.status)


def rabbitmqctl(*args: str) -> str:
    """Runs the local node's admin CLI, raising `StackError` on failure."""
    try:
        done = subprocess.run(
            ["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise StackError(f"rabbitmqctl {' '.join(args)} failed: {exc}") from exc
    return done.stdout


@dataclass
class Process:
    """One Herald process of the stack; its output goes to `log_path`."""

    name: str
    args: tuple[str, ...]
    env: dict[str, str]
    grpc_port: int
    log_path: Path
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", *self.args],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_serving(self, timeout: float = 60.0) -> None:
        assert self.popen is not None
        deadline = time.monotonic() + timeout
        while health_status(self.address) != SERVING:
            if self.popen.poll() is not None:
                raise StackError(f"{self.name} exited at start:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise StackError(f"{self.name} not SERVING after {timeout}s:\n{self.tail()}")
            time.sleep(0.1)

    def tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then wait; SIGKILL after `timeout`. Returns the exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode
