"""A PostgreSQL server of a test's own (initdb in a temporary folder), for outage tests.

The shared server must never go down; this one runs as the `postgres` user on a free
port, trusts local connections for `root`, and keeps its data across stop/start.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.infra import free_port

BIN = Path("/usr/lib/postgresql/15/bin")
OWNER = "postgres"


def _as_owner(command: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["su", OWNER, "-s", "/bin/sh", "-c", command],
        capture_output=True,
        timeout=60,
        check=False,
    )


class OwnPostgres:
    """initdb + pg_ctl on a free port; `url` has no database name (like POSTGRES_URL)."""

    def __init__(self) -> None:
        # Under /tmp itself: pytest's tmp_path is private to root, and postgres must reach it.
        self.base = Path(tempfile.mkdtemp(prefix="herald-pg-"))
        self.port = free_port()
        base = self.base
        shutil.chown(base, OWNER)
        os.chmod(base, 0o755)
        done = _as_owner(f"{BIN}/initdb -D {base}/data -A trust -U root --no-sync -E UTF8")
        assert done.returncode == 0, done.stderr.decode(errors="replace")

    @property
    def url(self) -> str:
        return f"postgresql://root@127.0.0.1:{self.port}"

    def start(self) -> OwnPostgres:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
        done = _as_owner(
            f"{BIN}/pg_ctl -D {self.base}/data -o '{options}' -l {self.base}/log -w start"
        )
        assert done.returncode == 0, (self.base / "log").read_text(errors="replace")
        return self

    def stop(self) -> None:
        _as_owner(f"{BIN}/pg_ctl -D {self.base}/data -m fast -w stop")

    def remove(self) -> None:
        """Stops the server and deletes its data."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
