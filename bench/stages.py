"""The gateways' accept pipeline stage by stage, for one scenario: what the scenario
added to the `herald_accept_*` histograms (`gateway.notifications.metrics`), read from
each gateway's own /metrics (`HERALD_GATEWAY_METRICS_PORT`) before and after it and
summed over the gateways. (The shared HTTP port reaches whichever gateway the kernel
picks, so a difference of its scrapes would mix processes.)
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


def scrape_all(urls: list[str]) -> Samples:
    """`scrape` of every url, each sample summed over them."""
    total: Samples = {}
    for url in urls:
        for key, value in scrape(url).items():
            total[key] = total.get(key, 0.0) + value
    return total


class StageMeter:
    """Scrapes the gateways on entry and exit; `summary` is what the block added."""

    def __init__(self, metrics_urls: list[str]) -> None:
        self._urls = metrics_urls
        self._before: Samples = {}
        self.summary: dict[str, Any] = {}

    def __enter__(self) -> StageMeter:
        self._before = scrape_all(self._urls)
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.summary = summary(self._before, scrape_all(self._urls))
