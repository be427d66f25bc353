"""The fork server the tests start Herald's processes from (tests/support/forkserver.py):
a forked child is `python -m <module>` as far as its caller can tell: its arguments, its
environment and nothing else, its output in its log, its exit code, its death by signal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.forkserver import ForkServer
from tests.support.processes import ROOT

pytestmark = pytest.mark.timeout(60)
PROBE = "tests.support.forkprobe"


@pytest.fixture(scope="module")
def server() -> Iterator[ForkServer]:
    started = ForkServer(preload=("json",))
    yield started
    started.close()


def printed(log: Path) -> dict[str, object]:
    line = log.read_text().splitlines()[0]
    seen: dict[str, object] = json.loads(line)
    return seen


def test_a_child_gets_its_arguments_environment_and_log_and_exits_with_its_code(
    server: ForkServer, tmp_path: Path
) -> None:
    log = tmp_path / "probe.log"
    child = server.spawn([PROBE, "exit", "3"], {"PROBE": "yes"}, tmp_path, log)
    assert child.wait(30) == 3
    assert child.poll() == child.returncode == 3
    seen = printed(log)
    assert seen["argv"] == ["exit", "3"]
    assert seen["env"] == {"PROBE": "yes"}  # exactly what was given: nothing inherited
    assert seen["cwd"] == str(tmp_path)


def test_an_exception_is_a_traceback_in_the_log_and_exit_code_1(
    server: ForkServer, tmp_path: Path
) -> None:
    log = tmp_path / "probe.log"
    child = server.spawn([PROBE, "fail"], {}, ROOT, log)
    assert child.wait(30) == 1
    assert "RuntimeError: the probe failed" in log.read_text()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_child_killed_by_a_signal_reports_it_as_subprocess_does(
    server: ForkServer, tmp_path: Path, sig: signal.Signals
) -> None:
    log = tmp_path / "probe.log"
    child = server.spawn([PROBE, "wait"], {}, ROOT, log)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(0.2)
        assert child.poll() is None
        child.send_signal(sig)
        assert child.wait(30) == -sig
    finally:
        child.kill()  # a failed check leaves no probe behind; once ended, nothing is sent


def test_ctrl_c_ends_a_child_as_it_ends_python(server: ForkServer, tmp_path: Path) -> None:
    # The server ignores SIGINT (it ends with its test process); a child must not.
    child = server.spawn([PROBE, "wait"], {}, ROOT, tmp_path / "probe.log")
    try:
        os.kill(child.pid, signal.SIGINT)
        assert child.wait(30) == -signal.SIGINT
    finally:
        child.kill()
