"""The stack a bench run measures: every Herald process, on free ports, with names of its own.

A run owns its PostgreSQL databases (`herald_bench_<run>_*`), a RabbitMQ vhost
(`herald-bench-<run>`) and a Redis key prefix (`herald-bench-<run>:`), so it never meets
`make up` or a test run on the same servers. `close()` stops every process with SIGTERM
and drops all of them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import psycopg
import redis

from bench.processes import ROOT, Process, Servers, StackError, free_port, rabbitmqctl
from bench.seed import Seed, template_body, user_body

WORKER_CHANNELS = ("email", "sms", "push")


class Stack:
    """Starts, reconfigures and tears down the whole Herald stack of one run."""

    def __init__(
        self,
        servers: Servers,
        logs_dir: Path,
        *,
        log_level: str = "INFO",
        gateways: int = 1,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.servers = servers
        self.settings = settings or {}
        self.gateways = gateways
        self.run_id = uuid.uuid4().hex[:8]
        self.logs_dir = logs_dir
        self.log_level = log_level
        self.service_token = f"bench-{uuid.uuid4().hex}"
        self.processes: dict[str, Process] = {}
        self.http_port = 0
        self._gateways: list[Process] = []
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
    def gateway_metrics_urls(self) -> list[str]:
        """Each gateway process's own /metrics (the shared HTTP port reaches either)."""
        return [
            f"http://127.0.0.1:{proc.env['HERALD_GATEWAY_METRICS_PORT']}" for proc in self._gateways
        ]

    @property
    def gateway_address(self) -> str:
        return self.processes["gateway"].address

    def base_env(self) -> dict[str, str]:
        """The inherited environment without any HERALD_ setting, plus the settings asked for
        (`--set`) and the run's names.

        Nothing inherited can point a process at real providers or at `make up`'s names.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        # The bench's fake providers are on 127.0.0.1 (`--set` may say otherwise).
        env["HERALD_OUTBOUND_ALLOW_LOOPBACK"] = "true"
        env.update(self.settings)
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
        """Creates the vhost and starts userd, templated, the gateway, the callbacks process
        and the workers."""
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
            metrics=True,
            extra={
                "HERALD_GATEWAY_HTTP_PORT": str(self.http_port),
                "HERALD_USERD_ADDR": userd.address,
                "HERALD_TEMPLATED_ADDR": templated.address,
            },
        )
        self._launch([gateway])
        # More gateways share the first one's ports (SO_REUSEPORT), as `make up GATEWAYS=N`;
        # each has a metrics port of its own.
        more = [
            Process(
                f"gateway-{n}",
                gateway.args,
                {**gateway.env, "HERALD_GATEWAY_METRICS_PORT": str(free_port())},
                gateway.grpc_port,
                self.logs_dir / f"gateway-{n}.log",
            )
            for n in range(2, self.gateways + 1)
        ]
        self._launch(more)
        self._gateways = [gateway, *more]
        # The process that posts status callbacks (one, as `make up` runs it).
        callbacks = self._process(
            "callbacks", ("gateway", "callbacks"), "HERALD_CALLBACKS_GRPC_PORT", metrics=True
        )
        self._launch([callbacks, *(self.worker(channel) for channel in WORKER_CHANNELS)])

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

    def restart_gateway(self, extra: dict[str, str]) -> None:
        """Restarts the (first) gateway with `extra` settings on the same ports."""
        old = self.processes.pop("gateway")
        old.stop()
        gateway = Process("gateway", old.args, {**old.env, **extra}, old.grpc_port, old.log_path)
        self._launch([gateway])
        self._gateways = [gateway, *self._gateways[1:]]

    def worker_metrics_urls(self) -> list[str]:
        """Each running worker's /metrics."""
        return [
            f"http://127.0.0.1:{proc.env[f'HERALD_DELIVERYD_{channel.upper()}_METRICS_PORT']}"
            "/metrics"
            for channel in WORKER_CHANNELS
            if (proc := self.processes.get(f"deliveryd-{channel}")) is not None
        ]

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

    def create_database(self, name: str) -> str:
        """An empty database of the run's own (dropped by `close`); returns its DSN."""
        with psycopg.connect(f"{self.servers.postgres_url}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database(name)}"')
        return f"{self.servers.postgres_url}/{self.database(name)}"

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
                # A rate it never reaches: each send still pays the rate check in Redis.
                *("--rate", "1000000"),
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
            template = http.post("/api/v1/templates/", json=template_body())
            _expect(template, 201, "create the template")
            ids = []
            for number in range(users):
                answer = http.post("/api/v1/users/", json=user_body(self.run_id, number))
                _expect(answer, 201, "create a user")
                ids.append(str(answer.json()["id"]))
        return Seed(api_key=api_key, user_ids=tuple(ids))


def _expect(response: httpx.Response, status: int, what: str) -> None:
    if response.status_code != status:
        raise StackError(f"could not {what}: {response.status_code} {response.text[:500]}")
