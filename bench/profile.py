"""py-spy profiles of the stack's processes while a scenario runs (`--profile DIR`).

Each process gets `py-spy record --format raw` (collapsed stacks, on-CPU samples only)
for the scenario's window; `summarize` turns one file into the functions with the most
own time (the leaf of a sample) and the most total time (anywhere in the stack). The
profiler takes CPU from the stack it watches, so profiled runs are for finding where
time goes, not for the figures.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise FileNotFoundError("py-spy is not installed (it is in the dev group: uv sync)")
    return found


class Profiler:
    """Records every named process into `<dir>/<label>-<name>.txt` until the block ends."""

    def __init__(
        self,
        pids: dict[str, int],
        directory: Path,
        label: str,
        *,
        rate: int = 97,
        native: bool = False,
    ) -> None:
        self._native = native
        self._pids = pids
        self._dir = directory
        self._label = label
        self._rate = rate
        self._procs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
        self.summaries: dict[str, dict[str, Any]] = {}

    def __enter__(self) -> Profiler:
        self._dir.mkdir(parents=True, exist_ok=True)
        binary = py_spy()
        for name, pid in self._pids.items():
            path = self._dir / f"{self._label}-{name}.txt"
            proc = subprocess.Popen(
                [
                    *(binary, "record", "--pid", str(pid), "--format", "raw"),
                    *("--rate", str(self._rate), "--output", str(path)),
                    # Native stacks need the process paused while sampled.
                    *(("--native",) if self._native else ("--nonblocking",)),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self._procs[name] = (proc, path)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for proc, _ in self._procs.values():
            proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        for name, (proc, path) in self._procs.items():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if path.exists():
                self.summaries[name] = {"file": str(path), **summarize(path)}


def _function(frame: str) -> str:
    """`send (gateway/notifications/accept.py:120)` → `send (gateway/notifications/accept.py)`."""
    match = FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match.group("file")
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{match.group('func')} ({path})"


def summarize(path: Path, top: int = 15) -> dict[str, Any]:
    """Samples, and the `top` functions by own and by total share of the samples."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_function(f) for f in stack.split(";") if f]
        # The first frame is the thread ("process 123:"/"thread (0x…)") when py-spy adds it.
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for function in set(frames):
            total[function] += count

    def share(counter: Counter[str]) -> list[list[Any]]:
        return [[fn, round(100 * n / samples, 1)] for fn, n in counter.most_common(top)]

    return {"samples": samples, "top_own_pct": share(own), "top_total_pct": share(total)}
