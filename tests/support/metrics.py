"""Reading a Herald process's Prometheus metrics in tests."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import REGISTRY

from bench.stages import scrape
from tests.support.processes import ServiceProcess
from tests.support.waits import eventually


def sample(name: str, **labels: str) -> float:
    """A sample of this test process's own registry (0 before anything was counted)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def user_cache_hits(base_url: str) -> float:
    """How many users the process served from its local cache (`userd.client_cache`)."""
    samples = await asyncio.to_thread(scrape, base_url, "herald_user_cache_", "result")
    return samples.get(("herald_user_cache_lookups_total", "hit"), 0.0)


async def relayed_until(base_url: str) -> float:
    """Up to when the gateway's outbox relay has published every hop due (unix time)."""
    samples = await asyncio.to_thread(scrape, base_url, "herald_outbox_relayed_until", "")
    return samples.get(("herald_outbox_relayed_until_seconds", ""), 0.0)


async def relay_passed(gateway: ServiceProcess, grace: float = 0.0) -> None:
    """Waits for the gateway's outbox relay to finish a pass over everything due `grace`
    seconds from now: a hop accepted before this call and left unmarked (its publish
    waits out the grace) would have been published again by then; one marked never is."""
    since = time.time() + grace
    url = f"http://127.0.0.1:{gateway.http_port}"

    async def covered() -> bool:
        return await relayed_until(url) >= since

    await eventually(covered, what="a relay pass over what was due")
