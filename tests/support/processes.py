"""Herald services as real processes on free ports, waited on through gRPC health."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mesh.client import internal_channel
from mesh.probe import accepts
from tests.support import forkserver
from tests.support.infra import SERVICE_TOKEN

ROOT = Path(__file__).resolve().parents[2]
SERVING = health_pb2.HealthCheckResponse.SERVING


def health_status(port: int, service: str = "", timeout: float = 1.0) -> int | None:
    """The health status a server on `port` reports for `service` (None if unreachable)."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError:
            return None
    return int(answer.status)


def wait_for_health(
    port: int, status: int = SERVING, service: str = "", timeout: float = 30.0
) -> None:
    """Blocks until the server on `port` reports `status`, or fails the test."""
    deadline = time.monotonic() + timeout
    last: int | None = None
    while time.monotonic() < deadline:
        last = health_status(port, service)
        if last == status:
            return
        time.sleep(0.1)
    raise AssertionError(f"port {port} service {service!r}: health {last}, wanted {status}")


@dataclass
class ServiceProcess:
    """One running Herald process; its output goes to `log_path`."""

    name: str
    args: list[str]
    env: dict[str, str]
    grpc_port: int
    log_path: Path
    http_port: int | None = None
    process: forkserver.Forked | subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, wait: bool = True, timeout: float = 30.0) -> ServiceProcess:
        full_env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        server = forkserver.server_for(self.args)
        if server is not None:  # `python -m <args>`, forked after its imports
            self.process = server.spawn(self.args, full_env, ROOT, self.log_path)
        else:
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", *self.args],
                    cwd=ROOT,
                    env=full_env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        if wait:
            deadline = time.monotonic() + timeout
            while health_status(self.grpc_port) != SERVING:
                if self.process.poll() is not None:
                    raise AssertionError(f"{self.name} exited at start:\n{self.logs()}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"{self.name} not SERVING in {timeout}s:\n{self.logs()}")
                time.sleep(0.1)
            # The gateway's REST edge starts once its gRPC server serves: wait for it too.
            while self.http_port is not None and not accepts("127.0.0.1", self.http_port):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"{self.name}: HTTP never answered:\n{self.logs()}")
                time.sleep(0.05)
        return self

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait; returns the exit code (kills and fails after `timeout`)."""
        [code] = self.stop_together(timeout=timeout)
        return code

    def stop_together(self, *others: ServiceProcess, timeout: float = 15.0) -> list[int]:
        """Stops this process and `others` at once (SIGTERM to each, then a wait for each,
        so their graceful stops overlap); their exit codes, in order. One that outlasts
        `timeout` is killed, and the call fails naming it."""
        procs = (self, *others)
        for proc in procs:
            if proc.process is not None and proc.process.poll() is None:
                proc.process.send_signal(signal.SIGTERM)
        codes, ignored = [], []
        deadline = time.monotonic() + timeout
        for proc in procs:
            if proc.process is None:
                codes.append(0)
                continue
            try:
                codes.append(proc.process.wait(max(deadline - time.monotonic(), 0.1)))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.process.wait())  # killed: at once
                ignored.append(proc.name)
        if ignored:
            raise AssertionError(f"{', '.join(ignored)} ignored SIGTERM for {timeout}s")
        return codes

    def kill(self) -> None:
        """SIGKILL: a crash, no shutdown."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def channel(self, client_id: str = "") -> grpc.aio.Channel:
        """An asyncio channel to this process carrying the service token and, given one,
        the client its calls act for (caller closes)."""
        return internal_channel(self.address, SERVICE_TOKEN, client_id)
