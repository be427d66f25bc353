"""CPU and peak RSS of the stack's processes, sampled while a scenario runs."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import psutil


@dataclass
class Usage:
    """One process over one window."""

    cpu_seconds: float = 0.0
    cores: float = 0.0  # cpu_seconds / wall seconds
    peak_rss_mb: float = 0.0
    start_rss_mb: float = 0.0
    end_rss_mb: float = 0.0


class ResourceSampler:
    """Samples every named process every `interval` seconds on a background thread."""

    def __init__(self, pids: dict[str, int], interval: float = 0.25) -> None:
        self._procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self._interval = interval
        self._usage = {name: Usage() for name in pids}
        self._cpu_start: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._started = 0.0

    def __enter__(self) -> ResourceSampler:
        self._started = time.monotonic()
        for name, proc in self._procs.items():
            times = proc.cpu_times()
            self._cpu_start[name] = times.user + times.system
            rss = proc.memory_info().rss / 2**20
            self._usage[name].start_rss_mb = rss
            self._usage[name].peak_rss_mb = rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        wall = max(time.monotonic() - self._started, 1e-9)
        for name, proc in self._procs.items():
            usage = self._usage[name]
            try:
                times = proc.cpu_times()
                usage.end_rss_mb = proc.memory_info().rss / 2**20
            except psutil.NoSuchProcess:
                continue
            usage.cpu_seconds = times.user + times.system - self._cpu_start[name]
            usage.cores = usage.cpu_seconds / wall

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            for name, proc in self._procs.items():
                try:
                    rss = proc.memory_info().rss / 2**20
                except psutil.NoSuchProcess:
                    continue
                usage = self._usage[name]
                usage.peak_rss_mb = max(usage.peak_rss_mb, rss)

    @property
    def usage(self) -> dict[str, Usage]:
        return self._usage
