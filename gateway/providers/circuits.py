"""The delivery workers' circuit breakers, read from their Prometheus `/metrics`.

Breakers live in each worker process (`deliveryd.chain.Breakers`, in memory) and every
state change sets the gauge `herald_circuit_state{provider}` (0 closed, 1 half-open,
2 open). Reading that gauge is the one honest view the gateway has without a new channel:
it is what Prometheus and the alert rules see too. A worker that does not answer is
shown as unreachable, never as closed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

GAUGE = "herald_circuit_state"
STATES = {0: "closed", 1: "half-open", 2: "open"}


@dataclass(frozen=True)
class Circuit:
    """One provider's breaker in one worker."""

    worker: str
    provider: str
    state: str


@dataclass(frozen=True)
class WorkerView:
    """What one worker's metrics said, or why they could not be read."""

    worker: str
    circuits: tuple[Circuit, ...]
    error: str = ""


def parse(worker: str, text: str) -> tuple[Circuit, ...]:
    """The breakers in one `/metrics` answer."""
    found: list[Circuit] = []
    for family in text_string_to_metric_families(text):
        if family.name != GAUGE:
            continue
        for sample in family.samples:
            state = STATES.get(int(sample.value), "open")
            found.append(Circuit(worker, sample.labels.get("provider", ""), state))
    return tuple(sorted(found, key=lambda c: c.provider))


class CircuitReader:
    """Reads the breakers of the workers at `urls` (their /metrics), each within `timeout`."""

    def __init__(self, urls: tuple[str, ...], *, timeout: float) -> None:
        self._urls = urls
        # One client for the process: a new one per read costs tens of milliseconds.
        self._client = httpx.AsyncClient(timeout=timeout)

    async def read(self) -> list[WorkerView]:
        return list(await asyncio.gather(*(self._one(url) for url in self._urls)))

    async def close(self) -> None:
        await self._client.aclose()

    async def _one(self, url: str) -> WorkerView:
        try:
            answer = await self._client.get(url)
            answer.raise_for_status()
        except httpx.HTTPError as exc:
            return WorkerView(url, (), error=f"unreachable: {exc.__class__.__name__}")
        return WorkerView(url, parse(url, answer.text))
