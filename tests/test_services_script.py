"""scripts/services.sh on a machine without PostgreSQL, Redis or RabbitMQ: the servers'
binaries are hidden from PATH and a stand-in `apt-get` records what it is asked and
"installs" stand-ins of the servers' commands, which record what they are asked too.

As root on Debian the script installs the three non-interactively (one line saying so),
starts them and creates Herald's PostgreSQL role; elsewhere it prints the one command.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.infra import free_port
from tests.support.processes import ROOT

SCRIPT = ROOT / "scripts" / "services.sh"
# The servers' commands (and what the script would install or escalate with).
HIDDEN = {
    "apt-get", "sudo", "runuser", "id",
    "pg_isready", "pg_ctlcluster", "psql", "postgres",
    "redis-server", "redis-cli", "rabbitmq-server", "rabbitmqctl",
}  # fmt: skip

RECORD = 'echo "$(basename "$0") $*" >> "$STANDIN_LOG"\n'
STANDINS = {
    "postgresql": {
        "pg_ctlcluster": RECORD + 'touch "$STANDIN_STATE/pg"\n',
        "pg_isready": '[ -f "$STANDIN_STATE/pg" ]\n',
        # The role does not exist until created; the hba file is the state dir's.
        "psql": RECORD
        + 'case "$*" in\n'
        + '  *"-U root"*) [ -f "$STANDIN_STATE/role" ] || exit 2 ;;\n'
        + '  *"CREATE ROLE"*) touch "$STANDIN_STATE/role" ;;\n'
        + '  *"SHOW hba_file"*) echo "$STANDIN_STATE/pg_hba.conf" ;;\n'
        + "esac\n",
    },
    "redis-server": {
        "redis-server": RECORD + 'touch "$STANDIN_STATE/redis"\n',
        "redis-cli": '[ -f "$STANDIN_STATE/redis" ] && echo PONG\n',
    },
    "rabbitmq-server": {
        # Something must answer on the AMQP port: a listener that outlives the script.
        "rabbitmq-server": RECORD
        + 'python3 -c \'import socket, sys, time; s = socket.create_server(("127.0.0.1", '
        + 'int(sys.argv[1]))); time.sleep(120)\' "$HERALD_AMQP_PORT" >/dev/null 2>&1 &\n'
        + 'echo $! > "$STANDIN_STATE/rabbit.pid"\n',
    },
}


def standin(path: Path, body: str) -> None:
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """An environment whose PATH hides the servers' commands, with a stand-in apt-get
    and runuser in front; yields it and the state dir (log, hba file)."""
    visible = tmp_path / "visible"
    fake = tmp_path / "fake"
    state = tmp_path / "state"
    for folder in (visible, fake, state):
        folder.mkdir()
    for system in ("/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        for entry in Path(system).iterdir():
            target = visible / entry.name
            if entry.name not in HIDDEN and not target.exists():
                target.symlink_to(entry)
    installs = "".join(
        f"    {package}) "
        + " ".join(f'cp "$STANDIN_STATE/{name}" "$STANDIN_BIN/";' for name in commands)
        + " ;;\n"
        for package, commands in STANDINS.items()
    )
    for commands in STANDINS.values():
        for name, body in commands.items():
            standin(state / name, body)
    standin(
        fake / "apt-get", RECORD + 'for p in "$@"; do case "$p" in\n' + installs + "esac; done\n"
    )
    standin(fake / "runuser", RECORD + 'while [ "$1" != -- ]; do shift; done; shift; exec "$@"\n')
    standin(fake / "id", 'echo "${STANDIN_UID:-0}"\n')
    (state / "pg_hba.conf").write_text("host all all 127.0.0.1/32 scram-sha-256\n")
    env = {
        "PATH": f"{fake}:{visible}",
        "HOME": str(tmp_path),
        "STANDIN_LOG": str(state / "calls.log"),
        "STANDIN_STATE": str(state),
        "STANDIN_BIN": str(fake),
        # Ports nothing answers on, so every server counts as missing.
        "HERALD_PG_PORT": str(free_port()),
        "HERALD_REDIS_PORT": str(free_port()),
        "HERALD_AMQP_PORT": str(free_port()),
        "HERALD_SERVICES_WAIT_SECONDS": "15",
    }
    yield env, state
    pid_file = state / "rabbit.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid_file.read_text()), signal.SIGTERM)


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_as_root_on_debian_it_installs_starts_and_creates_the_role(
    machine: tuple[dict[str, str], Path],
) -> None:
    env, state = machine
    done = run(env)

    assert done.returncode == 0, done.stdout + done.stderr
    packages = "postgresql redis-server rabbitmq-server"
    assert done.stdout.splitlines()[0] == (
        f"installing {packages} (Debian packages: first run on this machine)"
    )
    calls = (state / "calls.log").read_text().splitlines()
    assert calls[0] == (
        "apt-get install -y -q --no-install-recommends postgresql redis-server rabbitmq-server"
    )
    assert any(
        c.startswith("pg_ctlcluster --skip-systemctl-redirect") and c.endswith("main start")
        for c in calls
    )
    assert any(c.startswith("redis-server --daemonize yes") for c in calls)
    assert "rabbitmq-server -detached" in calls
    assert any('CREATE ROLE "root" SUPERUSER LOGIN' in c for c in calls)
    assert (state / "pg_hba.conf").read_text().splitlines()[0] == "host all root 127.0.0.1/32 trust"
    assert done.stdout.splitlines()[-1] == "PostgreSQL, Redis and RabbitMQ answer"


def test_without_root_it_prints_the_one_command(machine: tuple[dict[str, str], Path]) -> None:
    env, state = machine
    done = run({**env, "STANDIN_UID": "1000"})

    assert done.returncode == 1
    assert (
        "  sudo apt-get install -y postgresql redis-server rabbitmq-server"
        in done.stderr.splitlines()
    )
    assert not (state / "calls.log").exists()
