"""Two test processes on one machine never hand out the same port (tests/support/infra.py):
each claims a block of its own, held by a lock for its life."""

from __future__ import annotations

import subprocess
import sys

from tests.support.infra import PORT_BLOCK, free_port
from tests.support.processes import ROOT

CLAIM = "from tests.support.infra import free_port; print(free_port())"


def test_another_process_gets_another_block() -> None:
    mine = free_port() // PORT_BLOCK
    # Our block is held for this process's life: other processes, one after the other
    # (each giving its own back when it exits), never get it.
    theirs = [
        int(
            subprocess.run(
                [sys.executable, "-c", CLAIM],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
            ).stdout
        )
        // PORT_BLOCK
        for _ in range(2)
    ]
    assert mine not in theirs
