"""Herald's processes for the tests, forked from one process that imported them once.

A service process spends ~0.7 s of CPU importing its modules (gRPC, pydantic, FastAPI,
redis, psycopg, OpenTelemetry) before it does anything, and a run of the suite starts
~140 of them: about a fifth of the run's CPU. The fork server (`python -m
tests.support.forkserver`, one per test process) imports every service's modules once
and starts nothing: no thread, no connection, no event loop, so a fork of it is what a
fresh interpreter would be after its imports. For each start it forks a child that takes
the test's environment, working directory and log file (stdout and stderr; stdin is
/dev/null), and runs `python -m <module> <args...>`'s code (`runpy`, as `-m` does), so
from `main()` on it is the service as it runs in production. The child exits with the
code the process would have; the server reports it.

`ServiceProcess` starts its services here (`PRELOADS`: one fork server per kind of
process, each importing what that process imports and nothing else); the tests of the
command line itself (`make up`'s supervisor, the bench, a CLI) start `python -m`
processes as before, and `HERALD_TEST_FORKSERVER=0` starts every process that way.

Protocol, one JSON object a line: the test process writes `{"id", "args", "env", "cwd",
"log"}` to the server's stdin and reads `{"pid"}` back (or `{"error"}`); the server writes
`{"exit": id, "code": returncode}` (negative for a signal, as `subprocess` does) when a
child ends. A child is known by the id its request gave, not its pid: this host's pids
wrap at 32,768, and a run makes thousands of processes and threads.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import runpy
import select
import signal
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import IO, Any

# What `python -m <service> [<args>]` imports before it starts anything, the lazy imports
# of its main() included: a fork server per kind of process, preloading exactly those, so
# that a forked process holds the modules (and the metrics they register) the real one
# would, and no other's. Other commands (`migrate`, `apikeys`, scripts) are not forked.
PRELOADS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("gateway",): ("gateway.__main__", "gateway.core", "gateway.http.edge", "userd.client_cache"),
    ("gateway", "callbacks"): ("gateway.__main__", "gateway.callbacks.process"),
    ("userd",): ("userd.__main__",),
    ("templated",): ("templated.__main__",),
    ("deliveryd", "email"): ("deliveryd.__main__",),
    ("deliveryd", "sms"): ("deliveryd.__main__",),
    ("deliveryd", "push"): ("deliveryd.__main__",),
}
ENABLED = os.environ.get("HERALD_TEST_FORKSERVER", "1") != "0"


# The server side.


def _run_child(request: dict[str, Any]) -> None:
    """In the forked child: becomes `python -m <args>` and never returns."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        # As a fresh interpreter: Ctrl-C raises KeyboardInterrupt (one sent since the fork
        # is delivered now, and ends the child as it would end python).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # as subprocess's close_fds does
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        module, *args = request["args"]
        sys.argv = ["-m", *args]  # runpy sets argv[0] to the module's file
        code = 0
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            sys.stderr.write(f"{exc.code}\n")
            code = 1
    except KeyboardInterrupt:
        # As the interpreter does: die of SIGINT, so the parent sees the signal.
        atexit._run_exitfuncs()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()  # OpenTelemetry flushes its spans here, for one
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _send(message: dict[str, Any]) -> None:
    os.write(1, (json.dumps(message) + "\n").encode())


