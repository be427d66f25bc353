"""Runs every process of the Procfile under supervisord (`make up` runs it).

One process dying does not stop the rest: supervisord restarts it (with a growing
backoff while it keeps failing at start-up) and the others keep serving. Ctrl-C (SIGINT)
or SIGTERM stops every process gracefully, then supervisord exits. Each process's output
goes to this terminal; every Herald log line is JSON naming its `service`. `.env` is
applied over the environment, as honcho (which ran them before) did.

    python -m scripts.supervise [--scale gateway=2] [--procfile Procfile]
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from mesh.settings import CommonSettings, load_settings

# A process must stay up this long to count as started; one failing sooner is retried
# after 1 s, 2 s, 3 s ... up to this many times, then left FATAL (the rest go on).
START_SECONDS = 3
START_RETRIES = 10


@dataclass(frozen=True)
class Process:
    """One Procfile line: a name, a command and how many copies to run."""

    name: str
    command: str
    copies: int = 1


def read_procfile(path: Path) -> list[Process]:
    """`name: command` lines (blank lines and `#` comments skipped; a leading `exec ` is
    dropped: supervisord runs the command itself, without a shell)."""
    found = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if not sep or not name.strip().isidentifier() or not command.strip():
            raise ValueError(f"{path}:{number}: not 'name: command': {raw!r}")
        command = command.strip().removeprefix("exec ").strip()
        found.append(Process(name.strip(), command))
    return found


def scaled(processes: list[Process], scale: Mapping[str, int]) -> list[Process]:
    unknown = set(scale) - {p.name for p in processes}
    if unknown:
        raise ValueError(f"--scale names no Procfile process: {', '.join(sorted(unknown))}")
    return [Process(p.name, p.command, scale.get(p.name, 1)) for p in processes]


def config(processes: list[Process], run_dir: Path, *, stop_wait_seconds: int) -> str:
    """supervisord's configuration for `processes`, its socket and pid file in `run_dir`
    (the file holds the control password: it is written readable by this user only)."""
    password = secrets.token_urlsafe(16)
    sections = [
        "[supervisord]",
        "nodaemon=true",
        # supervisord run with nodaemon logs to stdout itself: its file would repeat each line.
        "logfile=/dev/null",
        "logfile_maxbytes=0",
        "loglevel=info",
        f"pidfile={run_dir / 'supervisord.pid'}",
        f"directory={Path.cwd()}",
        # Said, so that supervisord does not warn that it kept root's privileges.
        *(["user=root"] if os.geteuid() == 0 else []),
        "",
        # supervisorctl's way in: this user's socket, and a password made for this run.
        "[unix_http_server]",
        f"file={run_dir / 'supervisor.sock'}",
        "chmod=0700",
        "username=herald",
        f"password={password}",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{run_dir / 'supervisor.sock'}",
        "username=herald",
        f"password={password}",
    ]
    for process in processes:
        name = "%(program_name)s-%(process_num)d" if process.copies > 1 else "%(program_name)s"
        sections += [
            "",
            f"[program:{process.name}]",
            f"command={process.command}",
            f"process_name={name}",
            f"numprocs={process.copies}",
            "autorestart=true",
            f"startsecs={START_SECONDS}",
            f"startretries={START_RETRIES}",
            "stopsignal=TERM",
            f"stopwaitsecs={stop_wait_seconds}",
            "redirect_stderr=true",
            "stdout_logfile=/dev/stdout",
            "stdout_logfile_maxbytes=0",
            'environment=PYTHONUNBUFFERED="1"',
        ]
    return "\n".join(sections) + "\n"


def parse_scale(values: list[str]) -> dict[str, int]:
    scale = {}
    for value in values:
        name, _, copies = value.partition("=")
        if not copies.isdigit() or int(copies) < 1:
            raise ValueError(f"--scale {value!r}: want NAME=N with N at least 1")
        scale[name] = int(copies)
    return scale


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procfile", type=Path, default=Path("Procfile"))
    parser.add_argument("--scale", action="append", default=[], metavar="NAME=N")
    parser.add_argument("--run-dir", type=Path, help="where the socket goes (default: a temp dir)")
    args = parser.parse_args(argv)
    try:
        processes = scaled(read_procfile(args.procfile), parse_scale(args.scale))
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"supervise: {exc}\n")
        return 2
    os.environ.update({k: v for k, v in dotenv_values(".env").items() if v is not None})
    # Longer than any process's own grace, so supervisord never SIGKILLs a clean shutdown.
    stop_wait = int(load_settings(CommonSettings).grace_seconds) + 15
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="herald-supervise-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    conf = run_dir / "supervisord.conf"
    conf.touch(mode=0o600)
    conf.write_text(config(processes, run_dir, stop_wait_seconds=stop_wait))
    supervisord = Path(sys.executable).with_name("supervisord")
    os.execv(supervisord, [str(supervisord), "--configuration", str(conf)])  # never returns


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
