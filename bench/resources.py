"""CPU and peak RSS of the stack's processes, sampled while a scenario runs.

Herald's processes are followed by pid. The shared servers (PostgreSQL, RabbitMQ, Redis)
are followed by process name, re-listed on every sample so that PostgreSQL backends born
during the window count; their CPU is what every client of those servers used (another
test run on the machine included), so it is reported apart and only as CPU.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import psutil

INFRA = {
    "postgres": ("postgres",),
    "rabbitmq": ("beam.smp", "erl_child_setup", "epmd", "inet_gethost"),
    "redis": ("redis-server",),
}


@dataclass
class Usage:
    """One process (or group of processes) over one window."""

    cpu_seconds: float = 0.0
    cores: float = 0.0  # cpu_seconds / wall seconds
    peak_rss_mb: float | None = None
    start_rss_mb: float | None = None
    end_rss_mb: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


class _Group:
    """The CPU of a changing set of processes: each counted from when first seen."""

    def __init__(self, procs: list[psutil.Process], *, existing: bool) -> None:
        # pid → (process, CPU at the window's start or 0 for one born after it, last CPU)
        self.seen: dict[int, tuple[psutil.Process, float, float]] = {}
        self.add(procs, existing=existing)

    def add(self, procs: list[psutil.Process], *, existing: bool) -> None:
        for proc in procs:
            if proc.pid in self.seen:
                continue
            try:
                cpu = _cpu(proc)
            except psutil.Error:
                continue
            self.seen[proc.pid] = (proc, cpu if existing else 0.0, cpu)

    def sample(self) -> None:
        for pid, (proc, base, _) in list(self.seen.items()):
            try:
                self.seen[pid] = (proc, base, _cpu(proc))
            except psutil.Error:
                continue  # gone: its last sample stands

    @property
    def cpu_seconds(self) -> float:
        return sum(last - base for _, base, last in self.seen.values())


def _infra_processes() -> dict[str, list[psutil.Process]]:
    found: dict[str, list[psutil.Process]] = {name: [] for name in INFRA}
    for proc in psutil.process_iter(["name"]):
        for group, names in INFRA.items():
            if proc.info["name"] in names:
                found[group].append(proc)
    return found


class ResourceSampler:
    """Samples every named process every `interval` seconds on a background thread."""

    def __init__(self, pids: dict[str, int], *, infra: bool = True, interval: float = 0.25):
        self._procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self._infra = infra
        self._interval = interval
        self._usage = {name: Usage() for name in pids}
        self._groups: dict[str, _Group] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="bench-sampler")
        self._started = 0.0

    def __enter__(self) -> ResourceSampler:
        self._started = time.monotonic()
        for name, proc in self._procs.items():
            self._groups[name] = _Group([proc], existing=True)
            rss = proc.memory_info().rss / 2**20
            usage = self._usage[name]
            usage.start_rss_mb = usage.peak_rss_mb = rss
        if self._infra:
            for group, procs in _infra_processes().items():
                self._groups[group] = _Group(procs, existing=True)
                self._usage[group] = Usage()
        self._thread.start()
        return self

    def follow(self, name: str, pid: int) -> None:
        """Adds a process born inside the window: all of its CPU counts."""
        proc = psutil.Process(pid)
        self._procs[name] = proc
        self._usage[name] = Usage(start_rss_mb=0.0, peak_rss_mb=proc.memory_info().rss / 2**20)
        self._groups[name] = _Group([proc], existing=False)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(final=True)
        wall = max(time.monotonic() - self._started, 1e-9)
        for name, group in self._groups.items():
            usage = self._usage[name]
            usage.cpu_seconds = group.cpu_seconds
            usage.cores = usage.cpu_seconds / wall

    def _loop(self) -> None:
        ticks = 0
        while not self._stop.wait(self._interval):
            ticks += 1
            # Listing every process costs more than sampling: once a second is enough.
            self._sample(relist=self._infra and ticks % 4 == 0)

    def _sample(self, *, relist: bool = False, final: bool = False) -> None:
        if relist:
            for name, procs in _infra_processes().items():
                self._groups[name].add(procs, existing=False)
        # `follow` may add a process meanwhile: iterate over copies.
        for group in list(self._groups.values()):
            group.sample()
        for name, proc in list(self._procs.items()):
            try:
                rss = proc.memory_info().rss / 2**20
            except psutil.Error:
                continue
            usage = self._usage[name]
            usage.peak_rss_mb = max(usage.peak_rss_mb or 0.0, rss)
            if final:
                usage.end_rss_mb = rss

    @property
    def usage(self) -> dict[str, Usage]:
        return self._usage
