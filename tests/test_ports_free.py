"""`make up` refuses to start beside a running Herald (scripts/ports_free.py): its servers
bind with SO_REUSEPORT, so a second copy would otherwise share the ports silently."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from scripts.ports_free import ports
from tests.support.infra import free_port

ROOT = Path(__file__).resolve().parents[1]
# Every port variable the services' settings define (what the check reads).
VARIABLES = tuple(ports())


def check(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.ports_free"],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def test_free_ports_pass_and_a_taken_one_is_named(tmp_path: Path) -> None:
    env = {name: str(free_port()) for name in VARIABLES}
    assert check(env, tmp_path).returncode == 0

    with socket.create_server(("127.0.0.1", 0)) as listener:
        taken = listener.getsockname()[1]
        done = check({**env, "HERALD_USERD_GRPC_PORT": str(taken)}, tmp_path)

    assert done.returncode == 1
    assert f"{taken} (HERALD_USERD_GRPC_PORT)" in done.stderr
    assert "another 'make up'" in done.stderr


def test_ports_in_dot_env_are_the_ones_checked(tmp_path: Path) -> None:
    env = {name: str(free_port()) for name in VARIABLES}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        taken = listener.getsockname()[1]
        gateway = {k: v for k, v in env.items() if k != "HERALD_GATEWAY_HTTP_PORT"}
        (tmp_path / ".env").write_text(f"HERALD_GATEWAY_HTTP_PORT={taken}\n")
        done = check(gateway, tmp_path)

    assert done.returncode == 1
    assert f"{taken} (HERALD_GATEWAY_HTTP_PORT)" in done.stderr


def test_a_port_set_to_zero_is_not_checked_and_a_set_one_is(tmp_path: Path) -> None:
    # The gateway's own metrics port is 0 (none) unless set: nothing to check then.
    assert "HERALD_GATEWAY_METRICS_PORT" not in VARIABLES
    env = {name: str(free_port()) for name in VARIABLES}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        taken = listener.getsockname()[1]
        done = check({**env, "HERALD_GATEWAY_METRICS_PORT": str(taken)}, tmp_path)

    assert done.returncode == 1
    assert f"{taken} (HERALD_GATEWAY_METRICS_PORT)" in done.stderr
