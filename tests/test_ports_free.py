"""`make up` refuses to start beside a running Herald (scripts/ports-free.sh): its servers
bind with SO_REUSEPORT, so a second copy would otherwise share the ports silently."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from tests.support.infra import free_port

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ports-free.sh"
VARIABLES = (
    "HERALD_GATEWAY_HTTP_PORT",
    "HERALD_GATEWAY_GRPC_PORT",
    "HERALD_USERD_GRPC_PORT",
    "HERALD_TEMPLATED_GRPC_PORT",
    "HERALD_DELIVERYD_EMAIL_GRPC_PORT",
    "HERALD_DELIVERYD_SMS_GRPC_PORT",
    "HERALD_DELIVERYD_PUSH_GRPC_PORT",
    "HERALD_USERD_METRICS_PORT",
    "HERALD_TEMPLATED_METRICS_PORT",
    "HERALD_DELIVERYD_EMAIL_METRICS_PORT",
    "HERALD_DELIVERYD_SMS_METRICS_PORT",
    "HERALD_DELIVERYD_PUSH_METRICS_PORT",
)


def check(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT)],
        env={"PATH": "/usr/bin:/bin", **env},
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