def _reap(children: dict[int, int]) -> None:
    """Reports every child that has ended (`children`: pid -> its request's id)."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send({"exit": children.pop(pid), "code": os.waitstatus_to_exitcode(status)})


def serve(preload: list[str]) -> None:
    """The server: imports `preload`, then forks a child per request until its stdin
    closes."""
    for module in preload:
        __import__(module)
    # Ctrl-C reaches the whole process group: the children take it as `python -m` would,
    # and the server ends when its test process does (its stdin closes). Blocked, not
    # ignored: a child inherits the mask, so one signalled before it unblocks still gets it.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    woken, wake = os.pipe()
    os.set_blocking(wake, False)
    signal.set_wakeup_fd(wake)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd is written
    _send({"ready": os.getpid()})
    children: dict[int, int] = {}
    pending = b""
    while True:
        try:
            readable, _, _ = select.select([0, woken], [], [])
        except InterruptedError:
            continue
        if woken in readable:
            os.read(woken, 4096)
        _reap(children)
        if 0 not in readable:
            continue
        chunk = os.read(0, 65536)
        if not chunk:
            return
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            request = json.loads(line)
            try:
                pid = os.fork()
            except OSError as exc:
                _send({"error": str(exc)})
                continue
            if pid == 0:
                _run_child(request)
            children[pid] = request["id"]
            _send({"pid": pid})


# The test process's side.


class Forked:
    """A child of the fork server: the part of `subprocess.Popen` the tests use."""

    def __init__(self, server: ForkServer, spawn_id: int, pid: int, args: list[str]) -> None:
        self._server = server
        self._id = spawn_id
        self.pid = pid
        self.args = args
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._server.exit_code(self._id, timeout=0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            code = self._server.exit_code(self._id, timeout=timeout)
            if code is None:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            self.returncode = code
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:  # never a pid the server has reaped (and may be reused)
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer:
    """A fork server of this test process's, started on first use."""

    def __init__(self, preload: tuple[str, ...]) -> None:
        self._preload = preload
        self._lock = threading.Lock()  # one request at a time
        self._exits: dict[int, int] = {}  # a child's spawn id -> its exit code
        self._spawned = itertools.count()
        self._changed = threading.Condition()
        self._answers: list[dict[str, Any]] = []
        self._gone = False  # the server exited: no exit code will come
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        root = Path(__file__).resolve().parents[2]
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.forkserver", *self._preload],
            cwd=root,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._reader.start()
        self._answer()  # {"ready": pid}: the imports are done
        return process

    def _read(self, stream: IO[bytes]) -> None:
        for line in stream:
            message = json.loads(line)
            with self._changed:
                if "exit" in message:
                    self._exits[message["exit"]] = message["code"]
                else:
                    self._answers.append(message)
                self._changed.notify_all()
        with self._changed:
            self._gone = True
            self._answers.append({"error": "the fork server exited (its stderr is above)"})
            self._changed.notify_all()

    def _answer(self) -> dict[str, Any]:
        with self._changed:
            self._changed.wait_for(lambda: bool(self._answers), timeout=60)
            if not self._answers:
                raise AssertionError("the fork server did not answer in 60 s")
            return self._answers.pop(0)

    def spawn(self, args: list[str], env: dict[str, str], cwd: Path, log: Path) -> Forked:
        """Starts `python -m <args>` (its code, forked) with exactly `env`."""
        with self._lock:
            if self._process is None:
                self._process = self._start()
            assert self._process.stdin is not None
            spawn_id = next(self._spawned)
            request = {"id": spawn_id, "args": args, "env": env, "cwd": str(cwd), "log": str(log)}
            self._process.stdin.write((json.dumps(request) + "\n").encode())
            self._process.stdin.flush()
            answer = self._answer()
        if "pid" not in answer:
            raise AssertionError(f"the fork server could not start {args}: {answer}")
        return Forked(self, spawn_id, answer["pid"], args)

    def exit_code(self, spawn_id: int, timeout: float | None) -> int | None:
        """The exit code of the child `spawn_id` once it has ended; None if it runs past
        `timeout`."""
        with self._changed:
            self._changed.wait_for(lambda: spawn_id in self._exits or self._gone, timeout=timeout)
            if spawn_id not in self._exits and self._gone:
                raise AssertionError(f"the fork server exited: child {spawn_id}'s end is unknown")
            return self._exits.get(spawn_id)

    def close(self) -> None:
        """Closes the server's stdin: it exits (children still running go on)."""
        with self._lock:
            if self._process is not None and self._process.stdin is not None:
                self._process.stdin.close()
                self._process.wait(10)
                self._process = None
            if self._reader is not None:
                self._reader.join(10)
            with self._changed:  # a server started later starts clean
                self._gone, self._answers = False, []


_servers = {kind: ForkServer(preload) for kind, preload in PRELOADS.items()}


def server_for(args: list[str]) -> ForkServer | None:
    """The fork server for `python -m <args>`, if it is a kind that has one."""
    return _servers.get(tuple(args)) if ENABLED else None


def close_all() -> None:
    for server in _servers.values():
        server.close()


if __name__ == "__main__":
    serve(sys.argv[1:])
