"""Reading a Herald process's Prometheus metrics in tests."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


async def sample(base_url: str, name: str, **labels: str) -> float:
    """The value of sample `name` with `labels` on `<base_url>/metrics` (0 when absent)."""
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"{base_url}/metrics")).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


async def user_cache_hits(base_url: str) -> float:
    """How many users the process served from its local cache (`mesh.user_cache`)."""
    return await sample(base_url, "herald_user_cache_lookups_total", result="hit")
