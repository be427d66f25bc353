"""The stack a bench run measures: every Herald process, on free ports, with names of its own.

A run owns its PostgreSQL databases (`herald_bench_<run>_*`), a RabbitMQ vhost
(`herald-bench-<run>`) and a Redis key prefix (`herald-bench-<run>:`), so it never meets
`make up` or a test run on the same servers. `close()` stops every process with SIGTERM
and drops all of them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import grpc
import httpx
import orjson
import psycopg
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
SERVING = health_pb2.HealthCheckResponse.SERVING
TEMPLATE_CODE = "bench/welcome"
WORKER_CHANNELS = ("email", "sms", "push")


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
        problems: list[str] = []
        try:
            with psycopg.connect(f"{self.postgres_url}/postgres", connect_timeout=3) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            problems.append(f"PostgreSQL at {self.postgres_url} ({exc.__class__.__name__})")
        try:
            redis.Redis.from_url(self.redis_url, socket_connect_timeout=2).ping()
        except redis.RedisError as exc:
            problems.append(f"Redis at {self.redis_url} ({exc.__class__.__name__})")
        host, port = self.amqp_host.rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
        except OSError as exc:
            problems.append(f"RabbitMQ at {self.amqp_host} ({exc.__class__.__name__})")
        if problems:
            raise StackError(
                "the bench needs servers that do not answer: "
                + "; ".join(problems)
                + ". Start them with `make services`."
            )


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


@dataclass
class Seed:
    """What the bench created to send to."""

    api_key: str
    user_ids: tuple[str, ...]
    template_code: str = TEMPLATE_CODE


class Stack:
    """Starts, reconfigures and tears down the whole Herald stack of one run."""

    def __init__(self, servers: Servers, logs_dir: Path, *, log_level: str = "INFO") -> None:
        self.servers = servers
        self.run_id = uuid.uuid4().hex[:8]
        self.logs_dir = logs_dir
        self.log_level = log_level
        self.service_token = f"bench-{uuid.uuid4().hex}"
        self.processes: dict[str, Process] = {}
        self.http_port = 0
        self._vhost_created = False

    # --- names -------------------------------------------------------------------------

    @property
    def vhost(self) -> str:
        return f"herald-bench-{self.run_id}"

    @property
    def redis_prefix(self) -> str:
        return f"herald-bench-{self.run_id}:"

    def database(self, service: str) -> str:
        return f"herald_bench_{self.run_id}_{service}"

    @property
    def amqp_url(self) -> str:
        s = self.servers
        vhost = quote(self.vhost, safe="")
        return f"amqp://{s.amqp_user}:{s.amqp_password}@{s.amqp_host}/{vhost}"

    @property
    def notifications_dsn(self) -> str:
        return f"{self.servers.postgres_url}/{self.database('notifications')}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def gateway_address(self) -> str:
        return self.processes["gateway"].address

    def base_env(self) -> dict[str, str]:
        """The inherited environment without any HERALD_ setting, plus the run's names.

        Nothing inherited can point a process at real providers or at `make up`'s names.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "HERALD_LOG_LEVEL": self.log_level,
                "HERALD_POSTGRES_URL": self.servers.postgres_url,
                "HERALD_REDIS_URL": self.servers.redis_url,
                "HERALD_REDIS_PREFIX": self.redis_prefix,
                "HERALD_AMQP_URL": self.amqp_url,
                "HERALD_SERVICE_TOKEN": self.service_token,
                "HERALD_USERD_DATABASE": self.database("users"),
                "HERALD_TEMPLATED_DATABASE": self.database("templates"),
                "HERALD_GATEWAY_DATABASE": self.database("notifications"),
            }
        )
        return env

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Creates the vhost and starts userd, templated, the gateway and the workers."""
        self.servers.check()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        rabbitmqctl("add_vhost", self.vhost)
        self._vhost_created = True
        rabbitmqctl("set_permissions", "-p", self.vhost, self.servers.amqp_user, ".*", ".*", ".*")
        userd = self._process("userd", ("userd",), "HERALD_USERD_GRPC_PORT", metrics=True)
        templated = self._process(
            "templated", ("templated",), "HERALD_TEMPLATED_GRPC_PORT", metrics=True
        )
        self._launch([userd, templated])
        self.http_port = free_port()
        gateway = self._process(
            "gateway",
            ("gateway",),
            "HERALD_GATEWAY_GRPC_PORT",
            extra={
                "HERALD_GATEWAY_HTTP_PORT": str(self.http_port),
                "HERALD_USERD_ADDR": userd.address,
                "HERALD_TEMPLATED_ADDR": templated.address,
            },
        )
        self._launch([gateway])
        self._launch([self.worker(channel) for channel in WORKER_CHANNELS])

    def worker(self, channel: str, extra: dict[str, str] | None = None) -> Process:
        """A (not yet started) deliveryd process for `channel`."""
        env = {
            "HERALD_GATEWAY_ADDR": self.gateway_address,
            "HERALD_USERD_ADDR": self.processes["userd"].address,
            **(extra or {}),
        }
        upper = channel.upper()
        return self._process(
            f"deliveryd-{channel}",
            ("deliveryd", channel),
            f"HERALD_DELIVERYD_{upper}_GRPC_PORT",
            metrics=True,
            metrics_env=f"HERALD_DELIVERYD_{upper}_METRICS_PORT",
            extra=env,
        )

    def stop_process(self, name: str) -> None:
        proc = self.processes.pop(name)
        proc.stop()

    def start_worker(self, channel: str, extra: dict[str, str] | None = None) -> Process:
        """Starts (or restarts with `extra` settings) the worker of `channel`."""
        name = f"deliveryd-{channel}"
        if name in self.processes:
            self.stop_process(name)
        proc = self.worker(channel, extra)
        self._launch([proc])
        return proc

    def _process(
        self,
        name: str,
        args: tuple[str, ...],
        port_env: str,
        *,
        metrics: bool = False,
        metrics_env: str = "",
        extra: dict[str, str] | None = None,
    ) -> Process:
        port = free_port()
        env = {**self.base_env(), port_env: str(port), **(extra or {})}
        if metrics:
            env[metrics_env or f"HERALD_{name.upper()}_METRICS_PORT"] = str(free_port())
        return Process(name, args, env, port, self.logs_dir / f"{name}.log")

    def _launch(self, procs: list[Process]) -> None:
        for proc in procs:
            self.processes[proc.name] = proc
            proc.start()
        for proc in procs:
            proc.wait_serving()

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.processes.items()}

    def close(self) -> None:
        """Stops every process (SIGTERM), then drops the databases, keys and vhost."""
        for name in reversed(list(self.processes)):
            self.processes.pop(name).stop()
        with psycopg.connect(f"{self.servers.postgres_url}/postgres", autocommit=True) as conn:
            rows = conn.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s)",
                (f"herald_bench_{self.run_id}_",),
            ).fetchall()
            for (name,) in rows:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        client = redis.Redis.from_url(self.servers.redis_url)
        for key in client.scan_iter(match=f"{self.redis_prefix}*", count=1000):
            client.delete(key)
        if self._vhost_created:
            rabbitmqctl("delete_vhost", self.vhost)
            self._vhost_created = False

    # --- set-up through the product's own surfaces -------------------------------------

    def create_api_key(self) -> str:
        """An admin key, made by `python -m gateway apikeys create` as an operator would."""
        env = {**self.base_env(), "HERALD_LOG_LEVEL": "WARNING"}
        done = subprocess.run(
            [
                *(sys.executable, "-m", "gateway", "apikeys", "create"),
                *("--name", "bench", "--scopes", "admin", "--json"),
            ],
            check=False,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise StackError(f"apikeys create failed: {done.stderr.strip()}")
        key: Any = orjson.loads(done.stdout.strip().splitlines()[-1])
        return str(key["key"])

    def seed(self, users: int) -> Seed:
        """An API key, `users` users who take email, and one template, via the REST edge."""
        api_key = self.create_api_key()
        headers = {"Authorization": f"Bearer {api_key}"}
        with httpx.Client(base_url=self.rest_url, headers=headers, timeout=30) as http:
            template = http.post("/api/v1/templates/", json=_template())
            _expect(template, 201, "create the template")
            ids = []
            for number in range(users):
                answer = http.post("/api/v1/users/", json=_user(self.run_id, number))
                _expect(answer, 201, "create a user")
                ids.append(str(answer.json()["id"]))
        return Seed(api_key=api_key, user_ids=tuple(ids))


def _expect(response: httpx.Response, status: int, what: str) -> None:
    if response.status_code != status:
        raise StackError(f"could not {what}: {response.status_code} {response.text[:500]}")


def _template() -> dict[str, Any]:
    return {
        "code": TEMPLATE_CODE,
        "name": "Bench welcome",
        "default_language": "en",
        "contents": [
            {
                "language": "en",
                "email": {
                    "subject": "Welcome, {{ name }}",
                    "html_body": "<p>Hello <b>{{ name }}</b>, start here: "
                    '<a href="{{ link }}">{{ link }}</a></p>',
                    "text_body": "Hello {{ name }}, start here: {{ link }}",
                },
                "sms": {"text": "Welcome, {{ name }}: {{ link }}"},
                "push": {"title": "Welcome", "body": "Hello {{ name }}"},
            }
        ],
    }


def _user(run_id: str, number: int) -> dict[str, Any]:
    return {
        "name": f"Bench user {number}",
        "email": f"bench.{run_id}.{number}@example.com",
        "password": "bench password, never used",
        "phone": f"+1415555{number % 10000:04d}",
        "preferences": {"email": True, "sms": True, "push": False},
    }
