"""Reading a Herald process's Prometheus metrics in tests."""

from __future__ import annotations

import asyncio

from bench.stages import scrape


async def user_cache_hits(base_url: str) -> float:
    """How many users the process served from its local cache (`userd.client_cache`)."""
    samples = await asyncio.to_thread(scrape, base_url, "herald_user_cache_", "result")
    return samples.get(("herald_user_cache_lookups_total", "hit"), 0.0)


async def relayed_until(base_url: str) -> float:
    """Up to when the gateway's outbox relay has published every hop due (unix time)."""
    samples = await asyncio.to_thread(scrape, base_url, "herald_outbox_relayed_until", "")
    return samples.get(("herald_outbox_relayed_until_seconds", ""), 0.0)
