"""A RabbitMQ node of a test's own, for tests that stop the broker.

The shared broker must never go down, so a test that needs an outage starts a second
node: its own node name, ports, data and log folders, no plugins. The data folder is
kept across `stop()`/`start()`, so durable queues and persistent messages survive a
restart as they would in production.

    rabbit = OwnRabbit(tmp_path)
    rabbit.start()
    ... rabbit.amqp_url ...
    rabbit.stop()
    rabbit.start()       # same node, same data
    rabbit.stop()
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

from mesh.probe import accepts
from tests.support.infra import free_port

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"


class OwnRabbit:
    """One private RabbitMQ node on free ports (guest/guest, reachable on 127.0.0.1)."""

    def __init__(self, base: Path, start_timeout: float = 60.0) -> None:
        self.base = base
        self.node = f"herald-t{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        (base / "mnesia").mkdir(parents=True, exist_ok=True)
        (base / "log").mkdir(parents=True, exist_ok=True)
        (base / "enabled_plugins").write_text("[].\n")
        (base / "rabbitmq.conf").write_text("loopback_users = none\n")

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            # The CLI tools find the node's cookie in $HOME; the server writes it there.
            "HOME": str(self.base),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.base / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
        }

    def _listening(self) -> bool:
        return accepts("127.0.0.1", self.port, timeout=0.5)

    def start(self) -> OwnRabbit:
        """Starts the node and waits until it accepts AMQP connections."""
        assert self._process is None or self._process.poll() is not None, "already running"
        log = (self.base / "server.out").open("ab")
        self._process = subprocess.Popen(
            [SERVER],
            env=self._env(),
            cwd=self.base,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while not self._listening():
            if self._process.poll() is not None:
                raise AssertionError(f"rabbitmq-server exited at start:\n{self.output()}")
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"rabbitmq-server not listening:\n{self.output()}")
            time.sleep(0.2)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stops the node (rabbitmqctl stop, then SIGTERM/SIGKILL to its process group)."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        subprocess.run(
            [CTL, "-n", self.node, "stop"],
            env=self._env(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        deadline = time.monotonic() + 10
        while self._listening() and time.monotonic() < deadline:
            time.sleep(0.1)

    def messages(self) -> int:
        """Messages in the node's queues, ready or delivered and not yet acknowledged."""
        listed = subprocess.run(
            [CTL, "-n", self.node, "list_queues", "-q", "--no-table-headers", "messages"],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return sum(int(n) for n in listed.stdout.split())

    def restart(self) -> OwnRabbit:
        self.stop()
        return self.start()

    def output(self) -> str:
        path = self.base / "server.out"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""
