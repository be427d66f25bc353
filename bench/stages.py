"""The gateway's accept pipeline stage by stage, for one scenario: what the scenario
added to the `herald_accept_*` histograms (`gateway.notifications.metrics`), read from
the gateway's /metrics before and after it.

Only with one gateway: with several sharing the port, each scrape reaches whichever one
the kernel picks, and a difference of two processes' counters means nothing.
"""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from gateway.notifications.metrics import STAGES

Samples = dict[tuple[str, str], float]


def scrape(url: str, prefix: str = "herald_accept_", label: str = "stage") -> Samples:
    """The samples of the metrics named `prefix…` on `<url>/metrics`, by (sample name, the
    value of `label`); by default the gateway's accept stages."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        (sample.name, sample.labels.get(label, "")): sample.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith(prefix)
        for sample in family.samples
    }


def added(before: Samples, after: Samples, name: str, stage: str = "") -> float:
    """How much a sample grew from `before` to `after` (absent counts as 0)."""
    return after.get((name, stage), 0.0) - before.get((name, stage), 0.0)


def summary(before: Samples, after: Samples) -> dict[str, Any]:
    """Runs, items per run, and per stage how many runs went through it and their mean ms."""

    def grew(name: str, stage: str = "") -> float:
        return added(before, after, name, stage)

    runs = grew("herald_accept_run_items_count")
    stages: dict[str, dict[str, float | None]] = {}
    for stage in STAGES:
        count = grew("herald_accept_stage_seconds_count", stage)
        total = grew("herald_accept_stage_seconds_sum", stage)
        stages[stage] = {
            "runs": int(count),
            "mean_ms": round(1000 * total / count, 2) if count else None,
        }
    return {
        "runs": int(runs),
        "items_per_run": round(grew("herald_accept_run_items_sum") / runs, 1) if runs else None,
        "stages": stages,
    }


class StageMeter:
    """Scrapes the gateway on entry and exit; `summary` is what the block added."""

    def __init__(self, rest_url: str) -> None:
        self._url = rest_url
        self._before: Samples = {}
        self.summary: dict[str, Any] = {}

    def __enter__(self) -> StageMeter:
        self._before = scrape(self._url)
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.summary = summary(self._before, scrape(self._url))
