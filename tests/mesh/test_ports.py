"""A server whose port a closed connection holds (TIME-WAIT) waits for it, saying so in one
line, then serves; one whose port a live process holds exits with one line naming both."""

from __future__ import annotations

import os
import socket
import subprocess

import psutil

from tests.conftest import ServiceFactory
from tests.support.infra import free_port
from tests.support.processes import SERVING, ServiceProcess, health_status
from tests.support.waits import eventually_sync


def time_wait_on(port: int) -> None:
    """Leaves 127.0.0.1:`port` held by the local end of a closed connection in TIME-WAIT:
    the issue's reproduction (a client bound to the port connects, then closes first)."""
    with socket.create_server(("127.0.0.1", 0)) as peer:
        client = socket.socket()
        client.bind(("127.0.0.1", port))
        client.connect(peer.getsockname())
        accepted, _ = peer.accept()
        client.close()
        accepted.close()

    def in_time_wait() -> bool:
        return any(
            c.laddr and c.laddr.port == port and c.status == psutil.CONN_TIME_WAIT
            for c in psutil.net_connections("tcp")
        )

    eventually_sync(in_time_wait, what=f"port {port} in TIME-WAIT")


def end_time_wait(port: int) -> None:
    """Ends the TIME-WAIT at once (what the kernel does after 60 s), so the test need not
    wait a minute: `ss -K` destroys the socket (root)."""
    subprocess.run(
        ["ss", "-K", "-tn", "state", "time-wait", f"( sport = :{port} )"],
        check=True,
        capture_output=True,
        timeout=10,
    )


def test_a_port_in_time_wait_is_waited_for_in_one_line_then_served(
    service_factory: ServiceFactory,
) -> None:
    port = free_port()
    time_wait_on(port)
    proc = service_factory("templated", env={"HERALD_TEMPLATED_GRPC_PORT": str(port)}, wait=False)

    eventually_sync(lambda: "TIME-WAIT" in proc.logs(), what="the waiting line")
    assert proc.process is not None and proc.process.poll() is None
    end_time_wait(port)
    eventually_sync(lambda: health_status(port) == SERVING, what="templated serving")

    logs = proc.logs()
    assert logs.count("TIME-WAIT") == 1, logs
    assert "Traceback" not in logs


def test_a_port_a_live_process_holds_stops_start_up_with_one_line(
    service_factory: ServiceFactory,
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        proc: ServiceProcess = service_factory(
            "userd", env={"HERALD_USERD_GRPC_PORT": str(port)}, wait=False
        )
        assert proc.process is not None
        code = proc.process.wait(timeout=60)

    assert code == 1
    errors = [line for line in proc.logs().splitlines() if line.startswith("herald:")]
    assert errors == [
        f"herald: cannot start: port {port} on 127.0.0.1 is in use by "
        f"pid {os.getpid()} ({' '.join(psutil.Process().cmdline())[:80]}) (LISTEN)"
    ]
    assert "Traceback" not in proc.logs()
